"""Read thesis / antithesis / synthesis out of a teacher's free-form response.

Teachers label the three phases in many ways (``**THESIS**:``, ``## Thesis``,
``<thesis>``...). This module finds them without inventing text: a phase that is
absent, empty or a placeholder is reported in ``missing`` instead of guessed.
`hegelion_core.records.render_output` writes the one canonical form, and `parse_trace`
reads it back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from hegelion_core.records import Contradiction, DialecticTrace, ResearchProposal, is_placeholder

PARTS = ("thesis", "antithesis", "synthesis")

# All patterns run on `_fold(text)`, a lower-cased copy with the same indices:
# that is several times faster than re.IGNORECASE, and slices come from the original.

# A section label: at a line start, after optional heading marks, a bullet, list
# numbering and bold/italic marks; then the word, an optional "(aside)", and a
# separator (":", "-", an em/en dash, closing "**" or the end of the line). The
# line-start anchor keeps prose ("the thesis is wrong") out, and the alternation
# order plus `\b` keep ANTITHESIS/SYNTHESIS from ever reading as THESIS.
_SECTION = re.compile(
    r"^[ \t]*(?:\#{1,6}[ \t]*)?(?:[-+*][ \t]+)?(?:[*_]{1,3}[ \t]*)?"
    r"(?:(?:\d{1,2}|[ivx]{1,4})[.)][ \t]*)?(?:[*_]{1,3}[ \t]*)?"
    r"(?P<part>antithesis|synthesis|thesis)\b[ \t]*(?:\([^()\n]{0,80}\)[ \t]*)?"
    r"(?:[*_]{1,3}[ \t]*)?"
    r"(?::|—|–|-(?=\s|$)|\#*[ \t\r]*$)(?:[ \t]*[*_]{1,3}(?![*_\w]))?",
    re.MULTILINE,
)
_SECTION_TAG = re.compile(r"<(?P<part>antithesis|synthesis|thesis)\b[^>\n]*>")
_SECTION_WORD = re.compile(r"thesis")  # inside all three names: lines worth trying
_MARKER = re.compile(
    r"^[ \t]*(?:\#{1,6}[ \t]*)?(?:[-+*][ \t]+)?(?:\d{1,2}[.)][ \t]*)?(?:[*_]{1,3}[ \t]*)?"
    r"(?P<kind>contradiction|evidence|research[ _-]proposal|testable[ _-]prediction)\b"
    r"(?:[ \t]*\#?\d{1,3})?[ \t]*(?:[*_]{1,3}[ \t]*)?:(?:[ \t]*[*_]{1,3}(?![*_\w]))?",
    re.MULTILINE,
)
_MARKER_WORD = re.compile(r"contradiction|evidence|proposal|prediction")
_THOUGHT_OPEN = re.compile(r"<thought\b[^>\n]*>")
_THOUGHT_CLOSE = re.compile(r"</thought\s*>")
_STOP_TAG = re.compile(r"</?(?:thought|antithesis|synthesis|thesis)\b[^>\n]*>")
_BLANK_LINE = re.compile(r"\n[ \t\r]*\n")
_NO_CONTENT = re.compile(r"[\s*_#=-]*")
_RULE = re.compile(r"[ \t]*(?:-{3,}|\*{3,}|_{3,})?[ \t\r]*")


def _fold(text: str) -> str:
    """`text` lower-cased, index for index (U+0130 is the one character that
    lower-cases to two, so it is mapped by hand)."""
    folded = text.lower()
    return folded if len(folded) == len(text) else text.replace("\u0130", "i").lower()


def _line_matches(
    pattern: re.Pattern[str], word: re.Pattern[str], folded: str
) -> Iterator[re.Match[str]]:
    """`pattern` tried only at the starts of lines that contain `word`: trying
    every line start costs too much on responses with 100k short lines."""
    line, searched_to, tried = 0, 0, -1
    for hit in word.finditer(folded):
        newline = folded.rfind("\n", searched_to, hit.start())
        line = newline + 1 if newline >= 0 else line
        searched_to = hit.start()
        if line != tried:
            tried = line
            if m := pattern.match(folded, line):
                yield m


class _Label(NamedTuple):
    part: str
    start: int  # where the label begins: the section before it ends here
    body_start: int
    is_tag: bool  # an opening <tag>: its section also ends at the closing </tag>
    canonical: bool  # a bare "THESIS:" line, as `render_output` writes it


@dataclass(frozen=True)
class ParsedTrace:
    """What one response yielded; `missing` says why a phase could not be used."""

    thesis: str | None
    antithesis: str | None
    synthesis: str | None
    answer: str | None
    contradictions: list[Contradiction]
    research_proposals: list[ResearchProposal]
    missing: dict[str, str]

    @property
    def ok(self) -> bool:
        """True when all three phases hold real text, so the trace is usable data."""
        return not self.missing

    def to_trace(self) -> DialecticTrace:
        """The validated trace; raises ValueError naming every missing phase."""
        if not self.ok:
            raise ValueError("incomplete dialectic: " + "; ".join(self.missing.values()))
        assert self.thesis and self.antithesis and self.synthesis
        return DialecticTrace(
            thesis=self.thesis,
            antithesis=self.antithesis,
            synthesis=self.synthesis,
            answer=self.answer,
            contradictions=self.contradictions,
            research_proposals=self.research_proposals,
        )


def _split_thought(text: str, folded: str) -> tuple[int, int, str | None]:
    """Bounds of the text to search for sections, and the answer after ``</thought>``."""
    opened = _THOUGHT_OPEN.search(folded)
    start = opened.end() if opened else 0
    closed = _THOUGHT_CLOSE.search(folded, start)
    if not closed:
        return start, len(text), None
    return start, closed.start(), text[closed.end() :].strip() or None


def _labels(text: str, folded: str) -> list[_Label]:
    """Every section label in `text` (and its `folded` copy), in text order."""
    found = [
        _Label(m["part"], m.start(), m.end(), False, _is_canonical(text, m))
        for m in _line_matches(_SECTION, _SECTION_WORD, folded)
    ]
    found += [
        _Label(m["part"], m.start(), m.end(), True, False) for m in _SECTION_TAG.finditer(folded)
    ]
    return sorted(found, key=lambda label: label.start)


def _is_canonical(text: str, m: re.Match[str]) -> bool:
    """Whether the label is a bare upper-case "THESIS:" line, as `render_output` writes."""
    bare = text[m.start() : m.end()] == m["part"].upper() + ":"
    return bare and (m.end() == len(text) or text.startswith(("\n", "\r"), m.end()))


def _body(region: str, label: _Label, end: int) -> str:
    """The stripped text of a section; "" when a teacher's section holds only markup."""
    body = region[label.body_start : end]
    if label.is_tag and (close := re.search(rf"</{label.part}\s*>", body, re.IGNORECASE)):
        body = body[: close.start()]
    body = body.strip()
    end = len(body)
    while not label.canonical and (newline := body.rfind("\n", 0, end)) >= 0:
        if not _RULE.fullmatch(body, newline + 1, end):
            break
        end = newline  # a "---" between markdown sections separates, it is not content
    body = body[:end].strip()
    return "" if not label.canonical and _NO_CONTENT.fullmatch(body) else body


