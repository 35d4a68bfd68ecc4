"""The rewards on hand-written completions, called as TRL calls them, in both of TRL's
shapes (plain text and conversational): exact values, and every degenerate shape
(placeholder, cut, looping, copied) below the clean trace."""

from __future__ import annotations

from typing import Any

import pytest

from hegelion_core.errors import HegelionError
from hegelion_core.rewards import (
    RewardSpec,
    belief_revision_reward,
    build_rewards,
    calibration_reward,
    format_reward,
    markers_reward,
)
from tests.core.rewards_calls import IDS, TRLCall, chat

QUESTION = "Should cities ban private cars from their centres?"

THESIS = (
    "Cities should ban private cars from their centres, because cars take most of the "
    "street space, pollute the air people breathe and make walking and cycling dangerous."
)
ANTITHESIS = (
    "CONTRADICTION: A ban hurts people who cannot walk far or who live where buses are rare.\n"
    "EVIDENCE: Disabled residents and night-shift workers depend on door-to-door trips."
)
SYNTHESIS = (
    "Restrict through traffic and parking in the centre, keep access for disabled drivers, "
    "deliveries and residents, and expand transit before the restrictions begin.\n"
    "RESEARCH_PROPOSAL: Compare footfall and air quality in cities that restricted cars.\n"
    "TESTABLE_PREDICTION: Central retail spending does not fall in the first two years."
)
ANSWER = "Restrict cars in the centre rather than ban them outright, with exemptions."


def trace(
    thesis: str = THESIS,
    antithesis: str = ANTITHESIS,
    synthesis: str = SYNTHESIS,
    answer: str = ANSWER,
    close: bool = True,
) -> str:
    """A completion in the canonical rendering (`render_output`), piece by piece."""
    body = f"<thought>\nTHESIS:\n{thesis}\n\nANTITHESIS:\n{antithesis}\n\nSYNTHESIS:\n{synthesis}"
    return body + (f"\n</thought>\n{answer}" if close else "")


CLEAN = trace()
LOOP = "the car the car " * 40


@pytest.fixture(scope="module")
def trl() -> TRLCall:
    from transformers.trainer_callback import TrainerState

    return TRLCall(TrainerState(global_step=3, max_steps=10))


def both_shapes(trl: TRLCall, func: Any, completions: list[str], **call: Any) -> list[Any]:
    """The rewards in TRL's plain shape, checked equal to the conversational shape's."""
    prompts = [QUESTION] * len(completions)
    plain = trl(func, prompts, completions, **call)
    assert trl(func, *chat(prompts, completions), **call) == plain
    return plain


# ----- format ------------------------------------------------------------------------


def test_format_gives_one_only_to_a_complete_trace_with_an_answer(trl: TRLCall) -> None:
    cases = {
        "clean": (CLEAN, 1.0),
        "no answer after </thought>": (trace(answer=""), 0.75),
        "placeholder answer": (trace(answer="N/A"), 0.75),
        "placeholder antithesis": (trace(antithesis="[placeholder]"), 0.75),
        "looping synthesis": (trace(synthesis=LOOP), 0.75),
        "copied antithesis": (trace(antithesis=THESIS), 0.75),
        "looping answer": (trace(answer=LOOP), 0.75),
        "cut in the synthesis (no </thought>)": (trace(close=False), 0.5),
        "cut in the antithesis": (CLEAN.split("\n\nSYNTHESIS")[0], 0.25),
        "thesis only, cut": (f"<thought>\nTHESIS:\n{THESIS}", 0.0),
        "no sections at all": (f"{THESIS}\n{ANSWER}", 0.0),
        "answer only": (f"</thought>\n{ANSWER}", 0.25),
        "empty": ("", 0.0),
        # what a tiny policy learns when labels alone pay: the trace's scaffolding spilled
        # into the sections and the answer, and one-word positions
        "label spam": (
            "THESIS:\nTHESIS:\nTHESIS:\nSYNTHESIS:\nSYNTHESIS:\n</thought>\nSYNTHESIS:\nno",
            0.0,
        ),
        "one-word sections": (trace(thesis="m.", antithesis="Not.", synthesis="x y"), 0.25),
        "answer holding a label": (trace(answer=f"SYNTHESIS: {ANSWER}"), 0.75),
    }
    got = both_shapes(trl, format_reward, [text for text, _ in cases.values()])
    assert dict(zip(cases, got)) == {name: want for name, (_, want) in cases.items()}


