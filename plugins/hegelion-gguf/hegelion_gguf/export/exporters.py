"""The ``gguf`` and ``merged`` exporters (entry points in ``hegelion.exporters``).

gguf: merge (with ``--adapter``) -> convert -> quantize -> LoRA GGUF (``adapter_only``)
-> Modelfile -> verify. Everything is built in a temporary directory beside ``--out``
and moved into place only when every step, verification included, has passed: a
failure (a full disk too) removes the temporary directory and leaves an existing
``--out`` exactly as it was. Only the export's own names are moved into ``--out``: other
files there are left alone, and one of the same name that Hegelion did not write stops
the export. This module imports nothing heavy at import time, so
``hegelion plugins`` and ``hegelion export --help`` stay fast.
"""

from __future__ import annotations

import errno
import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from hegelion_core import OUTPUT_MARK, Exporter, ExportResult, HegelionError, listed_in_manifest

if TYPE_CHECKING:  # the converter's modules import numpy and gguf: loaded when an export runs
    from hegelion_gguf.export.tensors import OutType

Quantization = Literal["f32", "f16", "bf16", "q8_0", "q4_k_m", "q5_k_m", "q6_k"]
#: written directly by the converter; the rest are K-quants made by llama.cpp
CONVERTER_TYPES: tuple[OutType, ...] = ("f32", "f16", "bf16", "q8_0")
_VERSIONED = ("hegelion-gguf", "gguf", "llama_cpp_python", "transformers", "peft", "torch")


class DiskFull(HegelionError):
    """The disk filled up (or a file-size limit was hit) while writing the export."""

    def __init__(
        self, staging: Path, dest: Path, exc: BaseException, written: int, free: int | None
    ) -> None:
        super().__init__(
            f"{staging}: no space left on the disk while writing the export "
            f"({_mb(written)} written, {_mb(free)} free on the file system of {dest.parent}; "
            f"{type(exc).__name__}: {exc})\n"
            f"  nothing was written to {dest} (the partial files were removed)\n"
            "  hint: free disk space, or pass --out on a disk with room for the merged "
            "model, an f16 GGUF and the quantized file"
        )


class InputMissing(HegelionError):
    """A directory the export needs does not exist."""


def _mb(n: int | None) -> str:
    return "unknown space" if n is None else f"{n / 2**20:.1f} MiB"


def _free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


_DISK_FULL_TEXT = (
    "no space left",
    "os error 28",
    "file too large",
    "os error 27",
    "disk quota exceeded",
)
#: below this much free space, an OSError while writing is taken for a full disk
_NEARLY_FULL = 1 << 20


def is_disk_full(exc: BaseException, staging: Path | None = None) -> bool:
    """Whether ``exc`` (or its cause) is ENOSPC/EFBIG/EDQUOT, including errors that
    only say so in their text (Rust safetensors) or say nothing (numpy's short-write
    "N requested and M written"), which count when the disk is nearly full."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            return True
        text = str(e).lower()
        if any(t in text for t in _DISK_FULL_TEXT):
            return True
        if isinstance(e, OSError) and "requested and" in text and "written" in text:
            return True
        if isinstance(e, OSError) and staging is not None:
            free = _free_bytes(staging)
            if free is not None and free < _NEARLY_FULL:
                return True
        e = e.__cause__ or e.__context__
    return False


def _tree_bytes(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:
            pass
    return total


#: an export of a version before `OUTPUT_MARK`: its manifest.json and the files it lists
earlier_export = listed_in_manifest("export")


@contextmanager
def staged_output(
    dest: Path,
    *,
    inputs: tuple[Path | None, ...] = (),
    expect: tuple[str | None, ...] = (),
    name: str = "NAME",
) -> Iterator[Path]:
    """`hegelion_core.data.jsonl.atomic_output` for an export directory: its files go into
    ``dest`` beside whatever else is there, replacing only files an earlier export wrote
    (``expect``: the names known before the work, checked first); ``inputs`` inside
    ``dest`` are refused. A full disk is reported as `DiskFull` (naming the path, what
    was written and the free space) instead of a bare OSError; the check runs before the
    staging directory is removed."""
    from hegelion_core import atomic_output

    hint = (
        f"choose another --out (an export of its own: --out {dest / name}), or move "
        "those files away"
    )
    with atomic_output(
        dest,
        directory=True,
        beside_others=True,
        earlier=earlier_export,
        inputs=[p for p in inputs if p is not None],
        expect=[n for n in expect if n],
        hint=hint,
    ) as tmp:
        try:
            yield tmp
        except Exception as exc:
            if is_disk_full(exc, tmp):
                raise DiskFull(tmp, dest, exc, _tree_bytes(tmp), _free_bytes(tmp)) from exc
            raise


def safe_name(name: str) -> str:
    """A file and Ollama model name: lower case, [a-z0-9._-]."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.strip().lower()).strip("-.")
    if not slug:
        raise HegelionError(f"--name {name!r}: use letters, digits, '.', '_' or '-'")
    return slug


