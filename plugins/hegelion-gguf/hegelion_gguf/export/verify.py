"""Check an exported GGUF against the Hugging Face model it came from.

A GGUF can load and still be wrong: a missing q/k permutation, a mislabelled
pre-tokenizer or a lost special token all produce fluent nonsense rather than an
error. So each export is compared with the source model, numerically, and the
figures are kept in ``report.json`` beside the file:

* ``load``: llama.cpp opens the file (with the LoRA GGUF applied, for adapter exports);
* ``tokenization``: llama.cpp's token ids equal the HF tokenizer's on sample texts;
* ``logits`` (f32/f16/bf16): the last-token logits match HF's within a tolerance
  relative to the logits' own scale;
* ``top1`` (q8_0 and K-quants): the greedy next token agrees with HF's on most
  positions of a sample text;
* ``generation``: a short greedy chat completion runs, through the chat template
  embedded in the GGUF.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from hegelion_core import HegelionError

#: max |llama.cpp - HF| over the last-token logits, as a fraction of max |HF logit|.
#: Measured on SmolLM2-135M (max |logit| 30): f32 4.4e-4, f16 1.5e-3, bf16 6.9e-3 of
#: the scale (tiny test models: f16 2e-4); a missing q/k permutation or a misplaced
#: norm is 5e-2 and more.
LOGIT_TOLERANCE: dict[str, float] = {"f32": 3e-3, "f16": 1e-2, "bf16": 4e-2}
#: share of positions where the greedy next token must agree with HF's.
TOP1_THRESHOLD: dict[str, float] = {"q8_0": 0.9, "q6_k": 0.85, "q5_k_m": 0.8, "q4_k_m": 0.7}

SAMPLE_TEXTS: tuple[str, ...] = (
    "Hello world! The thesis states a claim; the antithesis attacks it.",
    "Numbers 0 1 42 3.14159 and 2024-11-05, symbols (a+b)*c = {x: [y]} # ~ | \\ /",
    "Tabs\tand\n\nnewlines   and   runs of spaces  ",
    "Unicode: café naïve Zürich — “quotes” 中文 日本語 한국어 emoji 🙂🚀",
    "SYNTHESIS: markets work best inside rules that make prices tell the truth.",
)
CHAT_SAMPLE = [
    {"role": "system", "content": "You are a careful dialectical reasoner."},
    {"role": "user", "content": "Is free will compatible with determinism? Answer briefly."},
    {
        "role": "assistant",
        "content": "THESIS: yes, if freedom means acting on one's own "
        "reasons. ANTITHESIS: no, if it needs an open future.",
    },
    {"role": "user", "content": "What is the capital of France?"},
]


class VerificationFailed(HegelionError):
    """A check of the exported file failed; the message names it and its figures."""


class Check(BaseModel):
    name: str
    passed: bool
    detail: str
    figures: dict[str, Any] = Field(default_factory=dict)


class VerifyReport(BaseModel):
    """What ``report.json`` holds: one entry per check, with its figures."""

    gguf: str
    quantization: str
    reference: str
    adapter: str | None = None
    lora_gguf: str | None = None
    passed: bool = True
    checks: list[Check] = Field(default_factory=list)
    seconds: float = 0.0

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        self.passed = self.passed and check.passed
        return check

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        lines = [f"verification {'passed' if self.passed else 'FAILED'} ({self.seconds:.1f} s):"]
        lines += [f"  [{'ok' if c.passed else 'FAIL'}] {c.name}: {c.detail}" for c in self.checks]
        return "\n".join(lines)

    def write(self, path: Path) -> Path:
        from hegelion_core import atomic_output

        with atomic_output(path) as tmp:
            tmp.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path


def verify_export(
    gguf_path: Path,
    reference_dir: Path,
    quantization: str,
    *,
    adapter_dir: Path | None = None,
    lora_gguf: Path | None = None,
    texts: tuple[str, ...] = SAMPLE_TEXTS,
    max_tokens: int = 24,
) -> VerifyReport:
    """Run every check; return the report (``report.passed`` says whether all passed).

    ``reference_dir`` is the HF model the GGUF was made from; with ``adapter_dir`` the
    reference is that base with the PEFT adapter applied (unmerged), which must match
    ``gguf_path`` + ``lora_gguf`` in llama.cpp.
    """
    start = time.perf_counter()
    report = VerifyReport(
        gguf=str(gguf_path),
        quantization=quantization,
        reference=str(reference_dir),
        adapter=str(adapter_dir) if adapter_dir else None,
        lora_gguf=str(lora_gguf) if lora_gguf else None,
    )
    tokenizer, model = _load_reference(reference_dir, adapter_dir)
    llm = _load_llama(report, gguf_path, lora_gguf)
    if llm is None:
        report.seconds = time.perf_counter() - start
        return report
    try:
        report.add(_check_tokenization(llm, tokenizer, texts))
        ids = _chat_ids(tokenizer)
        hf_logits = _hf_logits(model, ids)
        cpp_logits = _llama_logits(llm, ids)
        if quantization in LOGIT_TOLERANCE:
            report.add(_check_logits(hf_logits, cpp_logits, quantization))
        else:
            report.add(_check_top1(hf_logits, cpp_logits, quantization))
        report.add(_check_generation(llm, tokenizer, max_tokens))
    finally:
        llm.close()
    report.seconds = time.perf_counter() - start
    return report


# ----- the two sides ---------------------------------------------------------------------


def _load_reference(reference_dir: Path, adapter_dir: Path | None) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok_dir = (
        adapter_dir
        if adapter_dir and (adapter_dir / "tokenizer_config.json").is_file()
        else reference_dir
    )
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    model = AutoModelForCausalLM.from_pretrained(reference_dir, dtype=torch.float32)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir)
    model.eval()
    return tokenizer, model


def _load_llama(report: VerifyReport, gguf_path: Path, lora_gguf: Path | None) -> Any:
    from llama_cpp import Llama

    try:
        with _quiet():
            llm = Llama(
                model_path=str(gguf_path),
                n_ctx=512,
                n_batch=512,
                logits_all=True,
                lora_path=str(lora_gguf) if lora_gguf else None,
                verbose=False,
                seed=0,
            )
    except (ValueError, RuntimeError, OSError) as exc:
        report.add(Check(name="load", passed=False, detail=f"llama.cpp cannot load it: {exc}"))
        return None
    meta = llm.metadata
    report.add(
        Check(
            name="load",
            passed=True,
            detail=f"llama.cpp loaded it ({llm.n_vocab()} tokens, arch "
            f"{meta.get('general.architecture', '?')})",
            figures={
                "n_vocab": llm.n_vocab(),
                "architecture": meta.get("general.architecture"),
                "file_type": meta.get("general.file_type"),
                "has_chat_template": "tokenizer.chat_template" in meta,
            },
        )
    )
    return llm


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence llama.cpp's C-level logging on stderr while loading."""
    import os
    import sys

    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    saved = os.dup(fd)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)


