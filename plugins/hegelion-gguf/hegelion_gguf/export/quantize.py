"""Quantize a GGUF file (K-quants included) through llama-cpp-python's binding.

gguf-py quantizes only the legacy block types in numpy; K-quants need llama.cpp's own
`llama_model_quantize`, which llama-cpp-python exposes (it ships no `llama-quantize`
binary). The output is written to a temporary sibling and renamed when complete.

K-quant blocks span 256 values: a tensor whose rows are not a multiple of 256 gets a
fallback type chosen by llama.cpp (Q5_0/Q8_0...), so tiny models are only partly
K-quantized; real models (hidden 576 and up, multiples of 256 or 64) mostly are not
affected except for a few odd-sized tensors.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path
from typing import Literal

from hegelion_core import atomic_output
from hegelion_gguf.export.errors import QuantizeError

__all__ = ["QTYPES", "QType", "quantize_gguf"]

log = logging.getLogger(__name__)

QType = Literal[
    "q8_0",
    "q4_k_m",
    "q5_k_m",
    "q6_k",
    "q4_0",
    "q4_1",
    "q5_0",
    "q5_1",
    "q2_k",
    "q3_k_s",
    "q3_k_m",
    "q3_k_l",
    "q4_k_s",
    "q5_k_s",
    "f16",
    "bf16",
    "f32",
]

# Hegelion's name -> llama.cpp's LLAMA_FTYPE_* constant name.
QTYPES: dict[str, str] = {
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
    "q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0",
    "q5_1": "LLAMA_FTYPE_MOSTLY_Q5_1",
    "q2_k": "LLAMA_FTYPE_MOSTLY_Q2_K",
    "q3_k_s": "LLAMA_FTYPE_MOSTLY_Q3_K_S",
    "q3_k_m": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
    "q3_k_l": "LLAMA_FTYPE_MOSTLY_Q3_K_L",
    "q4_k_s": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "q5_k_s": "LLAMA_FTYPE_MOSTLY_Q5_K_S",
    "f16": "LLAMA_FTYPE_MOSTLY_F16",
    "bf16": "LLAMA_FTYPE_MOSTLY_BF16",
    "f32": "LLAMA_FTYPE_ALL_F32",
}

_GGUF_MAGIC = b"GGUF"


def quantize_gguf(src: Path, dst: Path, qtype: QType, *, nthread: int = 0) -> Path:
    """Write `src` (an f32/f16/bf16 GGUF model) quantized to `qtype` at `dst`.

    `nthread` 0 lets llama.cpp use every core. Raises `QuantizeError` naming the file
    and the type when the input is not a GGUF model, the type is unknown, or llama.cpp
    fails; `dst` is then left as it was.
    """
    src, dst = Path(src), Path(dst)
    name = qtype.lower() if isinstance(qtype, str) else qtype
    if name not in QTYPES:
        raise QuantizeError(f"unknown quantization {qtype!r}; choose one of: {', '.join(QTYPES)}")
    if not src.is_file():
        raise QuantizeError(f"{src}: GGUF file not found")
    with src.open("rb") as fp:
        if fp.read(4) != _GGUF_MAGIC:
            raise QuantizeError(f"{src}: not a GGUF file (bad magic); convert it first")
    if src.resolve() == dst.resolve():
        raise QuantizeError(f"{dst}: output would overwrite its own input; choose another path")

    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - the plugin depends on it
        raise QuantizeError(
            "quantization needs llama-cpp-python: pip install 'llama-cpp-python>=0.3.30'"
        ) from exc
    ftype = getattr(llama_cpp, QTYPES[name], None)
    if ftype is None:
        raise QuantizeError(
            f"this llama-cpp-python ({getattr(llama_cpp, '__version__', '?')}) does not know "
            f"{QTYPES[name]}; upgrade it"
        )
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = nthread or (os.cpu_count() or 1)
    with atomic_output(dst) as tmp:
        log.info("quantizing %s to %s (%s)", src, dst, name)
        status = llama_cpp.llama_model_quantize(
            os.fsencode(src), os.fsencode(tmp), ctypes.byref(params)
        )
        if status != 0:
            raise QuantizeError(
                f"llama.cpp could not quantize {src} to {name} (status {status}); "
                "its log above says why (a LoRA adapter, an unsupported tensor, or a full disk)"
            )
        if tmp.stat().st_size == 0:
            raise QuantizeError(f"llama.cpp reported success but wrote nothing for {dst}")
    return dst
