"""The environment's rubric scores a rollout exactly as hegelion_core.rewards scores the
same completion in TRL: hand-written completions through verifiers' own scoring path
(`Task.score` on a `Trace`), compared with the reward functions called directly."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import verifiers.v1 as vf
from hegelion_verifiers import HegelionHarness, HegelionTaskset
from hegelion_verifiers.taskset import CALIBRATION_SYSTEM, DIALECTIC_SYSTEM, HegelionConfig

from hegelion_core.errors import HegelionError, InputError
from hegelion_core.records import DialecticTrace, render_output
from hegelion_core.rewards import calibration_reward, format_reward, markers_reward

SOUND = render_output(
    DialecticTrace(
        thesis="Promises bind because others rely on them.",
        antithesis="Some promises should be broken.\nCONTRADICTION: A promise to do harm."
        "\nEVIDENCE: Courts void contracts for illegal acts.",
        synthesis="Keep promises unless keeping one wrongs someone more than breaking it."
        "\nRESEARCH_PROPOSAL: Survey how people judge broken promises.\n"
        "TESTABLE_PREDICTION: Breaking a promise to prevent harm is judged fair.",
        answer="Yes, when keeping it would do greater harm.",
    )
)
DIALECTIC_COMPLETIONS = [
    SOUND,  # 1.0 format, 1.0 markers
    SOUND.split("SYNTHESIS:")[0],  # cut inside the thought: thesis only
    "<thought>\nTHESIS:\n[placeholder]\n\nANTITHESIS:\nBut no.\n</thought>\nMaybe.",
    "I think promises matter a lot.",  # no dialectic at all
    "",
]


def _trace(task: vf.Task, completion: str, finish_reason: str = "stop") -> vf.Trace:
    data = task.data
    nodes = [
        {"message": {"role": "system", "content": data.system_prompt}},
        {"parent": 0, "message": {"role": "user", "content": data.prompt}},
        {"parent": 1, "message": {"role": "assistant", "content": completion}, "sampled": True},
    ]
    return vf.Trace.model_validate(
        {
            "task": {"type": type(task).__name__, "data": data.model_dump()},
            "agent": {"config": vf.AgentConfig().model_dump()},
            "nodes": nodes,
            "calls": [{"node": 2, "finish_reason": finish_reason}],
        }
    )


def _scores(task: vf.Task, trace: vf.Trace) -> dict[str, tuple[float, float]]:
    asyncio.run(task.score(trace))
    return {name: (r.score, r.weight) for name, r in trace.rewards.items() if r is not None}


def _prompt(task: vf.Task) -> list[dict[str, str]]:
    data = task.data
    return [
        {"role": "system", "content": data.system_prompt},
        {"role": "user", "content": data.prompt},
    ]


def _tasks(**config: object) -> list[vf.Task]:
    return list(HegelionTaskset(HegelionConfig(id="hegelion-verifiers", **config)))


def test_the_package_exports_what_verifiers_loads() -> None:
    """verifiers resolves the id to this package, and its taskset and harness to ours."""
    from verifiers.v1.utils.loaders import default_harness_id, harness_class, taskset_class

    assert taskset_class("hegelion-verifiers") is HegelionTaskset
    assert default_harness_id("hegelion-verifiers") == "hegelion-verifiers"
    assert harness_class("hegelion-verifiers") is HegelionHarness


@pytest.mark.parametrize("completion", DIALECTIC_COMPLETIONS)
def test_dialectic_rubric_scores_as_hegelion_rewards(completion: str) -> None:
    task = _tasks()[0]
    assert task.data.system_prompt == DIALECTIC_SYSTEM
    scores = _scores(task, _trace(task, completion))
    completions = [[{"role": "assistant", "content": completion}]]
    (fmt,) = format_reward(prompts=[_prompt(task)], completions=completions)
    (markers,) = markers_reward(prompts=[_prompt(task)], completions=completions)
    assert scores == {"format": (fmt, 1.0), "markers": (markers, 0.5)}


def test_the_hand_written_completions_span_the_range() -> None:
    """The cases above are not all zeros: the rubric's numbers are Hegelion's, high and low."""
    task = _tasks()[0]
    got = [_scores(task, _trace(task, c)) for c in DIALECTIC_COMPLETIONS]
    assert got[0] == {"format": (1.0, 1.0), "markers": (1.0, 0.5)}
    assert got[1]["format"][0] == 0.25
    assert got[3] == got[4] == {"format": (0.0, 1.0), "markers": (0.0, 0.5)}


def test_a_cut_rollout_scores_as_trl_scores_a_cut_completion() -> None:
    """finish_reason "length" is TRL's completion that used its whole budget: the sound
    trace loses the final answer's credit (a cut answer is never a finished one)."""
    task = _tasks()[0]
    scores = _scores(task, _trace(task, SOUND, finish_reason="length"))
    (cut,) = format_reward(
        prompts=[_prompt(task)],
        completions=[SOUND],
        completion_ids=[[1] * 64],
        max_completion_length=64,
    )
    assert scores["format"] == (cut, 1.0) == (0.75, 1.0)


