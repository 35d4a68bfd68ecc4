"""The filters of ``hegelion curate``: each one keeps a row or drops it with a reason.

A filter sees only the rows every earlier filter kept, so its report (rows in, rows
dropped by reason with an example of each, rows out) says what that filter alone did.
The cheap, per-row checks run first; the stateful ones (contamination, duplicates)
last, so a duplicate's first copy is kept only if it passed everything else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from hegelion_core.data.quality import QualityConfig, trace_issues
from hegelion_core.records import TraceRecord


@dataclass(slots=True)
class Row:
    """One valid record and the exact bytes of the line it was read from."""

    path: Path
    lineno: int
    raw: bytes
    record: TraceRecord
    label: str = ""  # where a row that is not a JSONL line is ("file.parquet:row 3")

    @property
    def where(self) -> str:
        return self.label or f"{self.path}:{self.lineno}"


class Drop(NamedTuple):
    reason: str  # a countable label: "near-duplicate synthesis"
    detail: str  # what the example line says about this row


class FilterReport(BaseModel):
    """What one filter did, as the manifest and the dataset card show it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    rows_in: int = 0
    dropped: dict[str, int] = Field(default_factory=dict)
    examples: dict[str, str] = Field(default_factory=dict)  # reason -> "file:line: detail"
    rows_out: int = 0


class Filter(ABC):
    name: str

    @abstractmethod
    def check(self, row: Row) -> Drop | None:
        """None keeps the row; a `Drop` removes it. Stateful filters remember kept rows
        here, so they run last."""


class TruncatedFilter(Filter):
    """A cut answer (finish_reason "length") is never data."""

    name = "truncated"

    def check(self, row: Row) -> Drop | None:
        # A TraceRecord field in new files, an extra key in older ones; getattr on a
        # missing pydantic attribute costs an exception, so look in both dicts instead.
        record = row.record
        if record.__dict__.get("truncated", (record.model_extra or {}).get("truncated")) is True:
            return Drop("truncated", "the teacher's answer was cut at its token limit")
        return None


class DegenerateFilter(Filter):
    """Loops, copied sections and empty answers (`hegelion_core.data.quality`)."""

    name = "degenerate"

    def __init__(self, config: QualityConfig) -> None:
        self.config = config

    def check(self, row: Row) -> Drop | None:
        issues = trace_issues(row.record.hegelion_trace, self.config)
        if issues:
            return Drop(f"degenerate: {issues[0].reason}", str(issues[0]))
        return None


class JudgeFilter(Filter):
    """Keep rows whose judge scored them at least ``floor``; unjudged rows are dropped,
    since nothing says they reach it."""

    name = "judge"

    def __init__(self, floor: float) -> None:
        self.floor = floor

    def check(self, row: Row) -> Drop | None:
        judge = row.record.hegelion_trace.judge
        if judge is None:
            return Drop("no judge score", "no hegelion_trace.judge (generate with a judge)")
        if judge.score < self.floor:
            return Drop(f"judge score below {self.floor:g}", f"score {judge.score:g}")
        return None


class LengthFilter(Filter):
    """Bounds on the characters of ``output``, the text a student is trained on."""

    name = "length"

    def __init__(self, min_chars: int | None, max_chars: int | None) -> None:
        self.min_chars, self.max_chars = min_chars, max_chars

    def check(self, row: Row) -> Drop | None:
        n = len(row.record.output)
        if self.min_chars is not None and n < self.min_chars:
            return Drop(f"output under {self.min_chars} chars", f"{n} chars")
        if self.max_chars is not None and n > self.max_chars:
            return Drop(f"output over {self.max_chars} chars", f"{n} chars")
        return None
