"""The rewards by dotted path, loaded the way axolotl's ``trl.reward_funcs`` loads them
(`GRPOStrategy.get_reward_func`: ``importlib.import_module`` of everything before the
last dot, ``getattr`` of the last part, and at least two parameters), then called with
TRL's exact argument shapes."""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable
from typing import Any

import pytest

import hegelion_core.rewards.judge as judge_module
from hegelion_core.errors import HegelionError
from hegelion_core.testing.scripted_server import ScriptedOpenAIServer
from tests.core.rewards_calls import TRLCall, chat
from tests.core.test_rewards import CLEAN, QUESTION, trace
from tests.core.test_rewards_judge import verdict

PATHS = {
    "hegelion_core.rewards.format_reward": "format",
    "hegelion_core.rewards.markers_reward": "markers",
    "hegelion_core.rewards.judge_reward": "judge",
    "hegelion_core.rewards.calibration_reward": "calibration",
    "hegelion_core.rewards.belief_revision_reward": "belief_revision",
}


def load(fqn: str) -> Callable[..., list[Any]]:
    """axolotl's loader, step by step."""
    module = importlib.import_module(".".join(fqn.split(".")[:-1]))
    func = getattr(module, fqn.split(".")[-1])
    assert len(inspect.signature(func).parameters) >= 2  # axolotl refuses fewer
    return func


@pytest.fixture(scope="module")
def trl() -> TRLCall:
    from transformers.trainer_callback import TrainerState

    return TRLCall(TrainerState(global_step=2))


@pytest.fixture
def fresh_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dotted-path judge is made from the environment on first call: start unmade."""
    monkeypatch.setattr(judge_module, "_default", None)
    for env in ("HEGELION_JUDGE_TEACHER", "HEGELION_JUDGE_MODEL", "HEGELION_JUDGE_OPTIONS"):
        monkeypatch.delenv(env, raising=False)


def test_every_reward_loads_by_dotted_path_under_the_name_trl_logs() -> None:
    from trl.trainer.utils import get_callable_name

    for fqn, name in PATHS.items():
        assert get_callable_name(load(fqn)) == name


def test_the_plain_rewards_by_dotted_path_take_trls_shapes(trl: TRLCall) -> None:
    rows = [{"prompt": QUESTION, "answer": "Paris", "aliases": [], "expected": 0.7}] * 2
    completions = [CLEAN + "\nAnswer: Paris\n[confidence: 0.70]", trace(close=False)]
    prompts = [QUESTION] * 2
    for shape in ((prompts, completions), chat(prompts, completions)):
        assert trl(load("hegelion_core.rewards.format_reward"), *shape, rows=rows) == [1.0, 0.5]
        assert trl(load("hegelion_core.rewards.markers_reward"), *shape, rows=rows) == [1.0, 1.0]
        calibration = trl(load("hegelion_core.rewards.calibration_reward"), *shape, rows=rows)
        assert calibration == pytest.approx([1 - 0.3**2, 0.0], abs=1e-12)
        revision = trl(load("hegelion_core.rewards.belief_revision_reward"), *shape, rows=rows)
        assert revision == pytest.approx([1.0, 0.0], abs=1e-12)


def test_the_judge_by_dotted_path_reads_its_teacher_from_the_environment(
    trl: TRLCall, monkeypatch: pytest.MonkeyPatch, fake_api_key: Any, fresh_judge: None
) -> None:
    fake_api_key("OPENAI_API_KEY")
    func = load("hegelion_core.rewards.judge_reward")
    with ScriptedOpenAIServer(reply=verdict) as srv:
        monkeypatch.setenv("HEGELION_JUDGE_TEACHER", "openai")
        monkeypatch.setenv("HEGELION_JUDGE_MODEL", "judge-model")
        monkeypatch.setenv("HEGELION_JUDGE_OPTIONS", json.dumps({"base_url": srv.base_url}))
        try:
            assert trl(func, *chat([QUESTION] * 2, [CLEAN, "No idea."])) == [0.9, 0.2]
            assert srv.completion_requests[0].body["model"] == "judge-model"
            assert judge_module.default_judge().stats.scored == 2
        finally:
            judge_module.default_judge().close()


def test_the_judge_by_dotted_path_without_a_teacher_says_how_to_name_one(
    trl: TRLCall, fresh_judge: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    func = load("hegelion_core.rewards.judge_reward")
    with pytest.raises(HegelionError, match="HEGELION_JUDGE_TEACHER") as info:
        trl(func, [QUESTION], [CLEAN])
    assert "fix:" in str(info.value)
    monkeypatch.setenv("HEGELION_JUDGE_TEACHER", "openai")
    monkeypatch.setenv("HEGELION_JUDGE_OPTIONS", "{base_url: nope")
    with pytest.raises(HegelionError, match="HEGELION_JUDGE_OPTIONS is not JSON"):
        trl(func, [QUESTION], [CLEAN])