CALIBRATION_ITEM = {"prompt": "What is 6 * 7?", "answer": "42", "aliases": ["forty-two"]}


@pytest.mark.parametrize(
    "completion",
    [
        "Answer: 42\nSix sevens.\n[confidence: 0.90]",
        "Answer: forty-two\n[confidence: 0.60]",
        "Answer: 41\nI guessed.\n[confidence: 0.80]",
        "Answer: 42",  # no confidence: the floor
    ],
)
def test_calibration_rubric_scores_as_hegelion_rewards(completion: str, tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps(CALIBRATION_ITEM) + "\n")
    task = _tasks(kind="calibration", prompts=items)[0]
    scores = _scores(task, _trace(task, completion))
    (expected,) = calibration_reward(
        prompts=[_prompt(task)], completions=[completion], answer=["42"], aliases=[["forty-two"]]
    )
    assert scores == {"calibration": (expected, 1.0)}
    assert expected is not None and 0.0 <= expected <= 1.0


def test_calibration_scores_differ_for_right_and_wrong(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps(CALIBRATION_ITEM) + "\n")
    task = _tasks(kind="calibration", prompts=items)[0]
    right = _scores(task, _trace(task, "Answer: 42\n[confidence: 0.90]"))["calibration"][0]
    wrong = _scores(task, _trace(task, "Answer: 41\n[confidence: 0.90]"))["calibration"][0]
    assert right == pytest.approx(1 - 0.1**2) and wrong == pytest.approx(1 - 0.9**2)


def test_calibration_items_come_with_their_answers() -> None:
    """From hegelion-simplex when installed, else the shipped six: each has an answer."""
    tasks = _tasks(kind="calibration", n=3)
    assert len(tasks) in (3, 6)
    assert all(t.data.answer for t in tasks)
    assert all("[confidence: 0.XX]" in (t.data.system_prompt or "") for t in tasks)


def test_the_calibration_instructions_are_simplex_own() -> None:
    simplex = pytest.importorskip("hegelion_simplex.calibration")
    assert simplex.SYSTEM == CALIBRATION_SYSTEM


def test_a_reward_plugged_where_it_does_not_apply_says_so() -> None:
    """calibration on a dialectic prompt (no answer column): Hegelion's clear error,
    raised through verifiers' scoring as its TaskError."""
    task = _tasks(
        task={"rewards": {"calibration": {"fn": "hegelion_verifiers.rubric:calibration_reward"}}}
    )[0]
    with pytest.raises(vf.TaskError) as err:
        asyncio.run(task.score(_trace(task, "Answer: yes\n[confidence: 0.5]")))
    cause = err.value.__cause__
    assert isinstance(cause, HegelionError) and "'answer'" in str(cause)


def test_own_prompts_with_a_bad_line_name_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "mine.jsonl"
    bad.write_text(json.dumps({"prompt": "ok?"}) + "\n" + json.dumps({"text": "no"}) + "\n")
    with pytest.raises(InputError) as err:
        _tasks(prompts=bad)
    assert f"{bad}:2: field 'prompt'" in str(err.value)
    no_answer = tmp_path / "items.jsonl"
    no_answer.write_text(json.dumps({"prompt": "2+2?"}) + "\n")
    with pytest.raises(InputError, match="items.jsonl:1: field 'answer'"):
        _tasks(kind="calibration", prompts=no_answer)


def test_the_rubric_follows_the_kind_unless_the_config_plugs_its_own() -> None:
    assert set(HegelionConfig().task.rewards) == {"format", "markers"}
    assert set(HegelionConfig(kind="calibration").task.rewards) == {"calibration"}
    own = HegelionConfig(
        task={"rewards": {"format": {"fn": "hegelion_verifiers.rubric:format_reward", "weight": 2}}}
    )
    assert set(own.task.rewards) == {"format"} and own.task.rewards["format"].weight == 2.0
