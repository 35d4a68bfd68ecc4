"""``simplex``: chat rows in the Simplex context protocol.

The user turn carries a ``<context>`` block (recent experiences, known facts, and
beliefs above the Anima threshold of 30%) and optionally a ``<hive name=...>`` block
(shared experiences and knowledge, hive beliefs above 50%). Beliefs at or above the
Divine threshold, 70%, may be stated as settled. Every answer ends with
``[confidence: 0.XX]``.

A confidence is never invented: a record without one (``confidence`` field) is
skipped. Records without an explicit ``context`` get one derived from their own
dialectic: what was considered and challenged, and the evidence raised.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from hegelion_core.contracts import DriverOptions, Formatter, SkipRecord
from hegelion_core.data.formatters import require_finished
from hegelion_core.data.parsing import parse_contradictions
from hegelion_core.records import Belief, SimplexContext, TraceRecord

ANIMA_THRESHOLD = 0.30
HIVE_THRESHOLD = 0.50
DIVINE_THRESHOLD = 0.70

SIMPLEX_SYSTEM = (
    "You are a Simplex agent. Ground your answer in the <context> you are given: recent "
    f"experiences, known facts, and current beliefs above {ANIMA_THRESHOLD:.0%} confidence. "
    f"A <hive> block shares your group's experiences, knowledge and beliefs above "
    f"{HIVE_THRESHOLD:.0%}. Treat beliefs at or above {DIVINE_THRESHOLD:.0%} (the Divine "
    "threshold) as settled, weigh the rest, and say when the context does not settle the "
    "question. End every response with [confidence: 0.XX]."
)

_SENTENCE = re.compile(r"(.+?[.!?])(\s|$)", re.DOTALL)
_LABEL = re.compile(r"^(?:[A-Z_]{4,}(?: \d+)?:\s*)+")  # "THESIS:", "CONTRADICTION 1:"


def first_sentence(text: str, limit: int = 200) -> str:
    """A short, whole-sentence summary of a phase for the context block."""
    for line in text.strip().splitlines():
        line = _LABEL.sub("", line.strip().strip("*#").strip())
        if line:
            match = _SENTENCE.match(line)
            sentence = match.group(1) if match else line
            return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"
    return text.strip()[:limit]


def derive_context(record: TraceRecord) -> SimplexContext:
    """A context built only from what the record's dialectic actually contains."""
    trace = record.hegelion_trace
    contradictions = (trace.contradictions or parse_contradictions(trace.antithesis))[:3]
    experiences = [f"Considered: {first_sentence(trace.thesis)}"]
    experiences += [f"Challenged by: {c.description}" for c in contradictions]
    if not contradictions:
        experiences.append(f"Challenged by: {first_sentence(trace.antithesis)}")
    facts = [first_sentence(c.evidence) for c in contradictions if c.evidence]
    return SimplexContext(experiences=experiences, facts=facts)


def _items(lines: list[str]) -> list[str]:
    return [f"- {line}" for line in lines] or ["- (none)"]


def _beliefs(beliefs: list[Belief], threshold: float) -> list[str]:
    kept = sorted((b for b in beliefs if b.confidence > threshold), key=lambda b: -b.confidence)
    return _items([f"{b.text} ({b.confidence:.0%})" for b in kept])


def render_context(ctx: SimplexContext, *, include_hive: bool = True) -> str:
    lines = ["<context>", "Recent experiences:", *_items(ctx.experiences)]
    lines += ["Known facts:", *_items(ctx.facts)]
    lines += [f"Current beliefs (confidence > {ANIMA_THRESHOLD:.0%}):"]
    lines += _beliefs(ctx.beliefs, ANIMA_THRESHOLD)
    lines.append("</context>")
    if include_hive and ctx.hive is not None:
        hive = ctx.hive
        lines += [f'<hive name="{hive.name}">', "Shared experiences:", *_items(hive.experiences)]
        lines += ["Shared knowledge:", *_items(hive.knowledge)]
        lines += [f"Hive beliefs (confidence > {HIVE_THRESHOLD:.0%}):"]
        lines += _beliefs(hive.beliefs, HIVE_THRESHOLD)
        lines.append("</hive>")
    return "\n".join(lines)


def with_confidence(answer: str, confidence: float) -> str:
    return f"{answer.rstrip()}\n\n[confidence: {confidence:.2f}]"


# The tag `with_confidence` writes; models may vary case and spacing, or write "1" / ".7".
_CONFIDENCE = re.compile(r"\[\s*confidence\s*[:=]\s*([01]?(?:\.\d+)?)\s*\]", re.IGNORECASE)


def parse_confidence(text: str) -> float | None:
    """The last ``[confidence: x]`` in ``text`` with 0 <= x <= 1, or None when there is none."""
    for match in reversed(list(_CONFIDENCE.finditer(text))):
        raw = match.group(1)
        if raw in ("", "."):
            continue
        value = float(raw)
        if 0.0 <= value <= 1.0:
            return value
    return None


class SimplexFormatter(Formatter):
    name = "simplex"

    class Options(DriverOptions):
        include_hive: bool = True
        include_trace: bool = False  # answer with the <thought> trace, not just the answer
        system: str = SIMPLEX_SYSTEM

    def format(self, record: TraceRecord) -> Iterator[dict[str, Any]]:
        require_finished(record)
        if record.confidence is None:
            raise SkipRecord("no confidence")
        ctx = record.context or derive_context(record)
        user = f"{render_context(ctx, include_hive=self.options.include_hive)}\n\n{record.prompt}"
        answer = record.output if self.options.include_trace else record.hegelion_trace.final_answer
        yield {
            "messages": [
                {"role": "system", "content": self.options.system},
                {"role": "user", "content": user},
                {"role": "assistant", "content": with_confidence(answer, record.confidence)},
            ]
        }

    def describe(self) -> str:
        return (
            "chat rows in the Simplex context protocol: <context>/<hive> blocks with "
            "thresholds 30%/50%/70%, answers ending in [confidence: 0.XX]"
        )
