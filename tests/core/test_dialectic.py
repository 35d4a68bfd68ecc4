"""The dialectic engine on an in-process teacher: every mode, council, judge,
iterations, and failures that never become data."""

from __future__ import annotations

import asyncio

import pytest

from hegelion_core.contracts import TeacherError
from hegelion_core.generation.dialectic import (
    COUNCIL_PRESETS,
    DialecticConfig,
    DialecticEngine,
    PhaseFailed,
    parse_verdict,
    resolve_council,
)
from tests.core.teachers import RuleTeacher

Q = "cats like boxes"


def run(teacher: RuleTeacher, **config) -> object:
    return asyncio.run(DialecticEngine(teacher, DialecticConfig(**config)).run(Q))


def test_single_mode_parses_the_one_call() -> None:
    t = RuleTeacher()
    result = run(t, mode="single")
    assert [c[0] for c in t.calls] == ["single"]
    assert result.trace.thesis == f"Yes, {Q}" and result.trace.answer == f"Usually, {Q}"
    assert result.trace.contradictions[0].description == "Not always"
    assert result.trace.research_proposals[0].testable_prediction == "It holds 9 times in 10."
    assert result.usage.total_tokens == 30 and result.calls == 1 and "single" in result.timings


def test_single_mode_repairs_once() -> None:
    t = RuleTeacher()
    t.replies["single"] = ["Cats like boxes because they are cosy."]
    result = run(t, mode="single")
    assert result.calls == 2
    repair = t.calls[1][1]
    assert repair[-2].content == "Cats like boxes because they are cosy."
    assert "did not follow the required format" in repair[-1].content
    assert "no THESIS section found" in repair[-1].content


def test_single_mode_rejects_after_a_failed_repair() -> None:
    t = RuleTeacher()
    t.replies["single"] = ["no format", "THESIS: only a thesis"]
    with pytest.raises(PhaseFailed) as info:
        run(t, mode="single")
    assert info.value.phase == "single"
    assert "no ANTITHESIS section found" in info.value.reason


def test_phased_mode_passes_each_phase_what_came_before() -> None:
    t = RuleTeacher()
    result = run(t, mode="phased")
    assert [c[0] for c in t.calls] == ["thesis", "antithesis", "synthesis"]
    assert f"Thesis:\nThesis: yes, {Q}" in t.calls[1][1][1].content
    synthesis_input = t.calls[2][1][1].content
    assert "Thesis: yes" in synthesis_input and "CONTRADICTION: critic objects" in synthesis_input
    assert result.trace.contradictions[0].evidence == f"{Q} has exceptions."
    assert result.trace.research_proposals[0].description == "Test it."
    assert result.trace.answer is None and result.trace.final_answer == result.trace.synthesis


def test_council_critics_write_concurrently_and_are_merged() -> None:
    t = RuleTeacher({"delay": 0.05})
    result = run(t, council=["council"])
    critics = [c for c in t.calls if c[0] == "antithesis"]
    assert len(critics) == 3 and t.max_in_flight == 3
    assert [c.persona for c in result.trace.critiques] == COUNCIL_PRESETS["council"]
    assert result.trace.antithesis.startswith("[logician]\nCONTRADICTION: logician objects")
    assert "[ethicist]" in result.trace.antithesis
    assert len(result.trace.contradictions) == 3


def test_custom_critics_and_unknown_ones() -> None:
    personas = resolve_council(["logician", "skeptic=Doubt every number.", "logician"])
    assert [p.name for p in personas] == ["logician", "skeptic"]
    with pytest.raises(ValueError, match="unknown persona or preset 'poet'"):
        resolve_council(["poet"])


def test_judge_scores_with_a_schema() -> None:
    t = RuleTeacher({"judge_score": 7.5})
    result = run(t, judge=True)
    assert result.trace.judge.score == 7.5 and result.trace.judge.critique_validity is True
    judge_call = next(c for c in t.calls if c[0] == "judge")
    assert judge_call[2]["json_schema"]["properties"]["score"]["maximum"] == 10


def test_judge_repairs_invalid_json_then_gives_up() -> None:
    t = RuleTeacher()
    t.replies["judge"] = ["I think it is good.", '```json\n{"score": 6, "reasoning": "ok"}\n```']
    assert run(t, judge=True).trace.judge.score == 6
    t = RuleTeacher()
    t.replies["judge"] = ["nope", '{"score": 42}']
    with pytest.raises(PhaseFailed) as info:
        run(t, judge=True)
    assert info.value.phase == "judge" and "invalid verdict" in info.value.reason


def test_min_judge_score_retries_then_rejects() -> None:
    t = RuleTeacher({"judge_score": 3})
    with pytest.raises(PhaseFailed, match="score 3 below --min-judge-score 5"):
        run(t, judge=True, min_judge_score=5, judge_attempts=2)
    assert [c[0] for c in t.calls].count("thesis") == 2  # the whole dialectic was retried
    assert (
        run(RuleTeacher({"judge_score": 9}), judge=True, min_judge_score=5).trace.judge.score == 9
    )


def test_iterations_feed_the_synthesis_back() -> None:
    t = RuleTeacher()
    # Each round says something new: a synthesis that repeats its thesis is a copy.
    t.replies["synthesis"] = [f"Synthesis: mostly, {Q}, round {n}" for n in (1, 2, 3)]
    result = run(t, iterations=3)
    assert [c[0] for c in t.calls] == ["thesis", "antithesis", "synthesis"] + [
        "antithesis",
        "synthesis",
    ] * 2
    assert result.trace.iterations == 3
    assert result.trace.thesis.startswith(
        "Synthesis: mostly"
    )  # round 3's thesis is round 2's synthesis


@pytest.mark.parametrize(
    "bad", ["", "   ", "[Generated via CLI]", "[Synthesis generation failed: 500]"]
)
def test_a_phase_with_no_real_output_fails(bad: str) -> None:
    t = RuleTeacher()
    t.replies["synthesis"] = [bad]
    with pytest.raises(PhaseFailed) as info:
        run(t)
    assert info.value.phase == "synthesis" and "empty or placeholder" in info.value.reason


def test_teacher_error_without_a_retry_wrapper_fails_the_phase() -> None:
    t = RuleTeacher()
    t.failures[Q] = [TeacherError("HTTP 401", retryable=False)]
    with pytest.raises(PhaseFailed, match="thesis: teacher error: HTTP 401"):
        run(t)


def test_parse_verdict_bounds() -> None:
    with pytest.raises(ValueError):
        parse_verdict('{"score": -1}')
    assert parse_verdict('Verdict: {"score": 10, "strengths": ["a"]} end').strengths == ["a"]
