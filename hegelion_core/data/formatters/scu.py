"""``scu``: ``{"text": ...}`` rows, the conversation rendered as ChatML.

The Shannon Control Unit trainer reads whole rendered texts, as the earlier MLX SCU
trainer did.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hegelion_core.contracts import Formatter
from hegelion_core.data.formatters import (
    ConversationOptions,
    conversation,
    render_chatml,
    require_finished,
)
from hegelion_core.records import TraceRecord


class SCUFormatter(Formatter):
    name = "scu"

    class Options(ConversationOptions):
        pass

    def format(self, record: TraceRecord) -> Iterator[dict[str, Any]]:
        require_finished(record)
        yield {"text": render_chatml(conversation(record, self.options))}

    def describe(self) -> str:
        return "`text` rows: the system/user/assistant conversation rendered as ChatML"
