"""Hegelion's formatted rows -> the rows TRL's trainers read, one row at a time.

Completion-only loss is done the TRL way, not with Unsloth's marker-based
``train_on_responses_only``: every SFT row becomes a prompt/completion pair, and TRL
masks the prompt (``completion_only_loss``). That works with any chat template (no
``{% generation %}`` markers, no per-model response strings to configure), and it is
what Unsloth's patched SFTTrainer honours too.

GRPO reads prompts instead (`read_prompt_rows`), core's rows for every trainer.

Pure: dicts in, dicts out, no datasets/torch import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hegelion_core import HegelionError, InputError, grpo_rows, read_jsonl

#: Where the answer starts in a rendered ChatML text (the ``scu`` format).
CHATML_ASSISTANT = "<|im_start|>assistant\n"


class RowError(HegelionError):
    """A row cannot be turned into what the trainer needs."""


def _sft_messages(row: dict[str, Any]) -> list[dict[str, str]]:
    """``sft`` rows as chat: [system], user (instruction, then input), assistant."""
    user = row["instruction"]
    if row.get("input") and str(row["input"]).strip():
        user = f"{user}\n\n{row['input']}"  # as hegelion_core.records.TraceRecord.prompt
    messages = [{"role": "system", "content": row["system"]}] if row.get("system") else []
    return [
        *messages,
        {"role": "user", "content": user},
        {"role": "assistant", "content": row["output"]},
    ]


def _split_last_answer(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Prompt = everything before the last assistant turn; completion = that turn."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    if last is None:
        raise RowError("a chat row has no assistant turn to train on")
    return {"prompt": messages[:last], "completion": messages[last:]}


def _split_chatml(text: str) -> dict[str, str]:
    head, sep, answer = text.rpartition(CHATML_ASSISTANT)
    if not sep:
        raise RowError(
            "an scu row has no `<|im_start|>assistant` turn, so there is no answer to restrict "
            "the loss to: make it with `hegelion dataset ... --format scu`, or train on whole "
            "texts with -c training.completion_only_loss=false"
        )
    # TRL appends EOS to a completion that does not end with it; the newline after
    # <|im_end|> would hide it, so drop it.
    return {"prompt": head + sep, "completion": answer.rstrip("\n")}


def to_trl_row(row: dict[str, Any], fmt: str, *, completion_only: bool = True) -> dict[str, Any]:
    """One Hegelion row (format ``fmt``) as a TRL row.

    SFT formats give prompt/completion pairs when ``completion_only`` (TRL then trains
    on the answer alone), else whole conversations/texts. DPO rows keep their three
    fields (strings or message lists; TRL applies the chat template to lists).
    """
    if fmt == "dpo":
        return {"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"]}
    if fmt == "chat":
        messages = row["messages"]
        return _split_last_answer(messages) if completion_only else {"messages": messages}
    if fmt == "sft":
        messages = _sft_messages(row)
        return _split_last_answer(messages) if completion_only else {"messages": messages}
    if fmt == "scu":
        return _split_chatml(row["text"]) if completion_only else {"text": row["text"]}
    raise RowError(f"the unsloth trainer cannot read {fmt!r} rows (it reads chat, sft, scu, dpo)")


def needs_chat_template(fmt: str, first_row: dict[str, Any]) -> bool:
    """Whether TRL will call the tokenizer's chat template on these rows."""
    if fmt in ("chat", "sft"):
        return True
    return fmt == "dpo" and isinstance(first_row.get("prompt"), list)


def read_rows(path: Path, fmt: str, *, completion_only: bool = True) -> list[dict[str, Any]]:
    """Every row of one split file as TRL rows; a bad row is an error naming file and line."""
    rows = []
    for lineno, row in read_jsonl(path):
        try:
            rows.append(to_trl_row(row, fmt, completion_only=completion_only))
        except RowError as exc:
            raise InputError(path, lineno, str(exc)) from None
        except KeyError as exc:
            raise InputError(path, lineno, f"a {fmt} row needs the field {exc}") from None
    if not rows:
        raise InputError(path, None, "no rows to train on")
    return rows


def read_prompt_rows(
    data: Path, *, chat_template: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """GRPO's train (and valid) prompt rows: core's `grpo_rows`, the ones the trl trainer
    reads (conversations, or plain prompts for a tokenizer without a chat template)."""
    train = grpo_rows(data, split="train", chat_template=chat_template)
    valid = grpo_rows(data, split="valid", chat_template=chat_template)
    return train, valid or None
