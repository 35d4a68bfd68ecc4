"""hegelion_core.training.grpo: GRPO as every TRL-based trainer (trl, unsloth) runs it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from hegelion_core import DEFAULT_SYSTEM, grpo_arguments, grpo_rewards, grpo_rows, reward_stats
from hegelion_core.errors import HegelionError
from hegelion_core.rewards.judge import JudgeStats
from hegelion_core.training.config import TrainConfig, load_train_config


def config(**overrides: Any) -> TrainConfig:
    return load_train_config(None, {"model": "m", "method": "grpo", **overrides})


def test_grpo_section_in_grpo_configs_names() -> None:
    args = grpo_arguments(
        config(
            **{
                "grpo.num_generations": 2,
                "grpo.max_completion_length": 99,
                "grpo.temperature": 0.5,
                "grpo.beta": 0.01,
                "grpo.loss_type": "bnpo",
                "grpo.rewards": {"markers": {"weight": 2.0}, "format": {"weight": 0.5}},
            }
        )
    )
    assert args == {
        "num_generations": 2,
        "max_completion_length": 99,
        "temperature": 0.5,
        "beta": 0.01,
        "loss_type": "bnpo",
        "reward_weights": [2.0, 0.5],
        "scale_rewards": "group",
        "mask_truncated_completions": False,
        "log_completions": False,
    }


@pytest.mark.parametrize(
    ("batch", "accumulation", "processes", "fits"),
    [(4, 1, 1, True), (2, 2, 1, True), (1, 1, 4, True), (6, 1, 1, False), (3, 1, 1, False)],
)
def test_a_step_holds_whole_groups(
    batch: int, accumulation: int, processes: int, fits: bool
) -> None:
    cfg = config(
        **{
            "training.per_device_train_batch_size": batch,
            "training.gradient_accumulation_steps": accumulation,
            "num_processes": processes,
        }
    )
    if fits:
        assert grpo_arguments(cfg)["num_generations"] == 4
    else:
        with pytest.raises(HegelionError, match=r"grpo.num_generations 4 must divide .* = \d+"):
            grpo_arguments(cfg)


def test_rewards_follow_the_configs_order_and_weights(tmp_path: Path) -> None:
    cfg = config(**{"grpo.rewards": {"markers": {"weight": 0.3}, "format": {"weight": 1.0}}})
    funcs, weights = grpo_rewards(cfg, tmp_path)
    assert [f.__name__ for f in funcs] == ["markers", "format"]
    assert weights == [0.3, 1.0] == grpo_arguments(cfg)["reward_weights"]


def test_the_format_reward_knows_the_runs_completion_limit(tmp_path: Path) -> None:
    """A completion of exactly max_completion_length tokens was cut: format gives it no
    credit for a final answer it never finished."""
    cfg = config(**{"grpo.max_completion_length": 3})
    (fmt,), _ = grpo_rewards(cfg, tmp_path)
    text = "<thought>\nTHESIS: We act.\nANTITHESIS: Causes rule.\nSYNTHESIS: Both hold.\n</thought>\n\nThe answer."
    whole, cut = fmt(completions=[text, text], completion_ids=[[1, 2], [1, 2, 3]])
    assert whole > cut


def test_reward_stats_are_the_rewards_own_counters() -> None:
    class Judge:
        __name__ = "judge"
        stats = JudgeStats(calls=5, scored=3, cached=1, retried=2, failed=Counter(http_500=1))

    def format_reward(**_: Any) -> list[float]:
        return []

    stats = reward_stats([format_reward, Judge()])
    assert stats["judge/total/calls"] == 5.0 and stats["judge/total/scored"] == 3.0
    assert stats["judge/total/failed"] == 1.0 and stats["judge/total/failed/http_500"] == 1.0
    assert not [k for k in stats if not k.startswith("judge/total/")], "format keeps none"


def test_prompt_rows_in_and_out_of_the_chat_template(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text("Is it so?\n")
    assert grpo_rows(path, chat_template=True) == [
        {
            "prompt": [
                {"role": "system", "content": DEFAULT_SYSTEM},
                {"role": "user", "content": "Is it so?"},
            ]
        }
    ]
    assert grpo_rows(path, chat_template=False) == [{"prompt": "Is it so?\n\n"}]
    assert grpo_rows(path, split="valid", chat_template=True) == []
