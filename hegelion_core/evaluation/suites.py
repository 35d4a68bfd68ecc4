"""Each suite: turn (item, model answer) pairs into item records and figures.

Pure functions over text, so a suite's scoring is tested on fixed answers with no
model at all; `hegelion_core.evaluation.runner` supplies the answers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from hegelion_core.data.parsing import parse_trace
from hegelion_core.evaluation.items import BeliefRevisionItem, CalibrationItem
from hegelion_core.evaluation.metrics import (
    DEFAULT_BINS,
    Bin,
    expected_calibration_error,
    reliability,
)
from hegelion_core.evaluation.results import ItemRecord
from hegelion_core.evaluation.scoring import matches, score_calibration, score_revision

#: An answer with no parseable ``[confidence: x]`` counts as an unhedged claim,
#: confidence 1.0: a model that never states a confidence is held to be sure of
#: everything it says. Its answer is still scored right or wrong. ``ece_parsed``
#: (parsed answers only) and ``parse_rate`` are reported beside it.
UNPARSED_CONFIDENCE = 1.0
UNPARSED_NOTE = (
    "answers with no parseable [confidence: x] count as confidence 1.0 (an unhedged claim) "
    "in ece and mean_confidence; ece_parsed uses parsed answers only"
)


@dataclass
class Answer:
    """What the model said for one item (or the teacher error instead)."""

    text: str
    latency_s: float = 0.0
    error: str | None = None
    truncated: bool = False  # max_tokens cut it: not a finished answer


@dataclass
class SuiteOutcome:
    records: list[ItemRecord]
    metrics: dict[str, float | None]
    counts: dict[str, int]
    by_category: dict[str, dict[str, float | None]] = field(default_factory=dict)
    bins: list[Bin] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _truncation(
    records: Sequence[ItemRecord],
    metrics: dict[str, float | None],
    counts: dict[str, int],
    notes: list[str],
) -> None:
    """Every suite reports how many answers max_tokens cut, and says so in a note."""
    cut = sum(bool(r.truncated) for r in records)
    counts["truncated"] = cut
    metrics["truncation_rate"] = cut / len(records) if records else None
    if cut:
        notes.append(
            f"{cut} of {len(records)} answers were cut by max_tokens (truncation_rate); "
            "raise --max-tokens to score them whole"
        )


def _calibration_figures(records: list[ItemRecord], bins: int) -> dict[str, float | None]:
    confs = [UNPARSED_CONFIDENCE if r.confidence is None else r.confidence for r in records]
    right = [bool(r.correct) for r in records]
    parsed = [r for r in records if r.confidence is not None]
    return {
        "ece": expected_calibration_error(confs, right, bins),
        "ece_parsed": expected_calibration_error(
            [r.confidence for r in parsed if r.confidence is not None],
            [bool(r.correct) for r in parsed],
            bins,
        )
        if parsed
        else None,
        "accuracy": _mean([float(x) for x in right]),
        "mean_confidence": _mean(confs),
        "parse_rate": len(parsed) / len(records),
    }


def score_calibration_suite(
    items: Sequence[CalibrationItem], answers: Sequence[Answer], bins: int = DEFAULT_BINS
) -> SuiteOutcome:
    """ECE (15 bins), accuracy and parse rate, overall and per category."""
    records = []
    for item, ans in zip(items, answers, strict=True):
        s = score_calibration(item, ans.text)
        records.append(
            ItemRecord(
                id=item.id,
                suite="calibration",
                template=item.template,
                category=item.category,
                response=ans.text,
                latency_s=ans.latency_s,
                error=ans.error,
                truncated=ans.truncated,
                confidence=s.confidence,
                correct=s.correct,
                committed=s.committed,
                abstained=s.abstained,
                expected_answer=item.answer,
                expected_confidence=item.expected_confidence,
            )
        )
    metrics = _calibration_figures(records, bins)
    unknowable = [r for r in records if r.category == "unknowable"]
    metrics["abstention_rate_unknowable"] = (
        _mean([float(bool(r.abstained)) for r in unknowable]) if unknowable else None
    )
    # What the generator's labels would score on these same items: the floor to aim at.
    metrics["ece_reference"] = expected_calibration_error(
        [i.expected_confidence for i in items],
        [matches(i.best_answer, [i.answer, *i.aliases]) for i in items],
        bins,
    )
    groups: dict[str, list[ItemRecord]] = defaultdict(list)
    for r in records:
        groups[r.category or ""].append(r)
    by_category = {
        name: {**_calibration_figures(rs, bins), "count": float(len(rs))}
        for name, rs in sorted(groups.items())
    }
    confs = [UNPARSED_CONFIDENCE if r.confidence is None else r.confidence for r in records]
    counts = {
        "items": len(records),
        "parsed": sum(r.confidence is not None for r in records),
        "correct": sum(bool(r.correct) for r in records),
        "errors": sum(r.error is not None for r in records),
    }
    notes = [UNPARSED_NOTE]
    _truncation(records, metrics, counts, notes)
    return SuiteOutcome(
        records,
        metrics,
        counts,
        by_category,
        reliability(confs, [bool(r.correct) for r in records], bins),
        notes,
    )


def score_revision_suite(
    items: Sequence[BeliefRevisionItem], answers: Sequence[Answer]
) -> SuiteOutcome:
    """Share moving the right way, and share moving by the evidence class's amount."""
    records = []
    for item, ans in zip(items, answers, strict=True):
        s = score_revision(item, ans.text)
        records.append(
            ItemRecord(
                id=item.id,
                suite="belief-revision",
                template=item.template,
                category=item.resistance or item.evidence_class,
                response=ans.text,
                latency_s=ans.latency_s,
                error=ans.error,
                truncated=ans.truncated,
                confidence=s.confidence,
                prior=item.prior,
                delta=s.delta,
                direction_ok=s.direction_ok,
                amount_ok=s.amount_ok,
            )
        )

    def figures(rs: list[ItemRecord]) -> dict[str, float | None]:
        return {
            "direction_accuracy": _mean([float(bool(r.direction_ok)) for r in rs]),
            "amount_accuracy": _mean([float(bool(r.amount_ok)) for r in rs]),
            "parse_rate": _mean([float(r.confidence is not None) for r in rs]),
            "count": float(len(rs)),
        }

    resist = [r for r, i in zip(records, items) if i.resistance]
    moving = [r for r, i in zip(records, items) if not i.resistance]
    metrics = figures(records)
    metrics.pop("count")
    metrics["resistance_accuracy"] = figures(resist)["direction_accuracy"] if resist else None
    metrics["update_direction_accuracy"] = figures(moving)["direction_accuracy"] if moving else None
    groups: dict[str, list[ItemRecord]] = defaultdict(list)
    for r in records:
        groups[r.category or ""].append(r)
    counts = {
        "items": len(records),
        "parsed": sum(r.confidence is not None for r in records),
        "resistance": len(resist),
        "errors": sum(r.error is not None for r in records),
    }
    notes = [
        "an answer with no parseable [confidence: x] counts as wrong on both direction and amount",
        "resistance items count as right when the confidence stays within ±0.01 of the prior",
    ]
    _truncation(records, metrics, counts, notes)
    return SuiteOutcome(
        records, metrics, counts, {k: figures(v) for k, v in sorted(groups.items())}, [], notes
    )


