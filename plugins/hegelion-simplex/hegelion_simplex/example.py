"""One generated example: the training conversation and the eval item behind it."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from hegelion_core import render_answer, with_confidence
from hegelion_simplex import pools


@dataclass(slots=True)
class Example:
    """A (system, user, assistant) conversation plus the ground truth that scores it.

    ``truth`` holds the stage's eval-item fields (`CalibrationItem` or
    `BeliefRevisionItem` in ``hegelion_core.evaluation.items``) minus id and messages.
    """

    stage: str
    template: str
    system: str
    user: str
    assistant: str
    truth: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """The training row: chat ``messages``, as `hegelion train` (trl, mlx) reads them."""
        return {
            "messages": [
                {"role": "system", "content": self.system},
                {"role": "user", "content": self.user},
                {"role": "assistant", "content": self.assistant},
            ]
        }

    def item(self, item_id: str) -> dict[str, Any]:
        """The eval item: the conversation up to the answer, and the ground truth."""
        return {
            "id": item_id,
            "stage": self.stage,
            "template": self.template,
            "messages": [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}],
            **self.truth,
        }


def pct(p: float) -> str:
    return f"{round(p * 100)}%"


def respond(answer: str, why: str, confidence: float, *, guess: str | None = None) -> str:
    """The assistant turn: the ``Answer:`` line, the reason, the confidence tag."""
    return with_confidence(f"{render_answer(answer, guess=guess)}\n{why}", confidence)


def calibration_truth(
    category: str,
    answer: str,
    confidence: float,
    *,
    determined: bool,
    best: str | None = None,
    aliases: list[str] | None = None,
    options: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "suite": "calibration",
        "category": category,
        "answer": answer,
        "aliases": aliases or [],
        "determined": determined,
        "best_answer": best if best is not None else answer,
        "expected_confidence": confidence,
        "options": options or [],
    }


def belief(rng: random.Random, names: tuple[str, ...] | list[str] = pools.NAMES) -> str:
    """A belief statement about the synthetic world (about one of ``names`` when it names someone)."""
    p1, p2 = rng.sample(pools.PLACES, 2)
    return rng.choice(pools.BELIEFS).format(
        place=p1, place2=p2, object=rng.choice(pools.OBJECTS), name=rng.choice(names)
    )


def odds_outcome(rng: random.Random, p_yes: float, yes: str, no: str) -> str:
    """The world's hidden outcome: ``yes`` with probability ``p_yes``."""
    return yes if rng.random() < p_yes else no