def versions() -> dict[str, str]:
    out = {}
    for dist in _VERSIONED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _require_dir(path: Path, flag: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise InputMissing(f"{flag} {path}: no such directory")
    return path


def _has_tokenizer(path: Path) -> bool:
    return any((path / f).is_file() for f in ("tokenizer.json", "tokenizer.model"))


class GGUFExporter(Exporter):
    """HF model (+ PEFT adapter) -> GGUF (+ LoRA GGUF) + Ollama Modelfile + report.json."""

    name: ClassVar[str] = "gguf"

    class Options(Exporter.Options):
        quantization: Quantization = Field(
            "q4_k_m",
            description="Weight type of the GGUF: f32/f16/bf16/q8_0 are written "
            "directly, q4_k_m/q5_k_m/q6_k are quantized by llama.cpp from an f16 (bf16) GGUF.",
        )
        adapter_only: bool = Field(
            False,
            description="With --adapter: write the base GGUF and the adapter as a "
            "separate LoRA GGUF (Modelfile ADAPTER) instead of merging.",
        )
        template: Path | None = Field(
            None,
            description="Ollama TEMPLATE file (Go template) to use instead of the one "
            "derived from the tokenizer's chat template.",
        )
        system: str | None = Field(
            None,
            description="Modelfile SYSTEM prompt (default: the chat template's own "
            "default, if it has one).",
        )
        stop: list[str] = Field(default_factory=list, description="Extra stop strings.")
        num_ctx: int = Field(4096, gt=0, description="Modelfile PARAMETER num_ctx.")
        temperature: float = Field(0.7, ge=0, description="Modelfile PARAMETER temperature.")
        verify: bool = Field(
            True,
            description="Compare the GGUF with the HF model in "
            "llama.cpp (report.json); a failed check fails the export.",
        )

    def export(
        self,
        model_dir: Path,
        dest: Path,
        *,
        adapter_dir: Path | None = None,
        name: str | None = None,
    ) -> ExportResult:
        from hegelion_gguf.export.merge import check_adapter_base, merge_adapter

        opts = self.options
        model_dir = _require_dir(model_dir, "--model")
        adapter_dir = _require_dir(adapter_dir, "--adapter") if adapter_dir else None
        if opts.adapter_only and adapter_dir is None:
            raise HegelionError(
                "--adapter-only needs --adapter DIR (the PEFT adapter to write as a LoRA GGUF)"
            )
        dest = Path(dest)
        stem = safe_name(name or (adapter_dir.parent.name if adapter_dir else model_dir.name))
        q = opts.quantization
        # Fail in seconds, before minutes of merging: architecture, tokenizer, adapter fit.
        from hegelion_gguf.export import MissingTokenizer, read_model_spec

        read_model_spec(model_dir)
        if not _has_tokenizer(model_dir) and not (adapter_dir and _has_tokenizer(adapter_dir)):
            raise MissingTokenizer(model_dir, ("tokenizer.json", "tokenizer.model"))
        if adapter_dir is not None:
            check_adapter_base(model_dir, adapter_dir)
        chat_source = adapter_dir if adapter_dir and _has_tokenizer(adapter_dir) else model_dir
        chat = self._chat_format(chat_source)  # an unrecognised template fails here, early

        lora = f"{stem}.lora.gguf" if opts.adapter_only else None
        with staged_output(
            dest,
            inputs=(model_dir, adapter_dir),
            name=stem,
            expect=(f"{stem}.{q}.gguf", lora, "Modelfile", "report.json"),
        ) as tmp:
            work = tmp / ".work"
            work.mkdir()
            source = model_dir
            if adapter_dir is not None and not opts.adapter_only:
                source = merge_adapter(model_dir, adapter_dir, work / "merged")
            gguf_name = f"{stem}.{q}.gguf"
            model_gguf = self._convert(source, tmp / gguf_name, q, work)
            files = [dest / gguf_name]
            lora_name = None
            if opts.adapter_only:
                from hegelion_gguf.export import convert_lora_to_gguf

                lora_name = f"{stem}.lora.gguf"
                assert adapter_dir is not None  # --adapter-only without --adapter was refused
                convert_lora_to_gguf(adapter_dir, model_dir, tmp / lora_name)
                files.append(dest / lora_name)
            modelfile = self._write_modelfile(tmp, gguf_name, lora_name, chat)
            files.append(dest / modelfile.name)
            report: dict[str, Any] = {"chat_format": chat.family, "verified": False}
            notes = ["verification skipped (verify=false)"]
            if opts.verify:
                report = self._verify(
                    tmp,
                    dest,
                    source,
                    model_gguf,
                    q,
                    chat.family,
                    adapter_dir if opts.adapter_only else None,
                    tmp / lora_name if lora_name else None,
                )
                files.append(dest / "report.json")
                notes = [report.pop("summary")]
            shutil.rmtree(work)
        from hegelion_gguf.export.modelfile import ollama_command

        return ExportResult(
            out_dir=dest,
            files=files,
            report=report,
            versions=versions(),
            notes=[*notes, f"ollama: {ollama_command(stem, dest / 'Modelfile')}"],
        )

    # ----- steps --------------------------------------------------------------------

    def _chat_format(self, source: Path) -> Any:
        from hegelion_gguf.export.modelfile import chat_format_from_tokenizer, custom_chat_format

        if not _has_tokenizer(source):
            return None  # the converter raises MissingTokenizer with the full story
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
        if self.options.template is not None:
            return custom_chat_format(self.options.template, tokenizer.eos_token, self.options.stop)
        return chat_format_from_tokenizer(tokenizer, f"{source} (tokenizer chat template)")

    @staticmethod
    def _convert(source: Path, out: Path, q: Quantization, work: Path) -> Path:
        from hegelion_gguf.export import convert_hf_to_gguf, quantize_gguf

        if q in CONVERTER_TYPES:
            return convert_hf_to_gguf(source, out, q)
        middle: OutType = "bf16" if _source_dtype(source) == "bfloat16" else "f16"
        full = convert_hf_to_gguf(source, work / f"model.{middle}.gguf", middle)
        quantize_gguf(full, out, q)
        full.unlink()
        return out

    def _write_modelfile(self, tmp: Path, gguf_name: str, lora_name: str | None, chat: Any) -> Path:
        from hegelion_gguf.export.modelfile import ModelfileSpec, render_modelfile

        if chat is None:  # no tokenizer: conversion has already failed before this
            raise HegelionError("internal: no chat format")
        opts = self.options
        text = render_modelfile(
            ModelfileSpec(
                gguf=f"./{gguf_name}",
                adapter=f"./{lora_name}" if lora_name else None,
                chat=chat,
                system=opts.system,
                num_ctx=opts.num_ctx,
                temperature=opts.temperature,
                extra_stops=list(opts.stop),
            )
        )
        path = tmp / "Modelfile"
        path.write_text(text, encoding="utf-8")
        return path

    @staticmethod
    def _verify(
        tmp: Path,
        dest: Path,
        source: Path,
        model_gguf: Path,
        q: str,
        family: str,
        adapter_dir: Path | None,
        lora_gguf: Path | None,
    ) -> dict[str, Any]:
        from hegelion_gguf.export.verify import VerificationFailed, verify_export

        reference = source
        report = verify_export(
            model_gguf, reference, q, adapter_dir=adapter_dir, lora_gguf=lora_gguf
        )
        # Name the files where they will live, not in the staging directory.
        report.gguf = str(dest / model_gguf.name)
        report.lora_gguf = str(dest / lora_gguf.name) if lora_gguf else None
        if source.is_relative_to(tmp):
            report.reference = "(merged --model + --adapter, removed after the export)"
        if not report.passed:
            failed = dest.with_name(f"{dest.name}.failed-report.json")
            report.write(failed)
            names = ", ".join(c.name for c in report.failed())
            raise VerificationFailed(
                f"{dest}: the exported GGUF failed verification ({names}); nothing was "
                f"written to {dest}\n{report.summary()}\n  full report: {failed}"
            )
        report.write(tmp / "report.json")
        return {
            **report.model_dump(mode="json"),
            "chat_format": family,
            "verified": True,
            "summary": report.summary(),
        }


def _source_dtype(model_dir: Path) -> str | None:
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config.get("dtype") or config.get("torch_dtype")


class MergedExporter(Exporter):
    """Base + PEFT adapter -> merged safetensors with tokenizer and chat template
    (for vLLM, transformers, or a later ``hegelion export gguf``)."""

    name: ClassVar[str] = "merged"

    class Options(Exporter.Options):
        verify: bool = Field(
            True,
            description="Check that the merged model's logits match "
            "base + adapter on a sample text.",
        )

    def export(
        self,
        model_dir: Path,
        dest: Path,
        *,
        adapter_dir: Path | None = None,
        name: str | None = None,
    ) -> ExportResult:
        from hegelion_gguf.export.merge import merge_adapter

        model_dir = _require_dir(model_dir, "--model")
        if adapter_dir is None:
            raise HegelionError(
                "hegelion export merged needs --adapter DIR (the PEFT adapter to fold into --model)"
            )
        adapter_dir = _require_dir(adapter_dir, "--adapter")
        dest = Path(dest)
        with staged_output(dest, inputs=(model_dir, adapter_dir), name=name or "merged") as tmp:
            merge_adapter(model_dir, adapter_dir, tmp / "merged")
            for item in (tmp / "merged").iterdir():
                item.rename(tmp / item.name)
            (tmp / "merged").rmdir()
            report: dict[str, Any] = {"verified": False}
            notes = ["verification skipped (verify=false)"]
            if self.options.verify:
                report = check_merged(model_dir, adapter_dir, tmp)
                notes = [
                    (
                        f"merged logits vs base + adapter: max |diff| "
                        f"{report['max_abs_diff']:.3g} (tolerance {report['tolerance']:.3g})"
                    )
                ]
                if not report["passed"]:
                    raise HegelionError(
                        f"{dest}: the merged model's logits differ from base + adapter by "
                        f"{report['max_abs_diff']:.3g} (> {report['tolerance']:.3g}); nothing "
                        f"was written to {dest}"
                    )
            files = sorted(dest / p.name for p in tmp.iterdir() if p.name != OUTPUT_MARK)
        return ExportResult(
            out_dir=dest,
            files=files,
            report=report,
            versions=versions(),
            notes=[*notes, f"load: AutoModelForCausalLM.from_pretrained({str(dest)!r})"],
        )


def check_merged(model_dir: Path, adapter_dir: Path, merged_dir: Path) -> dict[str, Any]:
    """max |logits(merged) - logits(base + adapter)| on a sample text, against a tolerance
    of 1e-3 (float32) or 2e-2 (16-bit) of the logits' scale."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    ids = torch.tensor(
        [tokenizer("The thesis states a claim; the antithesis attacks it.")["input_ids"]]
    )
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        want = PeftModel.from_pretrained(base, adapter_dir).eval()(ids).logits[0]
        del base
        merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
        got = merged(ids).logits[0]
    diff = float((want - got).abs().max())
    scale = float(want.abs().max()) or 1.0
    sixteen = _source_dtype(merged_dir) in ("bfloat16", "float16")
    tolerance = (2e-2 if sixteen else 1e-3) * scale
    return {
        "max_abs_diff": diff,
        "tolerance": tolerance,
        "passed": diff <= tolerance,
        "positions": int(ids.shape[1]),
        "verified": True,
    }
