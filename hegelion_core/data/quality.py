"""Degenerate output is not data: loops, copied sections and empty answers.

A small student or teacher fails in recognisable shapes: it loops ("deontology,
deontology, deontology..."), its antithesis repeats the thesis, or it closes
``</thought>`` and says nothing. Each measure has a reason slug (`REPETITIVE`,
`COPIED_SECTION`, `EMPTY_ANSWER`) and its thresholds are fields of `QualityConfig`.

The measures, on words (the lower-cased text split on whitespace):

* **repetitive**: over ``max_repeated_share`` of a section's word 4-grams repeat an
  earlier one (a loop makes nearly every 4-gram a repeat; prose repeats a few
  percent), or a phrase of up to ``loop_period`` words is said back to back over more
  than ``max_loop_words`` words.
* **copied_section**: a later section (antithesis, synthesis, a council critique) has
  over ``max_copied_share`` of its distinct words and of its distinct 4-grams in an
  earlier one (thesis, antithesis), or is the same words. With ``iterations`` above 1
  the synthesis may keep its thesis (the previous round's synthesis).
* **empty_answer**: a response closes ``</thought>`` with nothing (or a placeholder)
  after it.

Curation runs these over every record of large files, so they must cost about what
parsing the JSON line does, and splitting text into words alone costs more than that.
A screen on character probes (`_may_repeat`, `_may_copy`: a few ``str.count`` and
``in`` calls, no regex, linear in the text) clears ordinary prose, and only what it
cannot clear is split into words and measured. The screen only decides where to
look: it never rejects anything itself. ``screen=False`` measures every text.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

REPETITIVE = "repetitive"
COPIED_SECTION = "copied_section"
EMPTY_ANSWER = "empty_answer"
REASONS = (REPETITIVE, COPIED_SECTION, EMPTY_ANSWER)


class QualityConfig(BaseModel):
    """Thresholds of the degenerate-output checks (``hegelion generate --quality KEY=VALUE``).

    Calibrated on real text (examples/traces.jsonl and the docs): it repeats at most
    7% of its 4-grams (28% in one dense docs paragraph), a section shares under 30%
    of its words and 1% of its 4-grams with an earlier one, and no phrase comes back
    to back more than once; the defaults leave a wide margin on each."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    ngram: int = Field(4, ge=2, le=8, description="words per n-gram")
    min_words: int = Field(
        40,
        ge=1,
        description="sections shorter than this are not "
        "measured for repeated n-grams (too few to tell)",
    )
    max_repeated_share: float = Field(
        0.5, gt=0, le=1, description="repetitive above this share of repeated n-grams"
    )
    loop_period: int = Field(
        8,
        ge=1,
        le=32,
        description="the longest phrase, in words, looked for in a back-to-back loop",
    )
    max_loop_words: int = Field(
        60,
        ge=2,
        description="repetitive when one phrase repeats back to back over more words than this",
    )
    max_copied_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="copied_section above "
        "this share of a section's words and n-grams found in "
        "an earlier section",
    )
    min_copy_ngrams: int = Field(
        8,
        ge=1,
        description="a section with fewer n-grams is a copy only when its words are the same",
    )
    screen: bool = Field(
        True,
        description="skip the word measures on text the character "
        "probes clear (off: measure every text; slower)",
    )


DEFAULT = QualityConfig()


@dataclass(frozen=True)
class Issue:
    """One failed measure: its reason slug, the section, and the figure against its limit."""

    reason: str
    section: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason} ({self.detail})"


# ----- the word measures -------------------------------------------------------------


def words(text: str) -> list[str]:
    """The lower-cased, whitespace-split words every measure counts."""
    return text.lower().split()


def _ngrams(tokens: list[str], n: int) -> zip[tuple[str, ...]]:
    return zip(*(tokens[i:] for i in range(n)))


def repeated_share(tokens: list[str], n: int = 4) -> float:
    """The share of ``n``-grams that repeat an earlier one: 0 for all-new text, near 1
    for a loop."""
    total = len(tokens) - n + 1
    return 1.0 - len(set(_ngrams(tokens, n))) / total if total > 0 else 0.0