def _chat_ids(tokenizer: Any) -> list[int]:
    messages = CHAT_SAMPLE if tokenizer.chat_template else None
    if messages is None:
        return list(tokenizer(" ".join(SAMPLE_TEXTS))["input_ids"])
    try:
        out = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )
    except Exception:  # noqa: BLE001  (a template that rejects system turns)
        out = tokenizer.apply_chat_template(
            messages[1:], add_generation_prompt=True, tokenize=True, return_dict=True
        )
    return list(out["input_ids"])


def _hf_logits(model: Any, ids: list[int]) -> Any:
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def _llama_logits(llm: Any, ids: list[int]) -> Any:
    import numpy as np

    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


# ----- checks ----------------------------------------------------------------------------


def _check_tokenization(llm: Any, tokenizer: Any, texts: tuple[str, ...]) -> Check:
    """With the specials each side adds by default (BOS where the model wants one).

    A chat-formatted text (special tokens inside) is compared for BPE vocabularies only:
    for SentencePiece, llama.cpp adds the dummy-prefix space after every special token
    and HF's Metaspace only at the start, a known difference outside the converter.
    """
    spm = llm.metadata.get("tokenizer.ggml.model") == "llama"
    chat = (
        tokenizer.apply_chat_template(CHAT_SAMPLE[1:], tokenize=False, add_generation_prompt=True)
        if tokenizer.chat_template and not spm
        else None
    )
    samples = [*texts, *([chat] if chat else [])]
    mismatches = []
    for text in samples:
        hf = list(tokenizer(text, add_special_tokens=not (chat and text == chat))["input_ids"])
        cpp = llm.tokenize(text.encode("utf-8"), add_bos=not (chat and text == chat), special=True)
        if hf != cpp:
            at = next(
                (i for i, (a, b) in enumerate(zip(hf, cpp)) if a != b), min(len(hf), len(cpp))
            )
            mismatches.append(
                {
                    "text": text,
                    "first_difference": at,
                    "hf": hf[at : at + 8],
                    "llama_cpp": cpp[at : at + 8],
                }
            )
    ok = not mismatches
    detail = f"{len(samples) - len(mismatches)}/{len(samples)} sample texts tokenize identically"
    if not ok:
        m = mismatches[0]
        detail += (
            f"; first mismatch in {m['text'][:40]!r} at token {m['first_difference']}: "
            f"HF {m['hf']} vs llama.cpp {m['llama_cpp']}"
        )
    return Check(
        name="tokenization",
        passed=ok,
        detail=detail,
        figures={
            "samples": len(samples),
            "mismatches": mismatches,
            "chat_sample": chat is not None,
        },
    )


