"""Scoring one model answer against one item: pure functions, no model, no I/O.

The answer conventions live here, once, for the generators that write training
answers and for the evaluation that reads a model's answers:

* the first line ``Answer: X`` states the answer;
* an abstention is ``Answer: unknown`` and may name a guess:
  ``Answer: unknown (best guess: X)``; the guess is what is scored;
* the response ends with ``[confidence: 0.XX]`` (`hegelion_core.data.formatters.simplex`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from hegelion_core.data.formatters.simplex import parse_confidence
from hegelion_core.evaluation.items import (
    RANGE_SLACK,
    UNCHANGED_TOLERANCE,
    BeliefRevisionItem,
    CalibrationItem,
)

ABSTAIN = "unknown"

_ANSWER_LINE = re.compile(
    r"^\W{0,3}answer\W{0,3}\s*[:\-]\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE
)
_GUESS = re.compile(r"best\s+guess\s*[:\-]?\s*([^()\n]+?)\s*\)?\s*\.?\s*$", re.IGNORECASE)
_ARTICLES = re.compile(r"^(the|a|an)\s+")
_PUNCT = re.compile(r"[^\w\s.%-]|(?<!\d)\.|\.(?!\d)")


def render_answer(answer: str, *, guess: str | None = None) -> str:
    """The ``Answer:`` line in the form `parse_answer` reads."""
    if guess is not None:
        return f"Answer: {ABSTAIN} (best guess: {guess})"
    return f"Answer: {answer}"


def normalize(text: str) -> str:
    """Case, accents, punctuation, spacing and a leading article do not matter."""
    text = unicodedata.normalize("NFKC", text).lower().strip()
    text = _PUNCT.sub(" ", text)
    text = " ".join(text.split())
    return _ARTICLES.sub("", text)


@dataclass(frozen=True)
class ParsedAnswer:
    answer: str | None  # the text after "Answer:", None when no such line
    abstained: bool
    committed: str | None  # what is scored: the answer, or an abstention's guess

    @classmethod
    def of(cls, text: str) -> ParsedAnswer:
        match = _ANSWER_LINE.search(text)
        if not match:
            return cls(None, False, None)
        answer = match.group(1).strip()
        if normalize(answer).startswith(ABSTAIN):
            guess = _GUESS.search(answer)
            return cls(answer, True, guess.group(1).strip() if guess else None)
        return cls(answer, False, answer)


def matches(given: str | None, gold: list[str]) -> bool:
    """``given`` is a gold answer, or starts with one as a whole word ("84 jars" for 84)."""
    if not given:
        return False
    said = normalize(given)
    for g in gold:
        g = normalize(g)
        if g and (said == g or said.startswith(g + " ")):
            return True
    return False


@dataclass(frozen=True)
class CalibrationScore:
    confidence: float | None  # as stated; None: no parseable [confidence: x]
    correct: bool
    abstained: bool
    committed: str | None


def score_calibration(item: CalibrationItem, text: str) -> CalibrationScore:
    parsed = ParsedAnswer.of(text)
    correct = matches(parsed.committed, [item.answer, *item.aliases])
    return CalibrationScore(parse_confidence(text), correct, parsed.abstained, parsed.committed)


@dataclass(frozen=True)
class RevisionScore:
    confidence: float | None
    delta: float | None  # new - prior; None when no confidence was stated
    direction_ok: bool
    amount_ok: bool


def score_revision(item: BeliefRevisionItem, text: str) -> RevisionScore:
    """Direction and size of the move; resistance items must stay within ±0.01."""
    new = parse_confidence(text)
    if new is None:
        return RevisionScore(None, None, False, False)
    delta = round(new - item.prior, 6)
    if item.direction == "none":
        still = abs(delta) <= UNCHANGED_TOLERANCE + 1e-9
        return RevisionScore(new, delta, still, still)
    sign = 1 if item.direction == "up" else -1
    moved = sign * delta
    direction_ok = moved > RANGE_SLACK
    amount_ok = item.min_delta - RANGE_SLACK <= moved <= item.max_delta + RANGE_SLACK
    return RevisionScore(new, delta, direction_ok, direction_ok and amount_ok)