def longest_loop(tokens: list[str], max_period: int = 8) -> tuple[int, int]:
    """(words, period) of the longest stretch where a phrase of ``period`` words (up to
    ``max_period``) is said at least twice back to back; (0, 0) when none is."""
    best, best_period = 0, 0
    for period in range(1, max_period + 1):
        if len(tokens) <= period:
            break
        same = bytes(map(operator.eq, tokens, tokens[period:]))  # 1 where word i == word i+p
        run = max(map(len, same.split(b"\x00")))
        if run >= period and run + period > best:
            best, best_period = run + period, period
    return best, best_period


def copied_share(later: list[str], earlier: list[str], n: int = 4) -> float:
    """The share of ``later``'s distinct n-grams that also occur in ``earlier``."""
    grams = set(_ngrams(later, n))
    if not grams:
        return 0.0
    return len(grams.intersection(_ngrams(earlier, n))) / len(grams)


# ----- the screen: character probes ----------------------------------------------------

_PROBE = 20  # characters in a probe
_STEP = 192  # characters between probes
_SPAN = 768  # a probe's repeats are looked for this far after it
_GLOBAL_PROBES = 4  # in a longer text, probes also counted over all of it (repeats far apart)
_COPY_PROBES = 4  # at most this many probes of a later section looked up in an earlier one


