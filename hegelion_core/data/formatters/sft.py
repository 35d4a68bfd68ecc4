"""``sft``: Alpaca-style instruction rows, the layout of the earlier tool's files."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hegelion_core.contracts import DriverOptions, Formatter
from hegelion_core.data.formatters import assistant_text, require_finished
from hegelion_core.records import TraceRecord


class SFTFormatter(Formatter):
    name = "sft"

    class Options(DriverOptions):
        synthesis_only: bool = False  # output the synthesis alone, without the trace
        system: str | None = None

    def format(self, record: TraceRecord) -> Iterator[dict[str, Any]]:
        require_finished(record)
        yield {
            "instruction": record.instruction,
            "input": record.input,
            "output": assistant_text(record, self.options.synthesis_only),
            "system": self.options.system or record.system,
        }

    def describe(self) -> str:
        what = "the synthesis" if self.options.synthesis_only else "the <thought> trace and answer"
        return f"instruction/input/output/system rows; output is {what}"
