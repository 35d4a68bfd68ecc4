"""The training data a trainer reads: its files (a split directory or one file), the
format its rows are in, and whether that format fits the method: a dataset whose format
does not fit is an error that says which format is needed.

GRPO reads prompts, not answers (`grpo_prompts`): a ``.txt`` file (one prompt a line),
JSONL rows with a prompt column (``prompt``, ``instruction`` or ``question``, as core's
``file`` prompt source finds it), ``chat`` rows or Simplex eval items (``messages`` up to
the last user turn), or ``sft`` rows; any of these as a Hugging Face dataset too
(``hf:NAME[:SPLIT]``, a Parquet file, a saved dataset directory: `resolve_data`). The policy sees the conversation the SFT rows hold
(their system prompt, else `DEFAULT_SYSTEM`, through the model's own chat template), so
GRPO after SFT continues the same conversation shape; a row's other columns (a Simplex
item's ``answer``, ``expected_confidence``...) travel with it for the rewards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from hegelion_core.errors import HegelionError, InputError
from hegelion_core.training.config import Method

FORMAT_KEYS: dict[str, set[str]] = {
    "dpo": {"prompt", "chosen", "rejected"},
    "chat": {"messages"},
    "sft": {"instruction", "output"},
    "scu": {"text"},
}
#: Rows that hold only a prompt (GRPO's data); the columns core's ``file`` source reads.
PROMPT_KEYS = ("prompt", "instruction", "question")
TEXT_SUFFIXES = (".txt",)
METHOD_FORMATS: dict[str, tuple[str, ...]] = {
    "sft": ("chat", "sft", "scu"),
    "dpo": ("dpo",),
    "grpo": ("prompts", "chat", "sft"),
}


#: ``--data hf:NAME`` or ``hf:NAME:SPLIT``: a Hugging Face dataset, streamed.
HF_PREFIX = "hf:"


def is_dataset(data: Path) -> bool:
    """A Hugging Face dataset rather than Hegelion's JSONL: ``hf:NAME[:SPLIT]``, a Parquet
    file, or a directory ``save_to_disk`` wrote (without a ``train.jsonl``)."""
    from hegelion_core.data.sources import saved_dataset

    if str(data).startswith(HF_PREFIX) or data.suffix.lower() == ".parquet":
        return True
    return data.is_dir() and not (data / "train.jsonl").exists() and saved_dataset(data)


def resolve_data(data: Path, output: Path) -> Path:
    """``data`` as a file the trainers read: a Hugging Face dataset (see `is_dataset`) is
    written once, its ``train`` split (or the one ``hf:NAME:SPLIT`` names), to
    ``OUTPUT/data/train.jsonl``, the file the run then reads and its manifest hashes;
    Hegelion's own JSONL is used as it is."""
    if not is_dataset(data):
        return data
    from hegelion_core.data.jsonl import atomic_output, dumps
    from hegelion_core.data.sources import ReadOptions, iter_hub_rows, iter_source_rows

    text = str(data)
    if text.startswith(HF_PREFIX):
        name, _, split = text[len(HF_PREFIX) :].partition(":")
        rows = iter_hub_rows(ReadOptions(hf=name, split=split or "train"))
    else:
        rows = iter_source_rows(data, ReadOptions(split=None if data.is_file() else "train"))
    # OUTPUT/data is a directory output (`atomic_output`): its mark lists what Hegelion
    # wrote, so a rerun replaces its own copy and never a user's file of that name.
    count = 0
    with atomic_output(
        output / "data",
        directory=True,
        inputs=[data] if not text.startswith(HF_PREFIX) else [],
        hint=f"give another --output, or move {output / 'data'} away",
    ) as tmp:
        with (tmp / "train.jsonl").open("wb") as fp:
            for source_row in rows:
                try:
                    fp.write(dumps(source_row.row) + b"\n")
                except TypeError as exc:  # a column JSON cannot hold (bytes, an image)
                    raise InputError(
                        source_row.where, None, f"a value JSON cannot hold: {exc}"
                    ) from None
                count += 1
        if not count:
            raise InputError(data, None, "the dataset has no rows")
    return output / "data" / "train.jsonl"


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
    """The formatter that wrote ``path``, from its first row's keys (``prompts`` for a
    ``.txt`` file of prompts or rows with only a prompt column)."""
    if path.suffix.lower() in TEXT_SUFFIXES:
        return "prompts"
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
                if keys & set(PROMPT_KEYS):
                    return "prompts"
                raise InputError(
                    path,
                    lineno,
                    f"unrecognised row with keys {sorted(keys)}",
                    hint="expected rows from `hegelion dataset` (chat, sft, scu, dpo), "
                    "or prompts (a `prompt` column) for --method grpo",
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
        how = (
            "give a .txt file of prompts (one a line), JSONL with a `prompt` column, or chat rows"
            if method == "grpo"
            else f"make them with `hegelion dataset TRACES OUT --format {allowed[0]}`"
        )
        raise HegelionError(
            f"{data} holds {fmt} rows, but --method {method} needs {' or '.join(allowed)} rows: "
            + how
        )
    return fmt


def check_method(trainer: str, methods: tuple[str, ...], method: str) -> None:
    """Refuse, before anything loads, a method the trainer does not implement, naming the
    installed trainers that do (their ``Trainer.methods``)."""
    if method in methods:
        return
    can = [name for name in trainers_for(method) if name != trainer]
    where = (
        f"use {' or '.join(f'--trainer {n}' for n in can)}"
        if can
        else "no installed trainer does; `pip install hegelion-trl` and use --trainer trl"
    )
    raise HegelionError(
        f"the {trainer} trainer cannot train --method {method} (it trains "
        f"{', '.join(methods) or 'nothing'}); {where}"
    )


def trainers_for(method: str) -> list[str]:
    """The installed trainers whose ``methods`` include ``method`` (those that load here)."""
    from hegelion_core.plugins import driver_names, load_driver

    out = []
    for name in driver_names("trainers"):
        try:
            cls = load_driver("trainers", name)
        except HegelionError:
            continue
        if method in getattr(cls, "methods", ()):
            out.append(name)
    return out


def grpo_prompts(data: Path, *, split: str = "train") -> list[dict[str, Any]]:
    """GRPO's rows: ``prompt`` as chat messages (system, then user) and the row's other
    columns, from ``split`` of ``data`` (see the module docstring for what it reads)."""
    from hegelion_core.data.jsonl import read_jsonl
    from hegelion_core.data.prompt_sources import NoPromptColumn
    from hegelion_core.records import DEFAULT_SYSTEM

    path = data_files(data).get(split)
    if path is None:
        return []
    fmt = detect_format(path)
    rows: list[dict[str, Any]] = []
    if fmt == "prompts" and path.suffix.lower() in TEXT_SUFFIXES:
        from hegelion_core.data.prompt_sources.file import FilePromptSource

        source = FilePromptSource({"path": path, "format": "txt"})
        for prompt in source.iter_prompts():
            rows.append({"prompt": _conversation(DEFAULT_SYSTEM, prompt.text)})
    else:
        for lineno, row in read_jsonl(path):
            try:
                rows.append(_grpo_row(row, fmt, DEFAULT_SYSTEM))
            except (NoPromptColumn, KeyError, TypeError, ValueError) as exc:
                field = "messages" if fmt == "chat" else None
                raise InputError(
                    path, lineno, f"unusable {fmt} row for GRPO: {exc}", field=field
                ) from None
    if not rows:
        raise InputError(path, None, "no prompts", hint="one prompt a line, or a `prompt` column")
    return rows


def _conversation(system: str | None, user: str) -> list[dict[str, str]]:
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": user}]


def _grpo_row(row: dict[str, Any], fmt: str, default_system: str) -> dict[str, Any]:
    from hegelion_core.data.prompt_sources import extract_prompt

    if fmt == "chat":
        messages = row["messages"]
        if not isinstance(messages, list):
            raise TypeError("`messages` is not a list")
        last_user = max(
            (i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"),
            default=None,
        )
        if last_user is None:
            raise ValueError("no user turn to prompt with")
        extra = {k: v for k, v in row.items() if k != "messages"}
        return {"prompt": messages[: last_user + 1], **extra}
    if fmt == "sft":
        user = row["instruction"]
        if (row.get("input") or "").strip():
            user = f"{user}\n\n{row['input']}"
        extra = {k: v for k, v in row.items() if k not in ("instruction", "input", "system")}
        extra.pop("output", None)
        return {"prompt": _conversation(row.get("system") or default_system, user), **extra}
    text = extract_prompt(row).strip()
    if not text:
        raise ValueError("the prompt is empty")
    system = row.get("system") if isinstance(row.get("system"), str) else default_system
    extra = {k: v for k, v in row.items() if k not in (*PROMPT_KEYS, "system", "messages")}
    return {"prompt": _conversation(system, text), **extra}
