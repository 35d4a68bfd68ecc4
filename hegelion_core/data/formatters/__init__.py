"""Core's built-in formatters. They register through the ``hegelion.formatters``
entry points like any plugin's, and share the conversation helpers below."""

from __future__ import annotations

from typing import Any

from hegelion_core.contracts import DriverOptions, SkipRecord
from hegelion_core.records import TraceRecord


def require_finished(record: TraceRecord) -> None:
    """Skip (reason ``truncated``) a record whose dialectic the token limit cut: it
    was kept only to be looked at (``hegelion generate --on-truncation keep``)."""
    if record.truncated:
        raise SkipRecord("truncated")


class ConversationOptions(DriverOptions):
    """Options shared by formats that render a system/user/assistant conversation."""

    synthesis_only: bool = False  # answer with the synthesis alone, no <thought> trace
    system: str | None = None  # replace each record's system prompt
    include_system: bool = True


def assistant_text(record: TraceRecord, synthesis_only: bool) -> str:
    return record.hegelion_trace.synthesis if synthesis_only else record.output


def conversation(record: TraceRecord, opts: ConversationOptions) -> list[dict[str, Any]]:
    """The record as chat messages: [system], user, assistant."""
    messages = []
    if opts.include_system:
        messages.append({"role": "system", "content": opts.system or record.system})
    messages.append({"role": "user", "content": record.prompt})
    messages.append({"role": "assistant", "content": assistant_text(record, opts.synthesis_only)})
    return messages


def render_chatml(messages: list[dict[str, Any]]) -> str:
    """ChatML, as Qwen and SmolLM templates write it: what the SCU trainer reads."""
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
