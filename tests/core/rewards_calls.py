"""Calling a reward function exactly as TRL 1.16's ``GRPOTrainer._calculate_rewards``
does: keyword arguments ``prompts``, ``completions``, ``completion_ids``, every dataset
column but ``prompt``/``completion``/``completion_ids`` as a list, ``trainer_state``,
``log_extra`` and ``log_metric``; and the two shapes of prompts and completions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

#: A stand-in for TRL's token ids: only their count matters to the rewards.
IDS = [101, 102, 103, 2]


def chat(prompts: Sequence[str], completions: Sequence[str]) -> tuple[list, list]:
    """TRL's conversational shapes: prompts as message lists, each completion one
    assistant message (what ``batch_decode`` without ``parse_response`` gives)."""
    return (
        [
            [{"role": "system", "content": "Reason."}, {"role": "user", "content": p}]
            for p in prompts
        ],
        [[{"role": "assistant", "content": c}] for c in completions],
    )


class TRLCall:
    """One call's ``trainer_state`` and what the reward logged through TRL's hooks."""

    def __init__(self, trainer_state: Any = None) -> None:
        self.trainer_state = trainer_state
        self.metrics: dict[str, list[float]] = defaultdict(list)
        self.extra: dict[str, list[Any]] = {}

    def __call__(
        self,
        func: Callable[..., list[Any]],
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Sequence[int]] | None = None,
        rows: Sequence[dict[str, Any]] | None = None,
    ) -> list[Any]:
        """``func`` called as TRL calls it; ``rows`` are the dataset rows (``inputs``)."""
        rows = rows or [{} for _ in completions]
        keys = [k for k in rows[0] if k not in ("prompt", "completion", "completion_ids")]
        reward_kwargs: dict[str, Any] = {k: [row[k] for row in rows] for k in keys}
        reward_kwargs["trainer_state"] = self.trainer_state
        reward_kwargs["log_extra"] = self.extra.__setitem__
        reward_kwargs["log_metric"] = lambda name, value: self.metrics[name].append(value)
        ids = completion_ids if completion_ids is not None else [IDS] * len(completions)
        out = func(prompts=prompts, completions=completions, completion_ids=ids, **reward_kwargs)
        assert len(out) == len(prompts)
        return out
