"""The reward functions and weights a GRPO run's config names, in one order::

funcs, weights = build_rewards(config.grpo.rewards, cache_dir=out / "judge-cache")
GRPOTrainer(..., reward_funcs=funcs, args=GRPOConfig(..., reward_weights=weights))
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hegelion_core.errors import HegelionError
from hegelion_core.rewards.config import RewardSpec
from hegelion_core.rewards.format import format_reward, markers_reward
from hegelion_core.rewards.scoring_rules import belief_revision_reward, calibration_reward

RewardFunc = Callable[..., list[Any]]

#: Every reward by the name a config gives it (and TRL logs it under).
KNOWN: tuple[str, ...] = ("format", "markers", "judge", "calibration", "belief_revision")
_PLAIN: dict[str, RewardFunc] = {
    "format": format_reward,
    "markers": markers_reward,
    "calibration": calibration_reward,
    "belief_revision": belief_revision_reward,
}
_JUDGE_FIELDS = ("teacher", "model", "options")
_JUDGE_EXAMPLE = (
    "judge: {weight: 0.5, teacher: llama-cpp, options: {base_url: http://127.0.0.1:8080/v1}}"
)


def build_rewards(
    specs: Mapping[str, RewardSpec | Any],
    *,
    cache_dir: Path | None = None,
    max_completion_length: int | None = None,
) -> tuple[list[RewardFunc], list[float]]:
    """``(functions, weights)`` for the rewards in ``specs`` (``grpo.rewards``).

    ``cache_dir``: where the judge keeps its verdicts (a resumed run pays none twice).
    ``max_completion_length``: the run's, so ``format`` can tell a cut completion."""
    if not specs:
        raise HegelionError(f"grpo.rewards is empty: name at least one reward ({', '.join(KNOWN)})")
    funcs: list[RewardFunc] = []
    weights: list[float] = []
    for name, raw in specs.items():
        spec = raw if isinstance(raw, RewardSpec) else RewardSpec.model_validate(raw)
        funcs.append(_one(name, spec, cache_dir, max_completion_length))
        weights.append(spec.weight)
    return funcs, weights


def _one(
    name: str, spec: RewardSpec, cache_dir: Path | None, max_completion_length: int | None
) -> RewardFunc:
    if name not in KNOWN:
        raise HegelionError(
            f"grpo.rewards: unknown reward {name!r}; the known ones are {', '.join(KNOWN)}"
        )
    if name == "judge":
        if not spec.teacher:
            raise HegelionError(
                "grpo.rewards.judge: the judge needs a teacher to ask\n  fix: name an "
                f"installed teacher (see `hegelion plugins`), e.g. {_JUDGE_EXAMPLE}"
            )
        from hegelion_core.rewards.judge import JudgeReward

        return JudgeReward.from_spec(spec, cache_dir=cache_dir)
    given = [f for f in _JUDGE_FIELDS if getattr(spec, f)] + sorted(
        f for f in RewardSpec.judge_settings() if f in spec.model_fields_set
    )
    if given:
        raise HegelionError(
            f"grpo.rewards.{name}: {', '.join(given)} belong to the judge only; "
            f"{name} takes a weight"
        )
    func = _PLAIN[name]
    if name == "format" and max_completion_length:
        configured = functools.partial(func, max_completion_length=max_completion_length)
        configured.__name__ = func.__name__  # type: ignore[attr-defined]  # TRL logs by it
        return configured
    return func