def _choose(region: str, labels: list[_Label]) -> dict[str, tuple[_Label, bool]]:
    """The label to use for each phase, with whether its section is empty.

    The first label of each phase wins, keeping thesis < antithesis < synthesis
    where the text allows and falling back to text order where it does not. In a
    teacher's text, a label with nothing before the next label of another phase
    (a plan list "- Thesis / - Antithesis") is passed over while a later one has text.
    """
    canonical = [label for label in labels if label.canonical]
    if {label.part for label in canonical} == set(PARTS):
        # Our own form: bodies may hold any other label ("THESIS: Title", "## Synthesis").
        labels, empty = canonical, [False] * len(canonical)
    else:
        empty = []
        for i, label in enumerate(labels):
            nxt = labels[i + 1] if i + 1 < len(labels) else None
            same = nxt is not None and nxt.part == label.part  # "THESIS:" then "THESIS: Title"
            empty.append(not same and not _body(region, label, nxt.start if nxt else len(region)))
    pools: dict[str, list[tuple[_Label, bool]]] = {part: [] for part in PARTS}
    for label, is_empty in zip(labels, empty):
        pools[label.part].append((label, is_empty))
    chosen: dict[str, tuple[_Label, bool]] = {}
    after = -1
    for part, pool in pools.items():
        usable = [c for c in pool if not c[1]]
        pick = next((c for c in usable if c[0].start > after), None)
        pick = pick or (usable[0] if usable else pool[0] if pool else None)
        if pick:
            chosen[part] = pick
            after = max(after, pick[0].start)
    return chosen


