"""The ``calibration`` and ``belief_revision`` rewards: proper scoring rules on the
``[confidence: 0.XX]`` a completion ends with (`hegelion_core.data.formatters.simplex`).

**calibration**, in [0, 1]: ``1 - (c - y)**2``, one minus the Brier score, where ``c`` is
the stated confidence and ``y`` is 1 when the completion's ``Answer:`` line (or an
abstention's best guess) matches the item's answer, else 0 (`score_calibration`, as
``hegelion eval`` scores it). The Brier score is proper: a model maximises its expected
reward only by stating the probability it really has of being right. Dataset columns:
``answer`` (the checkable answer, required) and ``aliases`` (other accepted spellings,
optional), as in a Simplex `CalibrationItem`.

**belief_revision**, in [0, 1]: ``1 - (c - e)**2``, where ``e`` is the item's
``expected`` confidence (what a sound reviser states after the evidence). It is the
Brier score against an outcome true with probability ``e`` less its irreducible part
``e(1 - e)``, so it too is maximised exactly at ``c = e``. Dataset column: ``expected``
(as in a Simplex `BeliefRevisionItem`).

A completion with no parseable confidence scores the floor, 0.0 (the worst Brier score).
A row whose column is ``None`` (not such an item, in a mixed dataset) gets ``None``,
TRL's "not applicable"; a dataset without the column at all is a configuration error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hegelion_core.data.formatters.simplex import parse_confidence
from hegelion_core.errors import HegelionError
from hegelion_core.evaluation.scoring import ParsedAnswer, matches
from hegelion_core.rewards.text import completion_text

#: What a completion without a parseable ``[confidence: x]`` scores.
FLOOR = 0.0


def brier_reward(confidence: float | None, outcome: float) -> float:
    """``1 - (confidence - outcome)**2``; `FLOOR` when no confidence was stated."""
    return FLOOR if confidence is None else 1.0 - (confidence - outcome) ** 2


def score_calibration_reward(text: str, answer: str, aliases: Sequence[str] = ()) -> float:
    """One completion's ``calibration`` reward against the item's answer."""
    correct = matches(ParsedAnswer.of(text).committed, [answer, *aliases])  # score_calibration's
    return brier_reward(parse_confidence(text), 1.0 if correct else 0.0)


def score_revision_reward(text: str, expected: float) -> float:
    """One completion's ``belief_revision`` reward against the expected confidence."""
    return brier_reward(parse_confidence(text), float(expected))


def _column(kwargs: dict[str, Any], name: str, reward: str, n: int) -> list[Any]:
    values = kwargs.get(name)
    if values is None:
        raise HegelionError(
            f"the {reward} reward needs the dataset column {name!r}, and the dataset has "
            f"none (columns: {', '.join(sorted(k for k in kwargs if k.isidentifier())) or 'none'})"
            f"\n  fix: train on Simplex items with their answers as columns, or drop "
            f"{reward} from grpo.rewards"
        )
    if len(values) != n:
        raise HegelionError(f"the {reward} reward got {len(values)} {name!r} values for {n} rows")
    return list(values)


def calibration_reward(
    prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **kwargs: Any
) -> list[float | None]:
    """TRL reward function: the ``calibration`` reward of each completion (see the module)."""
    answers = _column(kwargs, "answer", "calibration", len(completions))
    aliases = kwargs.get("aliases") or [None] * len(completions)
    return [
        None if answer is None else score_calibration_reward(completion_text(c), answer, more or ())
        for c, answer, more in zip(completions, answers, aliases, strict=True)
    ]


def belief_revision_reward(
    prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **kwargs: Any
) -> list[float | None]:
    """TRL reward function: the ``belief_revision`` reward of each completion."""
    expected = _column(kwargs, "expected", "belief_revision", len(completions))
    return [
        None if e is None else score_revision_reward(completion_text(c), e)
        for c, e in zip(completions, expected, strict=True)
    ]


calibration_reward.__name__ = "calibration"
belief_revision_reward.__name__ = "belief_revision"
