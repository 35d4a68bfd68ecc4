"""Tensor I/O for conversion: read safetensors one tensor at a time, encode for GGUF.

Reading goes through the safetensors header and a read-only memory map, so a
checkpoint of any size costs one tensor of RAM at a time (plus the page cache).
`safetensors.safe_open(framework="numpy")` cannot return bfloat16, the dtype most
released checkpoints use, and numpy has no bfloat16: the map gives the raw bits and
`_to_float32` widens them exactly. The format (8-byte little-endian header length,
JSON header, raw little-endian data) is documented and stable.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from hegelion_gguf.export.errors import MissingWeights

if TYPE_CHECKING:
    from gguf import GGMLQuantizationType

OutType = Literal["f32", "f16", "bf16", "q8_0"]

_NUMPY_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # raw bits, widened by _to_float32
}


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lives: file, dtype, shape, byte range in the data section."""

    path: Path
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


class SafetensorsReader:
    """All tensors of one or more safetensors files, read lazily through memory maps."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self.entries: dict[str, TensorEntry] = {}
        self._data_offset: dict[Path, int] = {}
        self._maps: dict[Path, np.memmap] = {}
        for path in files:
            header, offset = _read_header(path)
            self._data_offset[path] = offset
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                start, end = info["data_offsets"]
                self.entries[name] = TensorEntry(
                    path, info["dtype"], tuple(info["shape"]), int(start), int(end)
                )

    @classmethod
    def for_model(cls, model_dir: Path, stem: str = "model") -> SafetensorsReader:
        """The checkpoint in `model_dir`: `<stem>.safetensors`, its index, or its shards."""
        index = model_dir / f"{stem}.safetensors.index.json"
        single = model_dir / f"{stem}.safetensors"
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise MissingWeights(f"{index}: unreadable weight map ({exc})") from None
            files = [model_dir / name for name in dict.fromkeys(weight_map.values())]
            missing = [str(f) for f in files if not f.is_file()]
            if missing:
                raise MissingWeights(
                    f"{index} lists shards that are not there: {', '.join(missing)}"
                )
        elif single.is_file():
            files = [single]
        else:
            files = sorted(model_dir.glob(f"{stem}-*-of-*.safetensors"))
        if not files:
            pickles = sorted(p.name for p in model_dir.glob("*.bin"))
            hint = (
                f" (found {', '.join(pickles)}: re-save with "
                "save_pretrained(..., safe_serialization=True))"
                if pickles
                else ""
            )
            raise MissingWeights(f"{model_dir}: no {stem}.safetensors weights{hint}")
        return cls(files)

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def names(self) -> list[str]:
        return list(self.entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entries[name].shape

    def read(self, name: str) -> np.ndarray:
        """The tensor as a fresh float32 array (the only copy this reader makes)."""
        entry = self.entries[name]
        dtype = _NUMPY_DTYPES.get(entry.dtype)
        if dtype is None:
            raise MissingWeights(
                f"{entry.path}: tensor {name!r} has dtype {entry.dtype}; only floating "
                "point checkpoints (F32, F16, BF16, F64) can be converted, "
                "dequantize it first"
            )
        mm = self._maps.get(entry.path)
        if mm is None:
            mm = self._maps[entry.path] = np.memmap(entry.path, dtype=np.uint8, mode="r")
        begin = self._data_offset[entry.path] + entry.start
        raw = mm[begin : self._data_offset[entry.path] + entry.end].view(dtype)
        return _to_float32(raw, entry.dtype).reshape(entry.shape)

    def close(self) -> None:
        self._maps.clear()


def _read_header(path: Path) -> tuple[dict, int]:
    try:
        with path.open("rb") as fp:
            (size,) = struct.unpack("<Q", fp.read(8))
            if size > 100 * 1024 * 1024:
                raise ValueError(f"header of {size} bytes")
            header = json.loads(fp.read(size))
    except (OSError, ValueError, struct.error) as exc:
        raise MissingWeights(f"{path}: not a readable safetensors file ({exc})") from None
    return header, 8 + size


def _to_float32(raw: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "BF16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32)


def permute_qk(weights: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """llama.cpp's row order for llama-family q/k projections.

    Hugging Face stores rotary halves as [first half | second half] per head; GGML's
    llama rope wants them interleaved. Rows (axis 0) are regrouped per head; works for
    weights (out, in), biases (out,) and LoRA B matrices (out, r) alike.
    """
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    shape = weights.shape
    return (
        weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:])
        .swapaxes(1, 2)
        .reshape(shape)
    )


def gguf_qtype(
    shape: tuple[int, ...], outtype: OutType, *, force_f32: bool = False
) -> GGMLQuantizationType:
    """The GGML type a tensor of `shape` gets for `outtype`.

    1-D tensors (norms, biases) stay F32 as llama.cpp's converter keeps them; Q8_0
    needs rows divisible by its block size (32) and falls back to F16 otherwise.
    """
    import gguf

    T = gguf.GGMLQuantizationType
    if force_f32 or len(shape) <= 1 or outtype == "f32":
        return T.F32
    if outtype == "f16":
        return T.F16
    if outtype == "bf16":
        return T.BF16
    block = gguf.GGML_QUANT_SIZES[T.Q8_0][0]
    return T.Q8_0 if shape[-1] % block == 0 else T.F16


def encode(data: np.ndarray, qtype: GGMLQuantizationType) -> np.ndarray:
    """`data` (float32) in GGML type `qtype`: F32/F16 as such, others as packed bytes."""
    import gguf

    T = gguf.GGMLQuantizationType
    if qtype == T.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if qtype == T.F16:
        return np.ascontiguousarray(data, dtype=np.float16)
    return gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), qtype)


def encoded_info(
    shape: tuple[int, ...], qtype: GGMLQuantizationType
) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape as passed to `GGUFWriter.add_tensor_info`, numpy dtype, byte size)."""
    import gguf

    T = gguf.GGMLQuantizationType
    if qtype == T.F32:
        return shape, np.dtype(np.float32), int(np.prod(shape)) * 4
    if qtype == T.F16:
        return shape, np.dtype(np.float16), int(np.prod(shape)) * 2
    byte_shape = tuple(gguf.quant_shape_to_byte_shape(shape, qtype))
    return byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape))
