"""The training data a trainer reads: its files (a split directory or one file), the
format its rows are in, and whether that format fits the method: a dataset whose format
does not fit is an error that says which format is needed."""

from __future__ import annotations

from pathlib import Path

import orjson

from hegelion_core.errors import HegelionError, InputError
from hegelion_core.training.config import Method

FORMAT_KEYS: dict[str, set[str]] = {
    "dpo": {"prompt", "chosen", "rejected"},
    "chat": {"messages"},
    "sft": {"instruction", "output"},
    "scu": {"text"},
}
METHOD_FORMATS: dict[str, tuple[str, ...]] = {"sft": ("chat", "sft", "scu"), "dpo": ("dpo",)}


def data_files(data: Path) -> dict[str, Path]:
    """Split name -> file: a directory of train/valid/test JSONL, or one file (train)."""
    if data.is_dir():
        files = {
            s: data / f"{s}.jsonl"
            for s in ("train", "valid", "test")
            if (data / f"{s}.jsonl").exists()
        }
        if "train" not in files:
            raise InputError(
                data,
                None,
                "no train.jsonl in the data directory",
                hint="make one with `hegelion dataset ... --format mlx` or --valid-ratio",
            )
        return files
    if not data.is_file():
        raise InputError(data, None, "training data not found")
    return {"train": data}


def detect_format(path: Path) -> str:
    """The formatter that wrote ``path``, from its first row's keys."""
    with path.open("rb") as fp:
        for lineno, line in enumerate(fp, 1):
            if line.strip():
                try:
                    keys = set(orjson.loads(line))
                except orjson.JSONDecodeError as exc:
                    raise InputError(path, lineno, f"invalid JSON ({exc})") from None
                for name, needed in FORMAT_KEYS.items():
                    if needed <= keys:
                        return name
                raise InputError(
                    path,
                    lineno,
                    f"unrecognised row with keys {sorted(keys)}",
                    hint="expected rows from `hegelion dataset` (chat, sft, scu, dpo)",
                )
    raise InputError(path, None, "the training file is empty")


def check_data(data: Path, method: Method, accepts: tuple[str, ...] | None = None) -> str:
    """The data's format, or an error saying which format ``method`` needs."""
    fmt = detect_format(data_files(data)["train"])
    allowed = [f for f in METHOD_FORMATS[method] if accepts is None or f in accepts]
    if not allowed:
        raise HegelionError(
            f"this trainer cannot train --method {method} (it reads {', '.join(accepts or ())} rows); "
            f"for {method} use --trainer trl"
        )
    if fmt not in allowed:
        raise HegelionError(
            f"{data} holds {fmt} rows, but --method {method} needs {' or '.join(allowed)} rows: "
            f"make them with `hegelion dataset TRACES OUT --format {allowed[0]}`"
        )
    return fmt
