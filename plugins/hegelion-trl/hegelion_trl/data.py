"""Rows written by ``hegelion dataset`` turned into the dataset shapes TRL reads.

TRL masks the loss by the shape of a row, so the shape is chosen here on purpose:

- ``chat`` rows (``messages``) stay messages when the tokenizer's chat template
  marks the assistant turn with ``{% generation %}`` (TRL's ``assistant_only_loss``
  needs those markers). Most real templates lack them, so otherwise the rows become
  conversational prompt/completion pairs, which TRL masks by itself.
- ``sft`` rows (instruction/input/output/system) become conversational
  prompt/completion pairs (plain strings when the tokenizer has no chat template).
- ``scu`` rows (ChatML ``text``) split at the last assistant turn into a
  prompt/completion pair, so the prompt is not trained on either.
- ``dpo`` rows go to DPOTrainer as they are (standard or conversational).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from hegelion_core import InputError, data_files, detect_format
from hegelion_trl.config_map import Shape

if TYPE_CHECKING:
    import datasets

ASSISTANT_OPEN = "<|im_start|>assistant\n"


@dataclass
class Prepared:
    """The splits as TRL will read them, and the shape that decides the loss mask."""

    train: datasets.Dataset
    eval: datasets.Dataset | None
    shape: Shape
    source_format: str


def has_generation_markers(tokenizer: Any) -> bool:
    template = getattr(tokenizer, "chat_template", None)
    return isinstance(template, str) and "generation" in template and "endgeneration" in template


def read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) for every non-blank line."""
    rows = []
    with path.open("rb") as fp:
        for lineno, line in enumerate(fp, 1):
            if line.strip():
                try:
                    rows.append((lineno, orjson.loads(line)))
                except orjson.JSONDecodeError as exc:
                    raise InputError(path, lineno, f"invalid JSON ({exc})") from None
    if not rows:
        raise InputError(path, None, "no rows")
    return rows


def choose_shape(fmt: str, *, completion_only: bool, markers: bool, chat_template: bool) -> Shape:
    """Which TRL shape the ``fmt`` rows become (see the module docstring)."""
    if fmt == "dpo":
        return "preference"
    if fmt == "chat":
        return "messages" if markers or not completion_only else "prompt_completion"
    if fmt == "sft":
        return "prompt_completion"
    if fmt == "scu":
        return "prompt_completion" if completion_only else "text"
    raise ValueError(f"unknown format {fmt!r}")


def convert_row(
    row: dict[str, Any], fmt: str, shape: Shape, *, chat_template: bool
) -> dict[str, Any]:
    """One row in ``shape``; the caller reports errors with the file and line."""
    if shape == "preference":
        return {k: row[k] for k in ("prompt", "chosen", "rejected")}
    if fmt == "chat":
        messages = row["messages"]
        if shape == "messages":
            return {"messages": messages}
        if not messages or messages[-1].get("role") != "assistant":
            raise ValueError("the last message is not the assistant's")
        return {"prompt": messages[:-1], "completion": messages[-1:]}
    if fmt == "sft":
        user = row["instruction"]
        if (row.get("input") or "").strip():
            user = f"{user}\n\n{row['input']}"
        if not chat_template:
            return {"prompt": f"{user}\n\n", "completion": row["output"]}
        prompt = [{"role": "system", "content": row["system"]}] if row.get("system") else []
        prompt.append({"role": "user", "content": user})
        return {"prompt": prompt, "completion": [{"role": "assistant", "content": row["output"]}]}
    if fmt == "scu":
        text: str = row["text"]
        if shape == "text":
            return {"text": text}
        cut = text.rfind(ASSISTANT_OPEN)
        if cut < 0:
            raise ValueError("no assistant turn (<|im_start|>assistant) to train on")
        completion = text[cut + len(ASSISTANT_OPEN) :]
        # End on <|im_end|> itself: TRL appends EOS to a completion that does not end with it.
        return {"prompt": text[: cut + len(ASSISTANT_OPEN)], "completion": completion.rstrip("\n")}
    raise ValueError(f"unknown format {fmt!r}")


def prepare(data: Path, tokenizer: Any, *, completion_only: bool) -> Prepared:
    """Load the train (and valid, when present) split of ``data`` in TRL's shape."""
    import datasets

    files = data_files(data)
    fmt = detect_format(files["train"])
    chat_template = bool(getattr(tokenizer, "chat_template", None))
    shape = choose_shape(
        fmt,
        completion_only=completion_only,
        markers=has_generation_markers(tokenizer),
        chat_template=chat_template,
    )

    def load(path: Path) -> datasets.Dataset:
        got = detect_format(path)
        if got != fmt:
            raise InputError(path, None, f"holds {got} rows but the train split holds {fmt} rows")
        out = []
        for lineno, row in read_rows(path):
            try:
                out.append(convert_row(row, fmt, shape, chat_template=chat_template))
            except (KeyError, ValueError, TypeError) as exc:
                raise InputError(path, lineno, f"unusable {fmt} row: {exc}") from None
        return datasets.Dataset.from_list(out)

    valid = files.get("valid")
    return Prepared(
        train=load(files["train"]),
        eval=load(valid) if valid else None,
        shape=shape,
        source_format=fmt,
    )
