"""Core's built-in prompt sources, and how a prompt is found in a row."""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Any

PROMPT_COLUMNS = ("prompt", "instruction", "question")


def prompt_key(text: str) -> int:
    """``int(prompt_id(text), 16)``, the ledger's key for a prompt, without the hex round
    trip and (for ASCII text, which NFKC leaves as it is) without the normalisation
    call: a resume hashes every prompt of the source, a million of them at 1M records.
    ``f"{key:016x}"`` is the prompt id."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    digest = hashlib.sha256(" ".join(text.split()).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


class NoPromptColumn(ValueError):
    pass


def extract_prompt(row: dict[str, Any], column: str | None = None) -> str:
    """The prompt text of a dataset row.

    With ``column``, that column (a string, or a list of chat messages whose first
    user turn is taken). Otherwise the first of ``prompt``, ``instruction``,
    ``question``, then the first user turn of ``messages``.
    """
    if column is not None:
        if column not in row:
            raise NoPromptColumn(f"no column {column!r}; columns are: {', '.join(row)}")
        return _text(row[column], column)
    for name in PROMPT_COLUMNS:
        if isinstance(row.get(name), str) and row[name].strip():
            return row[name]
    if isinstance(row.get("messages"), list):
        return _text(row["messages"], "messages")
    raise NoPromptColumn(
        f"no prompt column found among {', '.join(row) or '(none)'}; expected one of "
        f"{', '.join(PROMPT_COLUMNS)} or 'messages': name one with --column"
    )


def _text(value: Any, column: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        for turn in value:
            if isinstance(turn, dict) and turn.get("role") == "user":
                return str(turn.get("content", ""))
        raise NoPromptColumn(f"column {column!r} holds no user turn")
    raise NoPromptColumn(f"column {column!r} is {type(value).__name__}, not text")