def _check_logits(hf: Any, cpp: Any, quantization: str) -> Check:
    import numpy as np

    last_hf, last_cpp = hf[-1], cpp[-1]
    scale = float(np.abs(last_hf).max()) or 1.0
    diff = float(np.abs(last_hf - last_cpp).max())
    tolerance = LOGIT_TOLERANCE[quantization] * scale
    ok = diff <= tolerance
    cos = float(last_hf @ last_cpp / (np.linalg.norm(last_hf) * np.linalg.norm(last_cpp) or 1.0))
    return Check(
        name="logits",
        passed=ok,
        detail=f"last-token logits max |diff| {diff:.3g} "
        f"{'<=' if ok else '>'} tolerance {tolerance:.3g} "
        f"({LOGIT_TOLERANCE[quantization]:g} x max |logit| {scale:.3g})",
        figures={
            "max_abs_diff": diff,
            "tolerance": tolerance,
            "relative_tolerance": LOGIT_TOLERANCE[quantization],
            "logit_scale": scale,
            "cosine": cos,
            "positions": int(hf.shape[0]),
            "top1_same": bool(last_hf.argmax() == last_cpp.argmax()),
        },
    )


def _check_top1(hf: Any, cpp: Any, quantization: str) -> Check:
    import numpy as np

    agree = float((hf.argmax(-1) == cpp.argmax(-1)).mean())
    threshold = TOP1_THRESHOLD.get(quantization, 0.7)
    ok = agree >= threshold
    cos = (hf * cpp).sum(-1) / (np.linalg.norm(hf, axis=-1) * np.linalg.norm(cpp, axis=-1))
    return Check(
        name="top1",
        passed=ok,
        detail=f"greedy next token agrees with HF on {agree:.0%} of {hf.shape[0]} positions "
        f"({'>=' if ok else '<'} threshold {threshold:.0%})",
        figures={
            "agreement": agree,
            "threshold": threshold,
            "positions": int(hf.shape[0]),
            "min_cosine": float(cos.min()),
            "mean_cosine": float(cos.mean()),
            "max_abs_diff": float(np.abs(hf - cpp).max()),
        },
    )


def _check_generation(llm: Any, tokenizer: Any, max_tokens: int) -> Check:
    """Greedy tokens from the prompt the GGUF's own chat template makes.

    Tokens are drawn with `Llama.generate` rather than `create_chat_completion`, whose
    text streaming can fail on a byte-fallback token from a random tiny model.
    """
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    messages = [{"role": "user", "content": CHAT_SAMPLE[-1]["content"]}]
    template = llm.metadata.get("tokenizer.chat_template")
    if template is None and tokenizer.chat_template:
        return Check(
            name="generation",
            passed=False,
            detail="the GGUF has no tokenizer.chat_template, the HF tokenizer has one",
        )
    try:
        if template:

            def piece(token: int) -> str:
                return llm.detokenize([token], special=True).decode("utf-8", "replace")

            formatted = Jinja2ChatFormatter(
                template=template,
                eos_token=piece(llm.token_eos()),
                bos_token=piece(llm.token_bos()) if llm.token_bos() >= 0 else "",
            )(messages=messages)
            prompt = llm.tokenize(
                formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True
            )
        else:
            prompt = llm.tokenize(messages[0]["content"].encode("utf-8"), add_bos=True)
        llm.reset()
        out: list[int] = []
        for token in llm.generate(prompt, temp=0.0, reset=True):
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token) or len(out) >= max_tokens:
                break
            out.append(token)
    except Exception as exc:  # noqa: BLE001  (embedded chat template or decoding failed)
        return Check(
            name="generation",
            passed=False,
            detail=f"generation failed: {type(exc).__name__}: {exc}",
        )
    text = llm.detokenize(out).decode("utf-8", "replace")
    return Check(
        name="generation",
        passed=True,
        detail=f"{len(out)} tokens: {json.dumps(text[:80])}",
        figures={
            "prompt": messages[0]["content"],
            "prompt_tokens": len(prompt),
            "text": text,
            "completion_tokens": len(out),
            "chat_template": bool(template),
        },
    )