def _may_repeat(text: str) -> bool:
    """False when no probe recurs soon after itself, nor (in a text longer than the span)
    a few of them anywhere. Then the text holds no loop over more than about 250
    characters (60 words are longer, bar words of one or two letters) of a phrase under
    about 250, and does not repeat half of itself."""
    last = len(text) - _PROBE
    if last < _PROBE:
        return False
    count = text.count
    for i in range(0, last + 1, _STEP):
        if count(text[i : i + _PROBE], i, i + _SPAN) > 1:
            return True
    return len(text) > _SPAN and any(
        count(text[i : i + _PROBE]) > 1
        for i in range(0, last + 1, max(_STEP, last // _GLOBAL_PROBES + 1))
    )


def _may_copy(later: str, earlier: str, share: float) -> bool:
    """False when too few of ``later``'s probes occur in ``earlier`` for it to be a copy
    (a copy of ``share`` of it holds about that share of them; half that is asked)."""
    last = len(later) - _PROBE
    if last < _STEP:
        return True  # short: the word measures are cheap
    probes = range(0, last + 1, max(_STEP, last // _COPY_PROBES + 1))
    found = sum(later[i : i + _PROBE] in earlier for i in probes)
    return found > share / 2 * len(probes)


class _Section:
    """One text, lower-cased once; its words and distinct words made when first asked."""

    __slots__ = ("name", "text", "_tokens", "_distinct")

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text.lower()
        self._tokens: list[str] | None = None
        self._distinct: set[str] | None = None

    @property
    def tokens(self) -> list[str]:
        if self._tokens is None:
            self._tokens = self.text.split()
        return self._tokens

    @property
    def distinct(self) -> set[str]:
        if self._distinct is None:
            self._distinct = set(self.tokens)
        return self._distinct


def _repetition(sec: _Section, config: QualityConfig) -> Issue | None:
    if config.screen and not _may_repeat(sec.text):
        return None
    tokens, n = sec.tokens, config.ngram
    if len(tokens) >= config.min_words:
        # Each distinct word's first use starts a new n-gram (bar the first n-1), so
        # many distinct words bound the repeated share without building n-grams.
        total = len(tokens) - n + 1
        if 1.0 - (len(sec.distinct) - (n - 1)) / total > config.max_repeated_share:
            share = repeated_share(tokens, n)
            if share > config.max_repeated_share:
                return Issue(
                    REPETITIVE,
                    sec.name,
                    f"{sec.name}: {share:.0%} of its {n}-grams "
                    f"repeat; limit {config.max_repeated_share:.0%}",
                )
    # A loop over L words holds at most `loop_period` distinct words among them.
    if len(sec.distinct) <= len(tokens) - config.max_loop_words + config.loop_period:
        loop, period = longest_loop(tokens, config.loop_period)
        if loop > config.max_loop_words:
            return Issue(
                REPETITIVE,
                sec.name,
                f"{sec.name}: a {period}-word phrase repeats back "
                f"to back over {loop} words; limit {config.max_loop_words}",
            )
    return None


def _copy(later: _Section, earlier: _Section, config: QualityConfig) -> Issue | None:
    limit, n = config.max_copied_share, config.ngram
    if config.screen and not _may_copy(later.text, earlier.text, limit):
        return None
    if not later.tokens:
        return None
    if later.tokens == earlier.tokens:
        return Issue(COPIED_SECTION, later.name, f"the {later.name} is the {earlier.name} again")
    if len(later.tokens) - n + 1 < config.min_copy_ngrams:
        return None
    if len(later.distinct & earlier.distinct) <= limit * len(later.distinct):
        return None
    share = copied_share(later.tokens, earlier.tokens, n)
    if share > limit:
        return Issue(
            COPIED_SECTION,
            later.name,
            f"{share:.0%} of the {later.name}'s {n}-grams "
            f"are in the {earlier.name}; limit {limit:.0%}",
        )
    return None


# ----- public API ----------------------------------------------------------------------


def text_issues(text: str, config: QualityConfig = DEFAULT, section: str = "text") -> list[Issue]:
    """The repetition measures on one text."""
    if not config.enabled:
        return []
    issue = _repetition(_Section(section, text), config)
    return [issue] if issue else []


def _field(trace: Any, name: str) -> Any:
    return trace.get(name) if isinstance(trace, Mapping) else getattr(trace, name, None)


def trace_issues(trace: Any, config: QualityConfig = DEFAULT) -> list[Issue]:
    """Every measure on a dialectic: a `DialecticTrace`, or the ``hegelion_trace`` dict
    of a record as read from JSON (no pydantic needed). The final answer is measured
    for repetition only: it is meant to restate the synthesis."""
    if not config.enabled:
        return []
    issues: list[Issue | None] = []
    sections: dict[str, _Section] = {}
    for name in ("thesis", "antithesis", "synthesis", "answer"):
        text = _field(trace, name)
        if isinstance(text, str) and text.strip():
            sections[name] = sec = _Section(name, text)
            issues.append(_repetition(sec, config))
    # After the first round the thesis is the previous synthesis, which a refinement
    # rightly keeps much of: only the antithesis must be new against it.
    refined = (_field(trace, "iterations") or 1) > 1
    for later, earlier in (
        ("antithesis", "thesis"),
        ("synthesis", "thesis"),
        ("synthesis", "antithesis"),
    ):
        if refined and (later, earlier) == ("synthesis", "thesis"):
            continue
        if later in sections and earlier in sections:
            issues.append(_copy(sections[later], sections[earlier], config))
    thesis = sections.get("thesis")
    for critique in _field(trace, "critiques") or ():
        text = _field(critique, "text")
        if isinstance(text, str) and text.strip():
            sec = _Section(f"critic:{_field(critique, 'persona')}", text)
            issues.append(_repetition(sec, config))
            if thesis is not None:
                issues.append(_copy(sec, thesis, config))
    return [i for i in issues if i is not None]


def empty_answer(text: str) -> bool:
    """True when ``text`` closes ``</thought>`` and nothing real follows it."""
    from hegelion_core.records import is_placeholder

    at = text.lower().find("</thought")
    if at < 0:
        return False
    close = text.find(">", at)
    return close < 0 or is_placeholder(text[close + 1 :])


def response_issues(
    text: str, config: QualityConfig = DEFAULT, section: str = "single"
) -> list[Issue]:
    """The measures on one whole response in the ``<thought>`` format: repetition over
    all of it, and an empty final answer."""
    if not config.enabled:
        return []
    issues = text_issues(text, config, section)
    if empty_answer(text):
        issues.append(Issue(EMPTY_ANSWER, section, "nothing after </thought>"))
    return issues


def _slugs(issues: list[Issue]) -> list[str]:
    return list(dict.fromkeys(i.reason for i in issues))


def check_text(text: str, config: QualityConfig = DEFAULT) -> list[str]:
    """Reason slugs for one text (``[]``: nothing degenerate found)."""
    return _slugs(text_issues(text, config))


def check_trace(trace: Any, config: QualityConfig = DEFAULT) -> list[str]:
    """Reason slugs for one dialectic (a `DialecticTrace` or its dict)."""
    return _slugs(trace_issues(trace, config))


def check_response(text: str, config: QualityConfig = DEFAULT) -> list[str]:
    """Reason slugs for one whole ``<thought>`` response."""
    return _slugs(response_issues(text, config))
