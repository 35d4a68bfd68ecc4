"""GRPO as every trainer that runs TRL's ``GRPOTrainer`` runs it (trl, unsloth): the
``grpo:`` section in `GRPOConfig`'s names, the reward functions, their counters as
metrics, and the prompt rows.

One home, so a config trains the same algorithm whichever trainer runs it; a trainer
adds only what its library needs on top (Unsloth's config rewrite: `hegelion_unsloth`).
Pure: no torch, trl or datasets here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hegelion_core.errors import HegelionError

if TYPE_CHECKING:
    from hegelion_core.training.config import TrainConfig

#: The judge's verdict cache, under the run's output directory.
JUDGE_CACHE = "judge-cache"


def grpo_arguments(config: TrainConfig) -> dict[str, Any]:
    """The ``grpo:`` section in `GRPOConfig`'s names, and the batch rule TRL checks later
    (each generation batch holds whole groups of ``num_generations`` completions)."""
    g, t = config.grpo, config.training
    batch = t.per_device_train_batch_size * t.gradient_accumulation_steps * config.num_processes
    if batch % g.num_generations:
        raise HegelionError(
            f"grpo.num_generations {g.num_generations} must divide the completions per step, "
            f"training.per_device_train_batch_size x gradient_accumulation_steps x processes = "
            f"{batch}: GRPO compares each prompt's completions with each other, so a step holds "
            f"whole groups. Set training.per_device_train_batch_size to a multiple of "
            f"{g.num_generations} (it counts completions, not prompts)"
        )
    return {
        "num_generations": g.num_generations,
        "max_completion_length": g.max_completion_length,
        "temperature": g.temperature,
        "beta": g.beta,
        "loss_type": g.loss_type,
        # The order of grpo.rewards, which build_rewards keeps for the functions.
        "reward_weights": [spec.weight for spec in g.rewards.values()],
        "scale_rewards": "group",
        "mask_truncated_completions": False,  # a cut completion is scored (format: no answer)
        "log_completions": False,
    }


def grpo_rewards(config: TrainConfig, output_dir: Path) -> tuple[list[Any], list[float]]:
    """``grpo.rewards`` as TRL reward functions, in the config's order; the judge keeps
    its verdicts under the output directory, so a resumed run pays for none twice."""
    from hegelion_core.rewards.build import build_rewards

    funcs, weights = build_rewards(
        config.grpo.rewards,
        cache_dir=Path(output_dir) / JUDGE_CACHE,
        max_completion_length=config.grpo.max_completion_length,
    )
    expected = [spec.weight for spec in config.grpo.rewards.values()]
    if weights != expected:  # grpo_arguments gave these to GRPOConfig: one order for both
        raise HegelionError(f"reward weights {weights} do not follow grpo.rewards {expected}")
    return funcs, weights


def reward_stats(funcs: list[Any]) -> dict[str, float]:
    """Counters a reward keeps about itself (the judge's calls, cache hits and failures)
    since the run started, as ``<reward>/total/<counter>`` metrics (the judge's per-step
    counts are its own ``judge/calls``...); nothing for a reward without ``stats``."""
    out: dict[str, float] = {}
    for func in funcs:
        stats = getattr(func, "stats", None)
        if stats is None:
            continue
        items = stats.as_metrics() if hasattr(stats, "as_metrics") else stats
        if hasattr(items, "model_dump"):
            items = items.model_dump()
        if not isinstance(items, dict):
            items = dict(vars(items))
        name = getattr(func, "__name__", type(func).__name__)
        for key, value in _flatten(items):
            out[f"{name}/total/{key}"] = float(value)
    return out


def _flatten(items: dict[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for key, value in items.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out.append((f"{prefix}{key}", float(value)))
        elif isinstance(value, dict):
            out += _flatten(value, f"{prefix}{key}/")
    return out


def grpo_rows(data: Path, *, split: str = "train", chat_template: bool) -> list[dict[str, Any]]:
    """The ``prompt`` rows of ``split`` (`grpo_prompts`: the system and user turns the
    SFT rows hold, other columns kept for the rewards). TRL renders them through the
    tokenizer's chat template with the generation prompt; a tokenizer without one gets
    the plain ``"{user}\\n\\n"`` prompt that SFT's plain rows use."""
    from hegelion_core.training.data import grpo_prompts

    rows = grpo_prompts(data, split=split)
    if chat_template:
        return rows
    return [{**r, "prompt": _plain(r["prompt"])} for r in rows]


def _plain(messages: list[dict[str, str]]) -> str:
    users = [m["content"] for m in messages if m.get("role") == "user"]
    return f"{users[-1]}\n\n"