def parse_trace(text: str) -> ParsedTrace:
    """Split one teacher response into its phases, markers and final answer."""
    folded = _fold(text)
    start, stop, answer = _split_thought(text, folded)
    region = text[start:stop]
    chosen = _choose(region, _labels(region, folded[start:stop]))
    starts = sorted(label.start for label, _ in chosen.values())
    bodies: dict[str, str | None] = {}
    missing: dict[str, str] = {}
    for part in PARTS:
        name = part.upper()
        if part not in chosen:
            bodies[part], missing[part] = None, f"no {name} section found"
            continue
        label, empty = chosen[part]
        end = next((s for s in starts if s > label.start), len(region))
        body = "" if empty else _body(region, label, end)
        if not body:
            bodies[part], missing[part] = None, f"{name} section is empty"
        elif is_placeholder(body):
            bodies[part], missing[part] = None, f"{name} section is a placeholder: {body[:60]!r}"
        else:
            bodies[part] = body
    markers = _markers(text, folded)
    return ParsedTrace(
        thesis=bodies["thesis"],
        antithesis=bodies["antithesis"],
        synthesis=bodies["synthesis"],
        answer=answer,
        contradictions=_contradictions(markers),
        research_proposals=_proposals(markers),
        missing=missing,
    )


def holds_label(text: str) -> bool:
    """True when ``text`` holds a section label or a ``<thought>`` tag: a section body or
    a final answer that does is the trace's scaffolding spilled into it ("THESIS:\n
    THESIS:" read as a thesis), not a position. The canonical form allows a label inside
    a body (`parse_trace`), so readers of records do not reject on this; rewards do."""
    folded = _fold(text)
    if _THOUGHT_OPEN.search(folded) or _THOUGHT_CLOSE.search(folded) or "thought>" in folded:
        return True
    return next(_line_matches(_SECTION, _SECTION_WORD, folded), None) is not None


def _clean(text: str) -> str:
    """Drop the bold marks a marker line wore (``**RESEARCH_PROPOSAL: Title**``)."""
    first, sep, rest = text.strip().partition("\n")
    return (first.strip(" \t*") + sep + rest).strip().strip("*").strip()


def _markers(text: str, folded: str) -> list[tuple[str, str]]:
    """Every marker as (kind, text). A marker's text runs to the next marker,
    section label or tag, and stops at a blank line unless its partner
    (EVIDENCE, TESTABLE_PREDICTION) comes next."""
    events = [
        (m.start(), m.end(), m["kind"].replace(" ", "_").replace("-", "_"))
        for m in _line_matches(_MARKER, _MARKER_WORD, folded)
    ]
    events += [(label.start, label.start, "") for label in _labels(text, folded)]
    events += [(m.start(), m.start(), "") for m in _STOP_TAG.finditer(folded)]
    events.sort()
    partner = {"contradiction": "evidence", "research_proposal": "testable_prediction"}
    out = []
    for i, (_, body_start, kind) in enumerate(events):
        if not kind:
            continue
        nxt = events[i + 1] if i + 1 < len(events) else None
        body = text[body_start : nxt[0] if nxt else len(text)]
        if not (nxt and partner.get(kind) == nxt[2]):
            lead = len(body) - len(body.lstrip())
            blank = _BLANK_LINE.search(body, lead)
            body = body[: blank.start()] if blank else body
        out.append((kind, _clean(body)))
    return out


def _pairs(markers: list[tuple[str, str]], head: str, tail: str) -> list[tuple[str, str | None]]:
    """(head text, tail text or None); a tail counts only right after its head."""
    pairs: list[tuple[str, str | None]] = []
    previous = ""
    for kind, body in markers:
        if kind == head and body:
            pairs.append((body, None))
        elif kind == tail and previous == head and body:
            pairs[-1] = (pairs[-1][0], body)
        previous = kind if body else ""
    # A final answer often repeats the synthesis: the same marker twice is one finding.
    return list(dict.fromkeys(pairs))


def _contradictions(markers: list[tuple[str, str]]) -> list[Contradiction]:
    pairs = _pairs(markers, "contradiction", "evidence")
    return [Contradiction(description=d, evidence=e) for d, e in pairs]


def _proposals(markers: list[tuple[str, str]]) -> list[ResearchProposal]:
    pairs = _pairs(markers, "research_proposal", "testable_prediction")
    return [ResearchProposal(description=d, testable_prediction=p) for d, p in pairs]


def parse_contradictions(text: str) -> list[Contradiction]:
    """``CONTRADICTION:`` markers, each with the ``EVIDENCE:`` that follows it."""
    return _contradictions(_markers(text, _fold(text)))


def parse_research_proposals(text: str) -> list[ResearchProposal]:
    """``RESEARCH_PROPOSAL:`` markers with their ``TESTABLE_PREDICTION:``; a
    prediction with no proposal before it is dropped rather than promoted."""
    return _proposals(_markers(text, _fold(text)))