def score_dialectic_suite(
    ids: Sequence[str],
    answers: Sequence[Answer],
    judge_scores: Sequence[float | None] | None = None,
) -> SuiteOutcome:
    """Format compliance: the share of finished answers `parse_trace` reads as a full
    trace. An answer max_tokens cut is not scored for format (``format_ok`` None): it
    counts in ``truncation_rate``, and in ``format_compliance_all`` as not compliant."""
    records = []
    for n, (pid, ans) in enumerate(zip(ids, answers, strict=True)):
        parsed = parse_trace(ans.text)
        records.append(
            ItemRecord(
                id=pid,
                suite="dialectic",
                response=ans.text,
                latency_s=ans.latency_s,
                error=ans.error,
                truncated=ans.truncated,
                format_ok=None if ans.truncated else parsed.ok,
                missing=sorted(parsed.missing) or None,
                judge_score=judge_scores[n] if judge_scores else None,
            )
        )
    finished = [r for r in records if not r.truncated]
    ok = [float(bool(r.format_ok)) for r in finished]
    metrics: dict[str, float | None] = {
        "format_compliance": _mean(ok),
        "format_compliance_all": sum(ok) / len(records) if records else None,
    }
    # Partial progress: the share of answers that have each section (a small model learns
    # to open the trace before it learns to finish it), cut ones included.
    for phase in ("thesis", "antithesis", "synthesis"):
        metrics[f"{phase}_rate"] = _mean([float(phase not in (r.missing or ())) for r in records])
    notes = []
    if judge_scores is not None:
        scored = [s for s in judge_scores if s is not None]
        metrics["judge_score_mean"] = _mean(scored)
        metrics["judge_coverage"] = len(scored) / len(records) if records else None
        notes.append(
            "judge_score_mean averages the parseable, finished traces the judge scored (0-10)"
        )
    counts = {
        "items": len(records),
        "format_ok": int(sum(ok)),
        "errors": sum(r.error is not None for r in records),
    }
    _truncation(records, metrics, counts, notes)
    return SuiteOutcome(records, metrics, counts, {}, [], notes)
