"""What an evaluation reads: one pydantic model per suite's item.

Generators (the ``hegelion-simplex`` plugin) write these rows to ``eval.jsonl``;
`hegelion eval` reads them back through `load_items`, which names the file, line
and field of any bad row. Every item carries its ground truth, so a model's answer
can be scored right or wrong without a judge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from hegelion_core.errors import InputError
from hegelion_core.records import Message

Suite = Literal["dialectic", "calibration", "belief-revision"]
SUITES: tuple[Suite, ...] = ("dialectic", "calibration", "belief-revision")

#: How far a confidence may move and still count as "unchanged" (resistance cases),
#: and the slack on a class's range: confidences are written with two decimals.
UNCHANGED_TOLERANCE = 0.01
RANGE_SLACK = 0.005

CONFIDENCE_FLOOR = 0.05
CONFIDENCE_CEILING = 0.98

#: Confidence moves per evidence class (absolute, before clamping to [0.05, 0.98]).
EVIDENCE_RANGES: dict[str, tuple[float, float]] = {
    "strong": (0.15, 0.30),
    "moderate": (0.05, 0.15),
    "weak": (0.01, 0.05),
}


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    #: The conversation up to the model's turn (system and user messages).
    messages: list[Message] = Field(min_length=1)
    #: Which generator template made it, for per-template breakdowns.
    template: str = ""
    stage: str = ""

    @model_validator(mode="after")
    def _ends_before_the_answer(self) -> _Item:
        if self.messages[-1].role != "user":
            raise ValueError("messages must end with the user turn the model answers")
        return self


class CalibrationItem(_Item):
    """A question whose answer can be scored, and the confidence a perfect reasoner states.

    ``answer`` is the ground truth. When the prompt does not determine it
    (``determined`` false: ambiguous and unknowable cases) it is an outcome drawn by
    the generator's seed from the stated odds, so a model that states those odds is
    right that often: its confidence is checkable across many items.
    """

    suite: Literal["calibration"] = "calibration"
    category: Literal["factual", "ambiguous", "unknowable", "threshold"]
    answer: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    determined: bool
    #: What the generator's own response commits to: the answer the prompt supports
    #: best (== answer when determined); for unknowable items, the guess it names
    #: after abstaining. Scoring it gives the labels' own ECE (``ece_reference``).
    best_answer: str = Field(min_length=1)
    expected_confidence: float = Field(ge=0, le=1)
    options: list[str] = Field(default_factory=list)


class BeliefRevisionItem(_Item):
    """A prior belief, new evidence, and the move a sound reviser makes.

    ``min_delta``/``max_delta`` bound the absolute change the evidence class allows
    after clamping to [0.05, 0.98]; resistance items (fallacy, outdated or irrelevant
    evidence) must leave the confidence where it was.
    """

    suite: Literal["belief-revision"] = "belief-revision"
    prior: float = Field(ge=CONFIDENCE_FLOOR, le=CONFIDENCE_CEILING)
    direction: Literal["up", "down", "none"]
    evidence_class: Literal["strong", "moderate", "weak"] | None = None
    resistance: Literal["fallacy", "outdated", "irrelevant"] | None = None
    min_delta: float = Field(ge=0, le=1)
    max_delta: float = Field(ge=0, le=1)
    expected: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> BeliefRevisionItem:
        if (self.direction == "none") != (self.resistance is not None):
            raise ValueError("direction 'none' exactly when the item is a resistance case")
        if self.resistance is None and self.evidence_class is None:
            raise ValueError("a non-resistance item needs an evidence_class")
        if self.min_delta > self.max_delta:
            raise ValueError("min_delta is above max_delta")
        return self


EvalItem = Annotated[CalibrationItem | BeliefRevisionItem, Field(discriminator="suite")]
_ADAPTER: TypeAdapter[CalibrationItem | BeliefRevisionItem] = TypeAdapter(EvalItem)

ItemT = TypeVar("ItemT", CalibrationItem, BeliefRevisionItem)
ITEM_MODELS: dict[str, type[BaseModel]] = {
    "calibration": CalibrationItem,
    "belief-revision": BeliefRevisionItem,
}


def parse_item(row: dict) -> CalibrationItem | BeliefRevisionItem:
    """One row as the item its ``suite`` names; raises pydantic's ValidationError."""
    return _ADAPTER.validate_python(row)


def load_items(path: Path, model: type[ItemT], *, limit: int | None = None) -> list[ItemT]:
    """Items of one suite from JSONL; bad rows are errors naming file, line and field."""
    from hegelion_core.data.jsonl import read_jsonl
    from hegelion_core.errors import describe_validation

    suite = model.model_fields["suite"].default
    items: list[ItemT] = []
    for lineno, row in read_jsonl(path):
        if limit is not None and len(items) >= limit:
            break
        row.setdefault("suite", suite)
        if row["suite"] != suite:
            raise InputError(
                path,
                lineno,
                f"item of suite {row['suite']!r}, expected {suite!r}",
                field="suite",
                hint=f"pass --suite {row['suite']}, or the {suite} eval file",
            )
        try:
            items.append(model.model_validate(row))
        except ValidationError as exc:
            first = ".".join(str(p) for p in exc.errors()[0]["loc"]) or None
            raise InputError(
                path,
                lineno,
                describe_validation(exc),
                field=first,
                hint="eval files come from `hegelion simplex generate` (eval.jsonl)",
            ) from None
    if not items:
        raise InputError(path, None, "no items", hint="an eval file holds one JSON item per line")
    return items
