"""Rewards for reinforcement learning on the dialectic (GRPO in TRL and Unsloth,
verifiers environments): see docs/rl.md.

Each reward function has TRL's signature, ``f(prompts, completions, **kwargs) -> list``,
and the ``__name__`` TRL logs it by (``rewards/format/mean``...). They import by dotted
path as they are (axolotl's ``trl.reward_funcs``)::

    hegelion_core.rewards.format_reward      # format
    hegelion_core.rewards.markers_reward     # markers
    hegelion_core.rewards.judge_reward       # judge (configured from HEGELION_JUDGE_*)
    hegelion_core.rewards.calibration_reward     # calibration
    hegelion_core.rewards.belief_revision_reward # belief_revision

Names load on first use, so the training config can import `RewardSpec` cheaply.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hegelion_core.rewards.config import RewardSpec

if TYPE_CHECKING:
    from hegelion_core.rewards.build import build_rewards
    from hegelion_core.rewards.format import format_reward, markers_reward
    from hegelion_core.rewards.judge import JudgeReward, JudgeStats, judge_reward
    from hegelion_core.rewards.scoring_rules import belief_revision_reward, calibration_reward

_HOMES = {
    "build_rewards": "hegelion_core.rewards.build",
    "format_reward": "hegelion_core.rewards.format",
    "markers_reward": "hegelion_core.rewards.format",
    "judge_reward": "hegelion_core.rewards.judge",
    "JudgeReward": "hegelion_core.rewards.judge",
    "JudgeStats": "hegelion_core.rewards.judge",
    "calibration_reward": "hegelion_core.rewards.scoring_rules",
    "belief_revision_reward": "hegelion_core.rewards.scoring_rules",
}

__all__ = [
    "JudgeReward",
    "JudgeStats",
    "RewardSpec",
    "belief_revision_reward",
    "build_rewards",
    "calibration_reward",
    "format_reward",
    "judge_reward",
    "markers_reward",
]


def __getattr__(name: str) -> Any:
    """Import a reward's module the first time its name is asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
