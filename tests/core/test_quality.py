"""Degenerate output: the three failure shapes a small model shows are caught, and
real traces (examples/traces.jsonl) and the docs' prose pass with no false positive."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from hegelion_core.data import quality
from hegelion_core.data.quality import QualityConfig, check_response, check_text, check_trace
from hegelion_core.generation.dialectic import DialecticConfig, DialecticEngine, PhaseFailed
from hegelion_core.records import DialecticTrace, render_output
from tests.core.teachers import RuleTeacher

ROOT = Path(__file__).resolve().parents[2]
REAL = [json.loads(line) for line in (ROOT / "examples" / "traces.jsonl").read_text().splitlines()]
UNSCREENED = QualityConfig(screen=False)
PROSE = REAL[0]["hegelion_trace"]["synthesis"]


@pytest.mark.parametrize("config", [quality.DEFAULT, UNSCREENED], ids=["screened", "unscreened"])
def test_real_traces_have_no_false_positive(config: QualityConfig) -> None:
    for record in REAL:
        assert check_trace(record["hegelion_trace"], config) == [], record["instruction"]
        assert check_trace(DialecticTrace.model_validate(record["hegelion_trace"]), config) == []
        assert check_response(record["output"], config) == []


def test_the_docs_prose_has_no_false_positive() -> None:
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        assert check_text(text, UNSCREENED) == [], path.name
        for paragraph in text.split("\n\n"):
            assert check_text(paragraph, UNSCREENED) == [], (path.name, paragraph[:60])


def test_the_screen_clears_real_traces_without_splitting_words() -> None:
    # Why the checks are fast: on ordinary prose the character probes decide alone.
    for record in REAL:
        trace = record["hegelion_trace"]
        for name in ("thesis", "antithesis", "synthesis", "answer"):
            assert not quality._may_repeat(trace[name].lower())
        for later, earlier in (
            ("antithesis", "thesis"),
            ("synthesis", "thesis"),
            ("synthesis", "antithesis"),
        ):
            assert not quality._may_copy(trace[later].lower(), trace[earlier].lower(), 0.5)


LOOPS = {
    "one word": "Deontology is the view that duties come first. " + "deontology, " * 70,
    "a phrase": PROSE + " " + "The answer is clear and simple. " * 12,
    "a sentence, far apart": (PROSE + " ") * 3,
    "short words": "no " * 90,
    "a long tail loop": PROSE + " " + " ".join(["and so on"] * 30),
}


@pytest.mark.parametrize("text", LOOPS.values(), ids=LOOPS.keys())
@pytest.mark.parametrize("config", [quality.DEFAULT, UNSCREENED], ids=["screened", "unscreened"])
def test_loops_are_repetitive(text: str, config: QualityConfig) -> None:
    assert check_text(text, config) == ["repetitive"]


@pytest.mark.parametrize("config", [quality.DEFAULT, UNSCREENED], ids=["screened", "unscreened"])
def test_an_antithesis_that_copies_the_thesis_is_copied_section(config: QualityConfig) -> None:
    real = REAL[1]["hegelion_trace"]
    same = dict(real, antithesis=real["thesis"])
    edited = dict(real, antithesis="I disagree. " + real["thesis"].replace(" is ", " is not "))
    synth = dict(real, synthesis=real["antithesis"] + " So both sides matter.")
    assert check_trace(same, config) == ["copied_section"]
    assert check_trace(edited, config) == ["copied_section"]
    assert check_trace(synth, config) == ["copied_section"]
    issue = quality.trace_issues(same, config)[0]
    assert issue.section == "antithesis" and "thesis again" in issue.detail


def test_a_council_critic_that_copies_the_thesis_is_caught() -> None:
    real = REAL[2]["hegelion_trace"]
    trace = dict(real, critiques=[{"persona": "logician", "text": real["thesis"]}])
    assert [i.section for i in quality.trace_issues(trace)] == ["critic:logician"]


def test_an_empty_answer_after_the_thought_is_empty_answer() -> None:
    trace = DialecticTrace.model_validate(REAL[0]["hegelion_trace"])
    closed = render_output(trace.model_copy(update={"answer": None}))
    empty = closed[: closed.index("</thought>") + len("</thought>")] + "\n  \n"
    assert check_response(empty) == ["empty_answer"]
    assert check_response(empty.replace("</thought>", "</thought>\n[TODO]")) == ["empty_answer"]
    assert check_response(closed) == []  # the synthesis restated after it is an answer
    assert check_response("THESIS: a\nANTITHESIS: b\nSYNTHESIS: c") == []  # no <thought> at all


def test_thresholds_are_options_and_can_be_turned_off() -> None:
    loop = LOOPS["a phrase"]
    assert check_text(loop, QualityConfig(enabled=False)) == []
    assert check_text(loop, QualityConfig(max_loop_words=200, max_repeated_share=0.9)) == []
    assert (
        check_text(PROSE, QualityConfig(max_repeated_share=0.01, min_words=1, screen=False)) == []
    )
    with pytest.raises(ValueError, match="max_repeated_shar"):
        QualityConfig(max_repeated_shar=0.5)


def test_the_dialectic_rejects_degenerate_phases() -> None:
    t = RuleTeacher()
    t.replies["antithesis"] = [REAL[0]["hegelion_trace"]["thesis"]]
    t.replies["thesis"] = [REAL[0]["hegelion_trace"]["thesis"]]
    with pytest.raises(PhaseFailed) as info:
        asyncio.run(DialecticEngine(t, DialecticConfig()).run("q"))
    assert info.value.phase == "antithesis"
    assert info.value.reason.startswith("degenerate: copied_section")

    t = RuleTeacher()
    t.replies["single"] = [
        render_output(
            DialecticTrace(thesis="Yes.", antithesis="No.", synthesis="Sometimes.")
        ).split("</thought>")[0]
        + "</thought>\n"
    ]
    with pytest.raises(PhaseFailed, match="degenerate: empty_answer"):
        asyncio.run(DialecticEngine(t, DialecticConfig(mode="single")).run("q"))

    t = RuleTeacher()
    t.replies["synthesis"] = ["deontology, " * 80]
    with pytest.raises(PhaseFailed, match="degenerate: repetitive") as info:
        asyncio.run(DialecticEngine(t, DialecticConfig()).run("q"))
    assert info.value.phase == "synthesis"
    t = RuleTeacher()
    t.replies["synthesis"] = ["deontology, " * 80]
    off = DialecticConfig(quality=QualityConfig(enabled=False))
    assert asyncio.run(DialecticEngine(t, off).run("q")).trace.synthesis.startswith("deontology")
