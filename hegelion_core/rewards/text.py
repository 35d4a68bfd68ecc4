"""The text of a prompt or a completion in either of the shapes TRL passes.

TRL's ``GRPOTrainer`` hands reward functions plain strings for a plain-text dataset and
message lists (``[{"role": "assistant", "content": ...}]``) for a conversational one;
a message's ``content`` may also be a list of parts (``{"type": "text", "text": ...}``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _content(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(
            str(part.get("text") or "")
            for part in content
            if isinstance(part, Mapping) and part.get("type", "text") == "text"
        )
    return ""


def completion_text(completion: Any) -> str:
    """A completion's text: the string itself, or its assistant messages' contents joined
    (a tool-calling turn has several)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return _content(completion)
    if isinstance(completion, Sequence):
        said = [
            _content(m)
            for m in completion
            if isinstance(m, Mapping) and m.get("role", "assistant") == "assistant"
        ]
        return "\n".join(s for s in said if s)
    return ""


def prompt_text(prompt: Any) -> str:
    """A prompt's question: the string itself, or its last user message."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence):
        for message in reversed(prompt):
            if isinstance(message, Mapping) and message.get("role") == "user":
                return _content(message)
    return ""


def was_cut(ids: Sequence[int] | None, max_completion_length: int | None) -> bool:
    """Whether TRL stopped this completion at ``max_completion_length``.

    TRL itself calls a completion truncated when its last token is not EOS; reward
    functions get the token ids but not the tokenizer, so they use the length: a
    completion that used the whole budget was cut (one that ended with EOS on exactly
    the last allowed token is counted as cut too: rare, and the safe side)."""
    return bool(max_completion_length and ids is not None and len(ids) >= max_completion_length)
