"""Reading back what experiment trackers wrote offline, for the trainers' tests.

wandb 0.2x/0.3x ship no Python reader for an offline run's ``.wandb`` file any more
(``wandb.sdk.internal.datastore`` is gone; wandb-core writes the file), so its framing is
read here and each record parsed with wandb's own protobuf schema: a 7-byte header
(``:W&B``, magic 0xBEE1, version 0), then LevelDB-log blocks of 32 KiB whose records are
crc32c (4 bytes), length (2, little-endian), type (1 full, 2 first, 3 middle, 4 last)
and the data; fewer than 7 bytes left in a block are padding.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

_HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
_BLOCK = 32768


def wandb_records(path: Path) -> list[Any]:
    """Every record (``wandb_internal_pb2.Record``) of an offline ``.wandb`` file."""
    from wandb.proto import wandb_internal_pb2

    raw = Path(path).read_bytes()
    if raw[: len(_HEADER)] != _HEADER:
        raise ValueError(f"{path} is not a .wandb file (header {raw[:7]!r})")
    pos, pieces, records = len(_HEADER), b"", []
    while pos + 7 <= len(raw):
        left = _BLOCK - pos % _BLOCK
        if left < 7:
            pos += left
            continue
        length, kind = struct.unpack("<HB", raw[pos + 4 : pos + 7])
        if kind == 0:  # zero padding at the end
            break
        pieces += raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            records.append(record)
            pieces = b""
    return records


def wandb_offline_run(wandb_dir: Path) -> Path:
    """The one offline run's ``.wandb`` file under ``wandb_dir`` (wandb's own ``wandb/``)."""
    found = sorted(Path(wandb_dir).glob("offline-run-*/*.wandb"))
    if len(found) != 1:
        raise AssertionError(f"one offline run under {wandb_dir}, found {found}")
    return found[0]


def wandb_history(records: list[Any]) -> list[dict[str, Any]]:
    """Each ``wandb.log`` call's values, by key, in order."""
    return [_items(r.history.item) for r in records if r.HasField("history")]


def _items(items: Any) -> dict[str, Any]:
    return {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items}
