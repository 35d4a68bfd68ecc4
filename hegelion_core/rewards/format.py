"""The ``format`` and ``markers`` rewards: is a completion a dialectic Hegelion can use?

**format**, in [0, 1], in steps of 0.25 so a GRPO run has a gradient to climb:

* 0.25 for each of THESIS, ANTITHESIS and SYNTHESIS (as `parse_trace` reads them) that
  holds real text (no placeholder, at least `MIN_WORDS` words, and none of the trace's
  scaffolding: no section label or ``<thought>`` tag inside it, so "THESIS:\nTHESIS:"
  is not a thesis), comes after the sections before it, is closed (by
  the next section's label or ``</thought>``: the section still open where the text
  ends may have been cut), and is not degenerate (`hegelion_core.data.quality`: a loop,
  or a copy of an earlier section);
* 0.25 for a final answer after ``</thought>`` that is real text in the same sense and
  not a loop, in a completion TRL did not cut at ``max_completion_length``.

1.0 is exactly the canonical rendering (`hegelion_core.records.render_output`) of a
sound trace. A cut completion never scores 1.0: TRL passes ``completion_ids``, and one
that used the whole ``max_completion_length`` budget (given to `build_rewards`, or to
the dotted-path function as ``HEGELION_MAX_COMPLETION_LENGTH``) was cut.

**markers**, in [0, 1]: 0.25 each for a ``CONTRADICTION:``, an ``EVIDENCE:`` right after
one, a ``RESEARCH_PROPOSAL:`` and a ``TESTABLE_PREDICTION:`` right after one, each with
real text (`parse_contradictions`, `parse_research_proposals`). Presence counts, not
number, so repeating markers earns nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from hegelion_core.data.parsing import (
    PARTS,
    holds_label,
    parse_contradictions,
    parse_research_proposals,
)
from hegelion_core.data.parsing import parse_trace as _parse_trace
from hegelion_core.data.quality import DEFAULT, QualityConfig, trace_issues
from hegelion_core.records import is_placeholder
from hegelion_core.rewards.text import completion_text, was_cut

#: What each section, and the final answer, earns.
CREDIT = 0.25
#: Words (runs of two letters or more) a section or the answer needs: "THESIS: m." is
#: not a position. The shortest real sections in the fixtures have three.
MIN_WORDS = 2
#: The dotted-path ``format_reward``'s ``max_completion_length`` (axolotl cannot pass one).
MAX_LENGTH_ENV = "HEGELION_MAX_COMPLETION_LENGTH"

_THOUGHT_CLOSE = re.compile(r"</thought\s*>", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]{2,}")


def real_text(text: str | None) -> bool:
    """Worth credit: not a placeholder, `MIN_WORDS` words, no label or tag spilled in."""
    if not text or is_placeholder(text):
        return False
    return len(_WORD.findall(text)) >= MIN_WORDS and not holds_label(text)


def score_format(text: str, *, cut: bool = False, quality: QualityConfig = DEFAULT) -> float:
    """One completion's ``format`` reward; ``cut``: TRL stopped it at its length limit."""
    parsed = _parse_trace(text)
    bodies = {part: getattr(parsed, part) for part in PARTS if getattr(parsed, part)}
    at, cursor = {}, 0
    for part, body in bodies.items():  # each after the one before: -1 when out of order
        at[part] = found = text.find(body, cursor)
        cursor = found + len(body) if found >= 0 else cursor
    closed = _THOUGHT_CLOSE.search(text) is not None
    last_open = None if closed or not at else max(at, key=lambda part: at[part])
    answer = parsed.answer if real_text(parsed.answer) else None
    issues = trace_issues({**bodies, "answer": answer}, quality)
    degenerate = {issue.section for issue in issues}
    score = 0.0
    for part, body in bodies.items():
        if at[part] >= 0 and part != last_open and part not in degenerate and real_text(body):
            score += CREDIT
    if answer is not None and not cut and "answer" not in degenerate:
        score += CREDIT
    return score


def score_markers(text: str) -> float:
    """One completion's ``markers`` reward."""
    contradictions = [c for c in parse_contradictions(text) if not is_placeholder(c.description)]
    proposals = [p for p in parse_research_proposals(text) if not is_placeholder(p.description)]
    found = (
        bool(contradictions),
        any(not is_placeholder(c.evidence) for c in contradictions),
        bool(proposals),
        any(not is_placeholder(p.testable_prediction) for p in proposals),
    )
    return CREDIT * sum(found)


def _max_length(given: int | None) -> int | None:
    if given is not None:
        return given
    raw = os.environ.get(MAX_LENGTH_ENV, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def format_reward(
    prompts: Sequence[Any] | None = None,
    completions: Sequence[Any] = (),
    completion_ids: Sequence[Sequence[int]] | None = None,
    *,
    max_completion_length: int | None = None,
    **kwargs: Any,
) -> list[float]:
    """TRL reward function: the ``format`` reward of each completion (see the module)."""
    limit = _max_length(max_completion_length)
    ids: Sequence[Sequence[int] | None] = completion_ids or [None] * len(completions)
    return [
        score_format(completion_text(c), cut=was_cut(i, limit))
        for c, i in zip(completions, ids, strict=True)
    ]


def markers_reward(
    prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **kwargs: Any
) -> list[float]:
    """TRL reward function: the ``markers`` reward of each completion (see the module)."""
    return [score_markers(completion_text(c)) for c in completions]


# TRL logs a reward function as rewards/<__name__>/mean.
format_reward.__name__ = "format"
markers_reward.__name__ = "markers"
