"""``dpo``: preference pairs where the synthesis beats the thesis or antithesis.

The synthesis is the answer that survived critique; the thesis (unexamined) and the
antithesis (one-sided) are the weaker answers it improved on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from hegelion_core.contracts import DriverOptions, Formatter
from hegelion_core.data.formatters import require_finished
from hegelion_core.records import TraceRecord


class DPOFormatter(Formatter):
    name = "dpo"

    class Options(DriverOptions):
        rejected: Literal["thesis", "antithesis", "both"] = "thesis"
        conversational: bool = False  # lists of messages instead of strings
        system: str | None = None  # conversational form only: system turn in the prompt
        include_system: bool = True

    def format(self, record: TraceRecord) -> Iterator[dict[str, Any]]:
        require_finished(record)
        trace = record.hegelion_trace
        sides = (
            ("thesis", "antithesis")
            if self.options.rejected == "both"
            else (self.options.rejected,)
        )
        for side in sides:
            rejected = getattr(trace, side)
            if self.options.conversational:
                prompt = [{"role": "user", "content": record.prompt}]
                if self.options.include_system:
                    prompt.insert(
                        0, {"role": "system", "content": self.options.system or record.system}
                    )
                yield {
                    "prompt": prompt,
                    "chosen": [{"role": "assistant", "content": trace.synthesis}],
                    "rejected": [{"role": "assistant", "content": rejected}],
                }
            else:
                yield {"prompt": record.prompt, "chosen": trace.synthesis, "rejected": rejected}

    def describe(self) -> str:
        form = "conversational" if self.options.conversational else "standard"
        return f"{form} prompt/chosen/rejected pairs: synthesis chosen, {self.options.rejected} rejected"
