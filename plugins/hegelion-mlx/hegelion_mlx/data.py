"""Hegelion datasets as mlx-lm datasets.

mlx-lm reads ``messages``, ``prompt``/``completion`` and ``text`` rows; Hegelion's
``sft`` rows (instruction/input/output/system) are turned into ``messages`` here so
every format trains through the same chat template. Rows then go to mlx-lm's own
`create_dataset`, so tokenization is exactly what ``mlx_lm.lora`` would do.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hegelion_core import HegelionError, InputError, data_files, detect_format, read_jsonl


@dataclass
class Splits:
    """The train split (required) and the valid split (None without one), as mlx-lm
    datasets wrapped in `CacheDataset` so each row is tokenized once."""

    train: Any
    valid: Any | None
    format: str
    mask_prompt: bool


def sft_to_messages(row: dict[str, Any]) -> dict[str, Any]:
    """An ``sft`` row as chat ``messages``, the way core's chat formatter writes them."""
    user = row["instruction"]
    if (row.get("input") or "").strip():
        user = f"{user}\n\n{row['input']}"
    messages = []
    if row.get("system"):
        messages.append({"role": "system", "content": row["system"]})
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]
    return {"messages": messages}


def read_format(path: Path) -> str:
    """The file's row format; DPO rows are an error (MLX LoRA here trains SFT only)."""
    fmt = detect_format(path)
    if fmt == "dpo":
        raise InputError(
            path,
            None,
            "holds dpo rows; MLX LoRA here trains SFT only",
            hint="use --trainer trl for DPO, or make chat rows with `--format mlx`",
        )
    return fmt


def read_rows(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """The file's format and its rows, ``sft`` rows converted to ``messages``."""
    fmt = read_format(path)
    rows = [row for _, row in read_jsonl(path)]
    if fmt == "sft":
        rows = [sft_to_messages(r) for r in rows]
    return fmt, rows


def load_splits(data: Path, tokenizer: Any, *, mask_prompt: bool) -> Splits:
    """Train (and valid, when ``data`` is a split directory with one) as mlx-lm datasets.

    A single file is the train split only: splitting it here would silently change
    what the user made with ``hegelion dataset --valid-ratio``. ``mask_prompt`` (train
    on the assistant turn only) needs chat rows; ``text`` rows train on every token.
    """
    from mlx_lm.tuner.datasets import CacheDataset, create_dataset

    files = data_files(Path(data))
    out: dict[str, Any] = {}
    fmt = "chat"
    for split in ("train", "valid"):
        if split not in files:
            continue
        split_fmt, rows = read_rows(files[split])
        if split == "train":
            fmt = split_fmt
        if not rows:
            if split == "train":
                raise InputError(files[split], None, "the train split is empty")
            continue
        masked = mask_prompt and split_fmt != "scu"
        try:
            dataset = create_dataset(rows, tokenizer, types.SimpleNamespace(mask_prompt=masked))
        except ValueError as exc:
            raise InputError(files[split], None, f"mlx-lm cannot read these rows: {exc}") from None
        out[split] = CacheDataset(dataset)
    if "train" not in out:
        raise HegelionError(f"{data}: no train rows")
    return Splits(
        train=out["train"],
        valid=out.get("valid"),
        format=fmt,
        mask_prompt=mask_prompt and fmt != "scu",
    )