def test_format_credits_sections_only_in_order(trl: TRLCall) -> None:
    swapped = (
        f"<thought>\nTHESIS:\n{THESIS}\n\nSYNTHESIS:\n{SYNTHESIS}\n\n"
        f"ANTITHESIS:\n{ANTITHESIS}\n</thought>\n{ANSWER}"
    )
    # thesis, then antithesis; the synthesis came before the antithesis it resolves
    assert both_shapes(trl, format_reward, [swapped]) == [0.75]


def test_format_takes_a_completion_trl_cut_as_unfinished(trl: TRLCall) -> None:
    """TRL stops a completion at max_completion_length: its ids fill the budget. Its
    final answer is cut, whatever the text looks like."""
    funcs, _ = build_rewards({"format": RewardSpec()}, max_completion_length=len(IDS))
    cut = [IDS]  # used the whole budget of 4 tokens
    finished = [IDS[:3]]
    assert both_shapes(trl, funcs[0], [CLEAN], completion_ids=cut) == [0.75]
    assert both_shapes(trl, funcs[0], [CLEAN], completion_ids=finished) == [1.0]
    # without the budget the text alone decides
    assert both_shapes(trl, format_reward, [CLEAN], completion_ids=cut) == [1.0]


def test_format_reads_the_budget_from_the_environment_by_dotted_path(
    trl: TRLCall, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEGELION_MAX_COMPLETION_LENGTH", str(len(IDS)))
    assert both_shapes(trl, format_reward, [CLEAN], completion_ids=[IDS]) == [0.75]


def test_format_reads_content_parts_and_tool_turns() -> None:
    parts = [{"role": "assistant", "content": [{"type": "text", "text": CLEAN}]}]
    assert format_reward(prompts=[QUESTION], completions=[parts]) == [1.0]
    split = [
        {"role": "assistant", "content": CLEAN.split("</thought>")[0]},
        {"role": "tool", "content": "THESIS: not the model's"},
        {"role": "assistant", "content": "</thought>\n" + ANSWER},
    ]
    assert format_reward(prompts=[QUESTION], completions=[split]) == [1.0]


# ----- markers -----------------------------------------------------------------------


def test_markers_counts_each_marker_present_and_real(trl: TRLCall) -> None:
    cases = {
        "all four": (CLEAN, 1.0),
        "none": (trace(antithesis=THESIS[::-1], synthesis="Restrict cars, with care."), 0.0),
        "contradiction without evidence": (
            trace(antithesis="CONTRADICTION: It hurts the disabled.", synthesis="Restrict."),
            0.25,
        ),
        "placeholder evidence": (
            trace(antithesis="CONTRADICTION: It hurts the disabled.\nEVIDENCE: N/A"),
            0.75,
        ),
        "proposal and prediction only": (trace(antithesis="It hurts the disabled."), 0.5),
        "repeated markers earn nothing more": (CLEAN + "\n" + ANTITHESIS * 3, 1.0),
    }
    got = both_shapes(trl, markers_reward, [text for text, _ in cases.values()])
    assert dict(zip(cases, got)) == {name: want for name, (_, want) in cases.items()}


# ----- calibration and belief revision -------------------------------------------------


def test_calibration_is_one_minus_the_brier_score(trl: TRLCall) -> None:
    rows = [
        {"prompt": "Capital of France?", "answer": "Paris", "aliases": []},
        {"prompt": "Capital of France?", "answer": "Paris", "aliases": []},
        {"prompt": "Capital of France?", "answer": "Paris", "aliases": ["the City of Light"]},
        {"prompt": "Capital of France?", "answer": "Paris", "aliases": []},
        {"prompt": "Capital of France?", "answer": "Paris", "aliases": []},
        {"prompt": "Not a calibration item", "answer": None, "aliases": None},
    ]
    completions = [
        "Answer: Paris\nIt is the seat of government. [confidence: 0.80]",  # right, 0.8
        "Answer: Lyon\n[confidence: 0.80]",  # wrong, 0.8
        "Answer: City of Light\n[confidence: 0.90]",  # an alias, 0.9
        "Answer: unknown (best guess: Paris)\n[confidence: 0.30]",  # the guess is scored
        "Answer: Paris",  # no confidence: the floor
        "Answer: 42\n[confidence: 0.99]",  # no answer column value: not applicable
    ]
    got = both_shapes(trl, calibration_reward, completions, rows=rows)
    want = [1 - 0.2**2, 1 - 0.8**2, 1 - 0.1**2, 1 - 0.7**2, 0.0, None]
    assert got[:5] == pytest.approx(want[:5], abs=1e-12)
    assert got[5] is None
    assert got[:5] == pytest.approx([0.96, 0.36, 0.99, 0.51, 0.0], abs=1e-12)  # by hand


def test_belief_revision_is_the_brier_distance_to_the_expected_confidence(trl: TRLCall) -> None:
    rows = [{"expected": 0.7}, {"expected": 0.7}, {"expected": 0.2}, {"expected": None}]
    completions = [
        "The evidence is strong; I move up. [confidence: 0.70]",
        "[confidence: 0.40]",
        "I stay where I was.",  # no confidence
        "[confidence: 0.50]",
    ]
    got = both_shapes(trl, belief_revision_reward, completions, rows=rows)
    assert got[:3] == pytest.approx([1.0, 0.91, 0.0], abs=1e-12)
    assert got[3] is None


def test_a_missing_answer_column_is_an_error_naming_it(trl: TRLCall) -> None:
    with pytest.raises(HegelionError, match="column 'answer'") as info:
        trl(calibration_reward, [QUESTION], ["[confidence: 0.5]"], rows=[{"topic": "x"}])
    assert "topic" in str(info.value) and "fix:" in str(info.value)
    with pytest.raises(HegelionError, match="column 'expected'"):
        trl(belief_revision_reward, [QUESTION], ["[confidence: 0.5]"], rows=[{"prior": 0.4}])


# ----- build_rewards -----------------------------------------------------------------


def test_build_rewards_gives_functions_and_weights_in_one_order() -> None:
    specs = {
        "markers": RewardSpec.model_validate(0.5),
        "format": RewardSpec.model_validate(1),
        "calibration": RewardSpec(weight=2.0),
        "belief_revision": RewardSpec(weight=0.25),
    }
    funcs, weights = build_rewards(specs)
    from trl.trainer.utils import get_callable_name  # what names TRL's metrics

    names = [get_callable_name(f) for f in funcs]
    assert names == ["markers", "format", "calibration", "belief_revision"]
    assert weights == [0.5, 1.0, 2.0, 0.25]
    limited, _ = build_rewards({"format": RewardSpec()}, max_completion_length=64)
    assert get_callable_name(limited[0]) == "format" and limited[0].__name__ == "format"


def test_build_rewards_refuses_what_it_does_not_know() -> None:
    with pytest.raises(HegelionError) as info:
        build_rewards({"format": RewardSpec(), "fromat": RewardSpec()})
    message = str(info.value)
    assert "'fromat'" in message
    assert all(
        n in message for n in ("format", "markers", "judge", "calibration", "belief_revision")
    )
    with pytest.raises(HegelionError, match="needs a teacher") as info:
        build_rewards({"judge": RewardSpec(weight=0.5)})
    assert "fix:" in str(info.value) and "teacher: llama-cpp" in str(info.value)
    with pytest.raises(HegelionError, match="belong to the judge only"):
        build_rewards({"format": RewardSpec(teacher="openai")})
    with pytest.raises(HegelionError, match="belong to the judge only"):
        build_rewards({"markers": {"weight": 1.0, "rpm": 60}})
    with pytest.raises(HegelionError, match="empty"):
        build_rewards({})
