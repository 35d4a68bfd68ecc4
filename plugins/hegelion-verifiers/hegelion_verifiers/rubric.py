"""Hegelion's rewards as verifiers rewards: the one adapter between the two signatures.

A verifiers 0.4 reward is an async ``(task, trace) -> float`` plugged into a task by name
and weight (``TaskConfig.rewards``: ``{"format": {"fn": ..., "weight": 1.0}}``). A
Hegelion reward has TRL's signature, ``f(prompts, completions, **columns) -> list``.
`hegelion_reward` calls the very function a GRPO run trains with (`build_rewards`, as
``grpo.rewards`` builds it) on a batch of one: the task's system and user messages as
the prompt, the model's assistant messages as the completion, and the task's answer
columns; so a rollout scores here exactly as the same completion scores in TRL.

The functions below are what the environment's rubric plugs, by these dotted paths::

    hegelion_verifiers.rubric:format_reward           # format, in [0, 1]
    hegelion_verifiers.rubric:markers_reward          # markers, in [0, 1]
    hegelion_verifiers.rubric:calibration_reward      # calibration, in [0, 1]

Each range and meaning: docs/rl.md (Rewards).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import verifiers.v1 as vf
from verifiers.v1.types import content_text

from hegelion_core import HegelionError, build_rewards

#: What TRL passes for a completion it cut at its length limit: ids that fill the whole
#: budget. verifiers knows a cut rollout by its finish reason ("length") instead, so a
#: cut rollout is handed to Hegelion's rewards in TRL's terms (one id, a budget of one).
CUT = {"completion_ids": [[0]], "max_completion_length": 1}

#: The task-data fields that are dataset columns for Hegelion's rewards.
COLUMNS = ("answer", "aliases")

VerifiersReward = Callable[[vf.TaskData, vf.Trace], Awaitable[float]]


def messages_of(task: vf.TaskData) -> list[dict[str, str]]:
    """The task's prompt as chat messages (TRL's conversational prompt)."""
    messages = [{"role": "system", "content": task.system_prompt}] if task.system_prompt else []
    if isinstance(task.prompt, str):
        messages.append({"role": "user", "content": task.prompt})
    else:
        messages += [
            {"role": m.role, "content": content_text(m.content)} for m in task.prompt or []
        ]
    return messages


def completion_of(trace: vf.Trace) -> list[dict[str, str]]:
    """The model's replies in the rollout (TRL's conversational completion)."""
    return [{"role": "assistant", "content": m.content or ""} for m in trace.assistant_messages]


def columns_of(task: vf.TaskData) -> dict[str, list[Any]]:
    """The task's answer columns, as a batch of one; a field the task does not set is
    absent, so a reward that needs it says which column is missing."""
    data = task.model_dump()
    return {name: [data[name]] for name in COLUMNS if data.get(name) is not None}


def hegelion_reward(name: str) -> VerifiersReward:
    """Hegelion's reward ``name`` (``format``, ``markers``, ``calibration``) as a
    verifiers reward. (``judge`` needs a teacher, which ``grpo.rewards`` configures;
    ``belief_revision`` needs belief-revision items, which this taskset does not load.)"""
    (func,), _weights = build_rewards({name: 1.0})  # the weight is verifiers' to apply

    async def reward(task: vf.TaskData, trace: vf.Trace) -> float:
        kwargs: dict[str, Any] = {**columns_of(task), **(CUT if trace.is_truncated else {})}
        (value,) = await asyncio.to_thread(
            func, prompts=[messages_of(task)], completions=[completion_of(trace)], **kwargs
        )
        if value is None:
            raise HegelionError(
                f"the {name} reward does not apply to task {task.id or task.idx}: it has no "
                f"{' or '.join(COLUMNS)}\n  fix: plug {name} only into tasks that have them"
            )
        return float(value)

    reward.__name__ = name
    reward.__qualname__ = name
    return reward


format_reward = hegelion_reward("format")
markers_reward = hegelion_reward("markers")
calibration_reward = hegelion_reward("calibration")

#: Each reward's dotted path, by the name the rubric (and TRL) gives it.
PATHS = {
    "format": "hegelion_verifiers.rubric:format_reward",
    "markers": "hegelion_verifiers.rubric:markers_reward",
    "calibration": "hegelion_verifiers.rubric:calibration_reward",
}
