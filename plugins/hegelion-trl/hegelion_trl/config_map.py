"""Hegelion's `TrainConfig` translated into TRL's `SFTConfig` / `DPOConfig` / `GRPOConfig`.

One explicit function, `trl_arguments`, so every key that reaches TRL is visible,
reviewable and unit-tested. TRL's own defaults are not Hegelion's (TRL turns on
bf16 and gradient checkpointing; transformers 5 renamed the latter and dropped
``warmup_ratio``), so nothing is left to them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hegelion_core import (
    TrainConfig,
    apply_tracker_environment,
    grpo_arguments,
    require_trackers,
    tracker_run_name,
)

if TYPE_CHECKING:
    from trl import DPOConfig, GRPOConfig, SFTConfig

#: How the rows reach TRL, which decides how the loss is masked:
#: ``messages`` (chat rows, assistant-only loss through the template's generation markers),
#: ``prompt_completion`` (completion-only loss), ``text`` (whole-sequence loss),
#: ``preference`` (DPO pairs), ``prompt`` (GRPO: prompts only, completions sampled and scored).
Shape = Literal["messages", "prompt_completion", "text", "preference", "prompt"]


@dataclass(frozen=True)
class Device:
    """What the machine can do; a value, so the mapping is testable without a GPU."""

    cuda: bool
    bf16: bool

    @classmethod
    def detect(cls) -> Device:
        import torch

        cuda = torch.cuda.is_available()
        return cls(cuda=cuda, bf16=cuda and torch.cuda.is_bf16_supported())


def checkpoints_dir(output_dir: Path) -> Path:
    return Path(output_dir) / "checkpoints"


def trl_arguments(
    config: TrainConfig,
    output_dir: Path,
    *,
    device: Device,
    shape: Shape,
    has_eval: bool,
) -> dict[str, Any]:
    """Keyword arguments for `SFTConfig`, `DPOConfig` (``preference``) or `GRPOConfig`
    (``prompt``)."""
    t = config.training
    distributed = config.num_processes > 1
    args: dict[str, Any] = {
        "output_dir": str(checkpoints_dir(output_dir)),
        "num_train_epochs": t.num_train_epochs,
        "max_steps": t.max_steps,
        "learning_rate": t.learning_rate,
        "per_device_train_batch_size": t.per_device_train_batch_size,
        "per_device_eval_batch_size": t.per_device_train_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "lr_scheduler_type": t.lr_scheduler_type,
        # transformers 5 removed warmup_ratio: a float below 1 is a fraction of the steps.
        "warmup_steps": t.warmup_ratio,
        "optim": t.optim,
        "seed": t.seed,
        "data_seed": t.seed,
        "logging_strategy": "steps",
        "logging_steps": t.logging_steps,
        "save_strategy": "steps",
        "save_steps": t.save_steps,
        "save_total_limit": t.save_total_limit,
        # Evaluate at every save when there is a validation split.
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": t.save_steps if has_eval else None,
        # bf16 only where asked for and the GPU has it; never fp16 (no loss scaling games).
        "bf16": t.bf16 and device.bf16,
        "fp16": False,
        "use_cpu": not device.cuda,
        # transformers 5's name; TRL's default (True) would flow through the old alias.
        "activation_checkpointing": t.gradient_checkpointing,
        "max_length": t.max_seq_length,
        # tracking: TRL's own callbacks (the environment they read: build_trl_config).
        "report_to": list(config.tracking.report_to),
        "run_name": tracker_run_name(config.tracking, output_dir),
        **({"project": config.tracking.project} if config.tracking.project else {}),  # trackio
        "dataloader_num_workers": 0,
        # Every LoRA weight takes part in every step; searching for unused ones costs a pass.
        "ddp_find_unused_parameters": False if distributed else None,
        "ddp_backend": ("gloo" if not device.cuda else "nccl") if distributed else None,
    }
    if shape == "prompt":
        del args["max_length"]  # GRPO cuts completions (grpo.max_completion_length), not prompts
        args.update(grpo_arguments(config))
    elif shape == "preference":
        args["beta"] = t.beta
    else:
        args["packing"] = t.packing
        args["assistant_only_loss"] = shape == "messages" and t.completion_only_loss
        args["completion_only_loss"] = shape == "prompt_completion" and t.completion_only_loss
        args["dataset_text_field"] = "text"
    return args


def build_trl_config(
    config: TrainConfig, output_dir: Path, *, device: Device, shape: Shape, has_eval: bool
) -> SFTConfig | DPOConfig | GRPOConfig:
    """The TRL config object for ``config.method``."""
    from trl import DPOConfig, GRPOConfig, SFTConfig

    cls: type[Any] = (
        GRPOConfig if shape == "prompt" else DPOConfig if shape == "preference" else SFTConfig
    )
    kwargs = trl_arguments(config, output_dir, device=device, shape=shape, has_eval=has_eval)
    require_trackers(config.tracking.report_to, trainer="trl", extra="hegelion-trl[tracking]")
    apply_tracker_environment(config.tracking, output_dir)
    return cls(**for_installed_transformers(kwargs, {f.name for f in dataclasses.fields(cls)}))


def for_installed_transformers(kwargs: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    """Rename the arguments that older transformers 5 releases know by their old name.

    ``activation_checkpointing`` arrived in transformers 5.2x; before it (5.17 is what
    NVIDIA images ship today) the same switch is ``gradient_checkpointing``.
    """
    out = dict(kwargs)
    if "activation_checkpointing" in out and "activation_checkpointing" not in fields:
        out["gradient_checkpointing"] = out.pop("activation_checkpointing")
    return out
