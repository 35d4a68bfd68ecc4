"""``chat``: ``messages`` rows, as TRL's SFTTrainer, mlx-lm and axolotl take them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hegelion_core.contracts import Formatter
from hegelion_core.data.formatters import ConversationOptions, conversation, require_finished
from hegelion_core.records import TraceRecord


class ChatFormatter(Formatter):
    name = "chat"

    class Options(ConversationOptions):
        pass

    def format(self, record: TraceRecord) -> Iterator[dict[str, Any]]:
        require_finished(record)
        yield {"messages": conversation(record, self.options)}

    def describe(self) -> str:
        what = "the synthesis" if self.options.synthesis_only else "the <thought> trace and answer"
        return f"chat `messages` rows (system, user, assistant); the assistant turn is {what}"
