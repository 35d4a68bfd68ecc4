"""What `hegelion eval` writes: ``results.json`` (one `EvalResult`) and
``items.jsonl`` (one `ItemRecord` per item), with the plot beside them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hegelion_core._version import __version__
from hegelion_core.evaluation.items import Suite
from hegelion_core.evaluation.metrics import Bin


class ItemRecord(BaseModel):
    """One item's prompt id, the model's answer and how it scored."""

    model_config = ConfigDict(extra="forbid")

    id: str
    suite: Suite
    template: str = ""
    category: str | None = None  # calibration category, or evidence class / resistance kind
    response: str
    latency_s: float = 0.0
    error: str | None = None  # the teacher failed on this item: scored as a miss
    truncated: bool = False  # max_tokens cut the answer (dialectic: not scored for format)
    # calibration and belief-revision
    confidence: float | None = None  # as stated; None: none parseable
    # calibration
    correct: bool | None = None
    committed: str | None = None
    abstained: bool | None = None
    expected_answer: str | None = None
    expected_confidence: float | None = None
    # belief-revision
    prior: float | None = None
    delta: float | None = None
    direction_ok: bool | None = None
    amount_ok: bool | None = None
    # dialectic
    format_ok: bool | None = None
    missing: list[str] | None = None
    judge_score: float | None = None


class EvalResult(BaseModel):
    """A suite's figures for one model. ``metrics`` keys are documented in docs/evaluation.md."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    suite: Suite
    model: str
    adapter: str | None = None
    teacher: str  # the Teacher driver that ran the model (transformers, llama-cpp...)
    data: str
    judge: str | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    hegelion_version: str = __version__
    counts: dict[str, int] = Field(default_factory=dict)
    metrics: dict[str, float | None] = Field(default_factory=dict)
    by_category: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    bins: list[Bin] = Field(default_factory=list)  # calibration: the reliability diagram's data
    notes: list[str] = Field(default_factory=list)  # how unparseable answers counted, and such
    generation: dict[str, Any] = Field(default_factory=dict)  # max_tokens, temperature, system
    files: dict[str, str] = Field(default_factory=dict)
