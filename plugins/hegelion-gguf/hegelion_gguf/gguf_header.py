"""Read a GGUF file's metadata header without llama.cpp.

The teacher needs a model's trained context length before it allocates a context
(a KV cache sized for a too-large ``n_ctx`` can exhaust memory before llama.cpp
could complain), and a file that is not GGUF deserves a clear error rather than
llama.cpp's generic "failed to load". Only the key/value header is parsed; tensor
data is never touched, so this is fast on multi-GB files.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Collection
from pathlib import Path
from typing import Any

MAGIC = b"GGUF"

# gguf value types -> struct format (little-endian); 8 = string, 9 = array.
_SCALARS: dict[int, str] = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9


class GGUFFormatError(ValueError):
    """The file is not a GGUF file this reader understands; the message names it."""


class _Cursor:
    def __init__(self, buf: mmap.mmap | bytes, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise GGUFFormatError(f"{self.path}: truncated GGUF header (at byte {self.pos})")
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        n = self.unpack("<Q")
        if self.pos + n > len(self.buf):
            raise GGUFFormatError(f"{self.path}: truncated GGUF header (at byte {self.pos})")
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return bytes(raw).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.unpack("<I"), self.unpack("<Q")
            return [self.value(etype) for _ in range(count)]
        raise GGUFFormatError(f"{self.path}: unknown GGUF value type {vtype} at byte {self.pos}")

    def skip(self, vtype: int) -> None:
        """Move past a value without decoding it (vocabularies are 100k+ strings)."""
        if vtype in _SCALARS:
            self.pos += struct.calcsize(_SCALARS[vtype])
        elif vtype == _STRING:
            length = self.unpack("<Q")  # read first: it moves pos
            self.pos += length
        elif vtype == _ARRAY:
            etype, count = self.unpack("<I"), self.unpack("<Q")
            if etype in _SCALARS:
                self.pos += struct.calcsize(_SCALARS[etype]) * count
            else:
                for _ in range(count):
                    self.skip(etype)
        else:
            raise GGUFFormatError(f"{self.path}: unknown GGUF value type {vtype} at {self.pos}")
        if self.pos > len(self.buf):
            raise GGUFFormatError(f"{self.path}: truncated GGUF header")


def read_metadata(
    path: str | Path, *, keys: Collection[str] | None = None, arrays: bool = True
) -> dict[str, Any]:
    """The GGUF key/value metadata of ``path``, plus ``"GGUF.version"``.

    With ``keys``, only those keys are kept and reading stops once all are found.
    Arrays come back as lists; ``arrays=False`` leaves them out, which skips a
    tokenizer's vocabulary unread (several times faster).
    Raises `GGUFFormatError` for a file that is not GGUF, `OSError` if it cannot be read.
    """
    path = Path(path)
    wanted = set(keys) if keys is not None else None
    with path.open("rb") as fh:
        head = fh.read(4)
        if head != MAGIC:
            raise GGUFFormatError(
                f"{path} is not a GGUF file (it starts with {head!r}, a GGUF file with {MAGIC!r})"
            )
        if path.stat().st_size < 24:
            raise GGUFFormatError(f"{path}: truncated GGUF header")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            cur = _Cursor(buf, path)
            cur.pos = 4
            version = cur.unpack("<I")
            if version not in (2, 3):
                raise GGUFFormatError(
                    f"{path}: GGUF version {version} is not supported (2 and 3 are; "
                    "a huge number means a big-endian file)"
                )
            cur.unpack("<Q")  # tensor count
            n_kv = cur.unpack("<Q")
            meta: dict[str, Any] = {"GGUF.version": version}
            for _ in range(n_kv):
                key, vtype = cur.string(), cur.unpack("<I")
                if (wanted is not None and key not in wanted) or (vtype == _ARRAY and not arrays):
                    cur.skip(vtype)
                    continue
                meta[key] = cur.value(vtype)
                if wanted is not None and wanted <= meta.keys():
                    break
            return meta


def context_length(meta: dict[str, Any]) -> int | None:
    """The trained context length (``<architecture>.context_length``), if recorded."""
    arch = meta.get("general.architecture")
    value = meta.get(f"{arch}.context_length") if arch else None
    return int(value) if value is not None else None
