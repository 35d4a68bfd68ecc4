"""Hugging Face safetensors -> GGUF, natively with gguf-py, for the families users fine-tune.

The file is written in two passes over the tensor list: first every tensor's name,
shape and GGML type (known from the safetensors headers without reading data), then
the data, one tensor at a time (read, permute, encode, write, drop). Memory stays at
about one tensor however large the model. Output goes to a temporary sibling that is
renamed into place only when complete.

With ``LLAMA_CPP_DIR`` set to a llama.cpp checkout, its ``convert_hf_to_gguf.py`` runs
instead (it knows many more architectures and tokenizers).
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hegelion_core import atomic_output
from hegelion_gguf.export.errors import (
    ConverterFailed,
    ExportError,
    ModelConfigError,
    UnsupportedArchitecture,
)
from hegelion_gguf.export.tensors import (
    OutType,
    SafetensorsReader,
    encode,
    encoded_info,
    gguf_qtype,
    permute_qk,
)
from hegelion_gguf.export.vocab import VocabSummary, write_vocab

__all__ = [
    "LLAMA_CPP_DIR_ENV",
    "OUTTYPES",
    "SUPPORTED_ARCHITECTURES",
    "ModelSpec",
    "convert_hf_to_gguf",
    "read_model_spec",
]

log = logging.getLogger(__name__)

LLAMA_CPP_DIR_ENV = "LLAMA_CPP_DIR"

# HF `architectures[0]` -> GGUF architecture. Mistral is llama in llama.cpp: same
# tensors, same rope (its sliding window is not used by the llama graph).
SUPPORTED_ARCHITECTURES: dict[str, str] = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
}

OUTTYPES: tuple[str, ...] = ("f32", "f16", "bf16", "q8_0")

# Tensors with no GGUF counterpart that the llama.cpp graph recomputes.
_IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)


@dataclass(frozen=True)
class RopeSpec:
    theta: float
    kind: str  # default | linear | llama3 | yarn
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """What the converter needs from config.json, validated."""

    config_path: Path
    hf_arch: str
    arch: str
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int | None  # only when config.json states it
    n_ctx: int
    rms_eps: float
    vocab_size: int
    tied: bool
    rope: RopeSpec
    name: str

    @property
    def permute(self) -> bool:
        """llama-family rope wants q/k rows interleaved (see `permute_qk`)."""
        return self.arch == "llama"

    @property
    def rope_dim(self) -> int:
        return self.head_dim or self.n_embd // self.n_head

    def gguf_arch(self) -> Any:
        import gguf

        return next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == self.arch)


def read_model_spec(model_dir: Path) -> ModelSpec:
    """Parse and check `model_dir/config.json`; errors name the file and the key."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise ModelConfigError(
            path,
            "not found" if not path.exists() else "not a file",
            hint="pass the directory that save_pretrained() wrote (config.json, "
            "model.safetensors, tokenizer files)",
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelConfigError(path, f"not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ModelConfigError(path, "expected a JSON object")
    archs = config.get("architectures")
    if not isinstance(archs, list) or not archs or not isinstance(archs[0], str):
        raise ModelConfigError(
            path,
            "missing or not a list of class names",
            key="architectures",
            hint='add e.g. "architectures": ["LlamaForCausalLM"]',
        )
    hf_arch = archs[0]
    if hf_arch not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedArchitecture(path, hf_arch, SUPPORTED_ARCHITECTURES)

    def need(key: str, kind: type = int) -> Any:
        value = config.get(key)
        if value is None:
            raise ModelConfigError(path, "required key is missing", key=key)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ModelConfigError(
                path, f"expected {kind.__name__}, got {type(value).__name__} {value!r}", key=key
            )
        return value

    n_head = need("num_attention_heads")
    n_embd = need("hidden_size")
    head_dim = config.get("head_dim")
    if head_dim is not None and not isinstance(head_dim, int):
        raise ModelConfigError(path, f"expected int, got {head_dim!r}", key="head_dim")
    spec = ModelSpec(
        config_path=path,
        hf_arch=hf_arch,
        arch=SUPPORTED_ARCHITECTURES[hf_arch],
        n_layer=need("num_hidden_layers"),
        n_embd=n_embd,
        n_ff=need("intermediate_size"),
        n_head=n_head,
        n_head_kv=config.get("num_key_value_heads") or n_head,
        head_dim=head_dim,
        n_ctx=need("max_position_embeddings"),
        rms_eps=need("rms_norm_eps", float),
        vocab_size=need("vocab_size"),
        tied=bool(config.get("tie_word_embeddings", False)),
        rope=_rope_spec(path, config),
        name=Path(model_dir).resolve().name,
    )
    if spec.head_dim is None and spec.n_embd % spec.n_head:
        raise ModelConfigError(
            path,
            f"hidden_size {n_embd} is not divisible by num_attention_heads {n_head}",
            key="head_dim",
            hint="state head_dim in config.json",
        )
    return spec


def _rope_spec(path: Path, config: dict[str, Any]) -> RopeSpec:
    """Rope settings from transformers 5 (`rope_parameters`) or 4 (`rope_theta`, `rope_scaling`)."""
    params = config.get("rope_parameters") or config.get("rope_scaling") or {}
    key = "rope_parameters" if config.get("rope_parameters") else "rope_scaling"
    if not isinstance(params, dict):
        raise ModelConfigError(path, f"expected an object, got {params!r}", key=key)
    if "full_attention" in params:  # per-layer-type rope (transformers 5)
        params = params["full_attention"]
    theta = params.get("rope_theta", config.get("rope_theta", 10000.0))
    kind = str(params.get("rope_type") or params.get("type") or "default").lower()
    if kind not in ("default", "linear", "llama3", "yarn"):
        raise ModelConfigError(
            path,
            f"rope type {kind!r} is not supported by this converter "
            "(supported: default, linear, llama3, yarn)",
            key=key,
            hint="set LLAMA_CPP_DIR to use llama.cpp's converter",
        )
    if kind in ("linear", "yarn") and not isinstance(params.get("factor"), (int, float)):
        raise ModelConfigError(path, f"rope type {kind!r} needs a numeric 'factor'", key=key)
    return RopeSpec(float(theta), kind, dict(params))


@dataclass(frozen=True)
class _Planned:
    gguf_name: str
    hf_name: str | None  # None: computed (rope_freqs)
    shape: tuple[int, ...]
    qtype: Any


def plan_tensors(spec: ModelSpec, reader: SafetensorsReader, outtype: OutType) -> list[_Planned]:
    """Every output tensor with its GGUF name and type, from the headers alone."""
    import gguf

    tmap = gguf.get_tensor_name_map(spec.gguf_arch(), spec.n_layer)
    planned: list[_Planned] = []
    unknown: list[str] = []
    for name in reader.names():
        if name.endswith(_IGNORED_SUFFIXES):
            continue
        if name == "lm_head.weight" and spec.tied:
            continue  # llama.cpp reuses token_embd for the output when output is absent
        new = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            unknown.append(name)
            continue
        shape = reader.shape(name)
        planned.append(_Planned(new, name, shape, gguf_qtype(shape, outtype)))
    if unknown:
        raise ExportError(
            f"{reader.files[0].parent}: {len(unknown)} tensor(s) have no GGUF {spec.arch} "
            f"counterpart: {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}\n"
            "  hint: the checkpoint is not a plain "
            f"{spec.hf_arch}; merge adapters first and drop extra heads"
        )
    if spec.arch == "llama" and spec.rope.kind == "llama3":
        planned.append(
            _Planned(
                "rope_freqs.weight", None, (spec.rope_dim // 2,), gguf.GGMLQuantizationType.F32
            )
        )
    return planned


def llama3_rope_factors(spec: ModelSpec) -> np.ndarray:
    """Per-frequency divisors of Llama 3.1's rope scaling, as llama.cpp's converter writes them."""
    p = spec.rope.params
    dim = spec.rope_dim
    freqs = 1.0 / (spec.rope.theta ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor = p.get("factor", 8.0)
    low, high = p.get("low_freq_factor", 1.0), p.get("high_freq_factor", 4.0)
    old_ctx = p.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def write_hparams(writer: Any, spec: ModelSpec) -> None:
    """The `<arch>.*` keys llama.cpp reads for these architectures."""
    import gguf

    writer.add_context_length(spec.n_ctx)
    writer.add_embedding_length(spec.n_embd)
    writer.add_block_count(spec.n_layer)
    writer.add_feed_forward_length(spec.n_ff)
    writer.add_head_count(spec.n_head)
    writer.add_head_count_kv(spec.n_head_kv)
    writer.add_rope_freq_base(spec.rope.theta)
    writer.add_layer_norm_rms_eps(spec.rms_eps)
    writer.add_vocab_size(spec.vocab_size)
    if spec.head_dim is not None:
        writer.add_key_length(spec.head_dim)
        writer.add_value_length(spec.head_dim)
    if spec.arch == "llama":
        writer.add_rope_dimension_count(spec.rope_dim)
    p = spec.rope.params
    if spec.rope.kind == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(p["factor"]))
    elif spec.rope.kind == "yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(float(p["factor"]))
        orig = p.get("original_max_position_embeddings")
        if orig is not None:
            writer.add_rope_scaling_orig_ctx_len(int(orig))


def _ftype(outtype: OutType) -> int:
    import gguf

    return {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "bf16": gguf.LlamaFileType.MOSTLY_BF16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }[outtype]


def convert_hf_to_gguf(
    model_dir: Path,
    out_path: Path,
    outtype: OutType = "f16",
) -> Path:
    """Convert the HF checkpoint in `model_dir` to one GGUF file at `out_path`.

    Uses llama.cpp's converter when ``LLAMA_CPP_DIR`` is set, else the native one.
    Raises `UnsupportedArchitecture`, `MissingTokenizer`, `ModelConfigError` (bad or
    missing config.json), `MissingWeights`, `UnknownPreTokenizer`; a failed write
    leaves `out_path` as it was.
    """
    model_dir, out_path = Path(model_dir), Path(out_path)
    if outtype not in OUTTYPES:
        raise ExportError(f"outtype {outtype!r} is not one of {', '.join(OUTTYPES)}")
    if not model_dir.is_dir():
        raise ModelConfigError(model_dir, "model directory not found")
    llama_cpp_dir = os.environ.get(LLAMA_CPP_DIR_ENV, "").strip()
    if llama_cpp_dir:
        return _convert_with_llama_cpp(Path(llama_cpp_dir), model_dir, out_path, outtype)
    return _convert_native(model_dir, out_path, outtype)


def _convert_native(model_dir: Path, out_path: Path, outtype: OutType) -> Path:
    import gguf

    spec = read_model_spec(model_dir)
    reader = SafetensorsReader.for_model(model_dir)
    planned = plan_tensors(spec, reader, outtype)
    with atomic_output(out_path) as tmp:
        writer = gguf.GGUFWriter(tmp, spec.arch)
        try:
            writer.add_type(gguf.GGUFType.MODEL)
            writer.add_name(spec.name)
            writer.add_file_type(_ftype(outtype))
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
            write_hparams(writer, spec)
            summary: VocabSummary = write_vocab(writer, model_dir, spec.vocab_size)
            for t in planned:
                shape, dtype, nbytes = encoded_info(t.shape, t.qtype)
                raw = t.qtype if dtype == np.uint8 else None
                writer.add_tensor_info(t.gguf_name, shape, dtype, nbytes, raw_dtype=raw)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            for t in planned:
                data = _tensor_data(spec, reader, t)
                writer.write_tensor_data(encode(data, t.qtype))
                del data
        finally:
            writer.close()
            reader.close()
    log.info(
        "converted %s (%s, %d tensors, tokenizer %s/%s from %s) to %s",
        model_dir,
        spec.arch,
        len(planned),
        summary.model,
        summary.pre,
        summary.pre_source,
        out_path,
    )
    return out_path


def _tensor_data(spec: ModelSpec, reader: SafetensorsReader, t: _Planned) -> np.ndarray:
    if t.hf_name is None:
        return llama3_rope_factors(spec)
    data = reader.read(t.hf_name)
    if spec.permute:
        if t.hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            data = permute_qk(data, spec.n_head, spec.n_head)
        elif t.hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            data = permute_qk(data, spec.n_head, spec.n_head_kv)
    return data


def _convert_with_llama_cpp(
    llama_cpp_dir: Path, model_dir: Path, out_path: Path, outtype: OutType
) -> Path:
    """Run the checkout's convert_hf_to_gguf.py into a temporary file, then rename."""
    script = llama_cpp_dir / "convert_hf_to_gguf.py"
    if not script.is_file():
        raise ConverterFailed(
            f"{LLAMA_CPP_DIR_ENV}={llama_cpp_dir}: no convert_hf_to_gguf.py there\n"
            f"  hint: point {LLAMA_CPP_DIR_ENV} at the root of a llama.cpp checkout, or unset "
            "it to use Hegelion's built-in converter"
        )
    with atomic_output(out_path) as tmp:
        cmd = [
            sys.executable,
            str(script),
            str(model_dir),
            "--outfile",
            str(tmp),
            "--outtype",
            outtype,
        ]
        log.info("running %s", " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise ConverterFailed(
                f"{script} exited with status {proc.returncode} converting {model_dir}:\n{tail}"
            )
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise ConverterFailed(f"{script} exited 0 but wrote nothing to {tmp}")
    return out_path
