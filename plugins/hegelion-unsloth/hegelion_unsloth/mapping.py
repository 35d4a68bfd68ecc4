"""Hegelion's TrainConfig -> the keyword arguments of Unsloth's and TRL's calls.

Pure on purpose: no torch, no unsloth, no trl. ``import unsloth`` raises on a machine
without an accelerator, so every decision that does not need the GPU is made here,
where CI tests it, and the GPU side (`hegelion_unsloth._run`) only passes these
dicts on. The one translation left to the GPU side is the dtype name -> ``torch.dtype``.

Unsloth's defaults differ from Hegelion's (and PEFT's): ``get_peft_model`` defaults to
r=16, lora_alpha=16, lora_dropout=0, and ``from_pretrained`` to 4-bit. Hegelion keeps
one (r, alpha) in its config, so both are always passed explicitly.

GRPO is core's (`grpo_arguments`: the same ``GRPOConfig`` keys the trl trainer passes),
plus what keeps Unsloth's rewrite of ``GRPOConfig.__init__`` from changing the algorithm
(`unsloth_grpo_pins`), so one config trains the same GRPO on either trainer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hegelion_core import (
    DriverOptions,
    HegelionError,
    Method,
    TrainConfig,
    grpo_arguments,
    require_peft_adapter,
    require_trackers,
    tracker_run_name,
)

Quantization = Literal["4bit", "8bit", "none"]
DType = Literal["bfloat16", "float16"]
Checkpointing = bool | Literal["unsloth"]

#: What `hegelion train --merge` asks of ``save_pretrained_merged``: 16-bit weights
#: that transformers, vLLM and a GGUF converter read like any checkpoint.
MERGE_METHOD = "merged_16bit"

#: TRL's ``GRPOConfig.epsilon`` default: the clip range; TRL reads an unset ``epsilon_high``
#: as this (symmetric clipping), Unsloth's rewrite as 0.28 for ``loss_type: dapo``.
TRL_EPSILON = 0.2
#: Unsloth refuses a sampling temperature at or above this (its GRPOConfig rewrite).
UNSLOTH_MAX_TEMPERATURE = 10.0


class UnslothOptions(DriverOptions):
    """``-o key=value`` options of the ``unsloth`` trainer (everything else is TrainConfig)."""

    #: "auto": bfloat16 where the GPU has it (compute capability >= 8.0), else float16.
    #: ``training.bf16`` in the config, when set, decides "auto" instead.
    dtype: Literal["auto", "bfloat16", "float16"] = "auto"
    #: Unsloth's own offloaded checkpointing ("unsloth"), plain (true) or none (false).
    #: Unset: false if the config sets ``training.gradient_checkpointing: false``, else "unsloth".
    gradient_checkpointing: Checkpointing | None = None
    #: Rank-stabilised LoRA (scale alpha / sqrt(r) instead of alpha / r).
    use_rslora: bool = False
    #: Load the model exactly as named. By default Unsloth may swap a hub id for its
    #: own pre-quantized mirror (``unsloth/...-bnb-4bit``), which downloads less.
    exact_model_name: bool = False
    #: GRPO only: sample completions with vLLM inside the same process (Unsloth's
    #: ``fast_inference``; needs ``pip install vllm``). Off: TRL's own ``generate``.
    fast_inference: bool = False
    #: With fast_inference: the share of GPU memory vLLM's engine reserves.
    gpu_memory_utilization: float = Field(0.5, gt=0, lt=1)


class UnslothPlan(BaseModel):
    """Everything one Unsloth run passes to its calls, decided before touching the GPU."""

    model_config = ConfigDict(extra="forbid")

    method: Method
    quantization: Quantization
    dtype: DType
    load: dict[str, Any]  # FastLanguageModel.from_pretrained(**load); dtype as a name
    #: FastLanguageModel.get_peft_model(model, **peft); None when continuing ``init_adapter``,
    #: which ``from_pretrained`` loads trainable (base from its adapter_config.json).
    peft: dict[str, Any] | None
    args: dict[str, Any]  # trl.SFTConfig / DPOConfig / GRPOConfig(**args)
    resume_from: str | None  # trainer.train(resume_from_checkpoint=...)
    adapter_dir: Path
    merged_dir: (
        Path | None
    )  # save_pretrained_merged(merged_dir, tokenizer, save_method=MERGE_METHOD)


def quantization(config: TrainConfig) -> Quantization:
    """An explicit ``quantization`` wins; unset means 4-bit QLoRA, the reason to use Unsloth.

    TrainConfig's own default is "none" (right for TRL on CPU), so "unset" is read
    from the fields the user actually gave, not from the value.
    """
    if "quantization" in config.model_fields_set:
        return config.quantization
    return "4bit"


def resolve_dtype(config: TrainConfig, options: UnslothOptions, bf16_supported: bool) -> DType:
    """The compute dtype: Unsloth trains in 16 bits, so fp32 is never chosen."""
    want = options.dtype
    if want == "auto" and "bf16" in config.training.model_fields_set:
        want = "bfloat16" if config.training.bf16 else "float16"
    if want == "auto":
        return "bfloat16" if bf16_supported else "float16"
    if want == "bfloat16" and not bf16_supported:
        raise HegelionError(
            "bfloat16 was asked for (training.bf16 or -o dtype=bfloat16), but this GPU has no "
            "bfloat16 (compute capability below 8.0, e.g. T4 or V100): pass -o dtype=float16"
        )
    return want


def gradient_checkpointing(config: TrainConfig, options: UnslothOptions) -> Checkpointing:
    """Unsloth's checkpointing unless turned off: it is how QLoRA fits long sequences."""
    if options.gradient_checkpointing is not None:
        return options.gradient_checkpointing
    training = config.training
    if (
        "gradient_checkpointing" in training.model_fields_set
        and not training.gradient_checkpointing
    ):
        return False
    return "unsloth"


def _alpha(value: float) -> int | float:
    """PEFT types lora_alpha as int; keep 32 as 32 in adapter_config.json."""
    return int(value) if float(value).is_integer() else value


def from_pretrained_kwargs(
    config: TrainConfig, options: UnslothOptions, dtype: DType
) -> dict[str, Any]:
    """``FastLanguageModel.from_pretrained`` arguments. Exactly one load_in_* is true:
    Unsloth rejects two (its ``_precision_flags_conflict``)."""
    if not config.model:
        raise HegelionError("no model: pass --model or set `model:` in --config")
    quant = quantization(config)
    return {
        # Given an adapter directory, Unsloth loads the base that its adapter_config.json
        # names, then the adapter with is_trainable=True, and patches it for training.
        "model_name": str(config.init_adapter) if config.init_adapter is not None else config.model,
        "max_seq_length": config.training.max_seq_length,
        "dtype": dtype,
        "load_in_4bit": quant == "4bit",
        "load_in_8bit": quant == "8bit",
        "load_in_16bit": quant == "none",
        "full_finetuning": False,
        "use_gradient_checkpointing": gradient_checkpointing(config, options),
        "random_state": config.training.seed,
        "use_exact_model_name": options.exact_model_name,
        "fast_inference": options.fast_inference,
        # vLLM's engine is built for LoRA up to this rank, with this share of the GPU.
        **(
            {
                "max_lora_rank": config.lora.r,
                "gpu_memory_utilization": options.gpu_memory_utilization,
            }
            if options.fast_inference
            else {}
        ),
    }


def get_peft_model_kwargs(
    config: TrainConfig, options: UnslothOptions, output_dir: Path
) -> dict[str, Any]:
    """``FastLanguageModel.get_peft_model`` arguments: Hegelion's LoRA, always explicit."""
    lora = config.lora
    return {
        "r": lora.r,
        "lora_alpha": _alpha(lora.lora_alpha),
        "lora_dropout": lora.lora_dropout,
        "target_modules": lora.target_modules,
        "bias": "none",
        "use_gradient_checkpointing": gradient_checkpointing(config, options),
        "random_state": config.training.seed,
        "use_rslora": options.use_rslora,
        # Unsloth's default is a folder in the current directory; keep runs self-contained.
        "temporary_location": str(Path(output_dir) / "checkpoints" / "_unsloth_temporary"),
    }


def trainer_args(
    config: TrainConfig,
    options: UnslothOptions,
    output_dir: Path,
    dtype: DType,
    *,
    has_eval: bool = False,
) -> dict[str, Any]:
    """``trl.SFTConfig`` / ``DPOConfig`` / ``GRPOConfig`` arguments, for TRL <= 1.15 and
    transformers <= 5.17 (Unsloth's pins)."""
    t = config.training
    args: dict[str, Any] = {
        "output_dir": str(Path(output_dir) / "checkpoints"),
        "num_train_epochs": t.num_train_epochs,
        "max_steps": t.max_steps,
        "learning_rate": t.learning_rate,
        "per_device_train_batch_size": t.per_device_train_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "lr_scheduler_type": t.lr_scheduler_type,
        # transformers 5 has no warmup_ratio: a float in [0, 1) is read as a ratio.
        "warmup_steps": t.warmup_ratio,
        "optim": t.optim,
        "seed": t.seed,
        "logging_steps": t.logging_steps,
        "save_strategy": "steps",
        "save_steps": t.save_steps,
        "save_total_limit": t.save_total_limit,
        "bf16": dtype == "bfloat16",
        "fp16": dtype == "float16",
        # The model's own mode (get_peft_model's use_gradient_checkpointing) is what
        # Unsloth's trainer applies; this flag only has to agree with it.
        "gradient_checkpointing": gradient_checkpointing(config, options) is not False,
        "max_length": t.max_seq_length,
        "include_num_input_tokens_seen": "non_padding",  # tokens/s in the result
        # tracking: TRL's own callbacks; the variables they read are set on the GPU side.
        "report_to": list(config.tracking.report_to) or "none",
        "run_name": tracker_run_name(config.tracking, output_dir),
        **({"project": config.tracking.project} if config.tracking.project else {}),  # trackio
    }
    if has_eval:
        args.update(
            eval_strategy="steps",
            eval_steps=t.save_steps,
            per_device_eval_batch_size=t.per_device_train_batch_size,
        )
    if config.method == "sft":
        args.update(completion_only_loss=t.completion_only_loss, packing=t.packing)
    elif config.method == "grpo":
        del args["max_length"]  # GRPO cuts completions (grpo.max_completion_length), not prompts
        # GRPOTrainer counts prompt and completion tokens into num_input_tokens_seen itself;
        # the Trainer's own count looks for input_ids, which GRPO's batches do not have.
        args["include_num_input_tokens_seen"] = "no"
        args.update(grpo_arguments(config))
        args.update(unsloth_grpo_pins(config))
    else:
        args.update(beta=t.beta)
    return args


def unsloth_grpo_pins(config: TrainConfig) -> dict[str, Any]:
    """Values Unsloth's ``GRPOConfig`` rewrite would change when left to it, given as TRL
    reads them, so the run is the GRPO that ``--trainer trl`` runs for the same config.

    - ``loss_type: dapo`` given explicitly: Unsloth sets ``epsilon_high`` 0.28 (DAPO's
      clip-higher) unless one is given; TRL's unset value is ``epsilon``, 0.2. (It would
      also set ``mask_truncated_completions``, which `grpo_arguments` already gives.)
    - ``loss_type: dr_grpo``: Unsloth turns ``scale_rewards`` "group" into False, and reads
      None as "keep scaling" (True, which TRL reads as "group").
    """
    pins: dict[str, Any] = {"epsilon_high": TRL_EPSILON}
    if config.grpo.loss_type == "dr_grpo":
        pins["scale_rewards"] = None
    return pins


_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The newest complete ``checkpoint-N`` (it has trainer_state.json), by step number."""
    if not checkpoints.is_dir():
        return None
    found = []
    for child in checkpoints.iterdir():
        match = _CHECKPOINT.match(child.name)
        if match and (child / "trainer_state.json").is_file():
            found.append((int(match.group(1)), child))
    return max(found)[1] if found else None


def resume_from(config: TrainConfig, output_dir: Path) -> str | None:
    """Where ``--resume`` continues; None starts fresh (also when nothing was saved yet)."""
    if not config.resume:
        return None
    newest = latest_checkpoint(Path(output_dir) / "checkpoints")
    return str(newest) if newest else None


def check_supported(config: TrainConfig) -> None:
    """What this trainer cannot do, said before any GPU work starts."""
    if config.scu is not None:
        raise HegelionError(
            "the unsloth trainer has no SCU regularisation: drop --scu/`scu:`, or train SCU "
            "with --trainer mlx-scu (see `hegelion plugins` for the trainers installed)"
        )
    if config.num_processes > 1:
        raise HegelionError(
            f"the unsloth trainer runs on one GPU, not --num-processes {config.num_processes}: "
            "for several GPUs use --trainer trl --num-processes N"
        )
    if config.init_adapter is not None:
        require_peft_adapter(config.init_adapter)
    if config.method == "grpo":
        check_grpo(config)
    require_trackers(
        config.tracking.report_to, trainer="unsloth", extra="hegelion-unsloth[tracking]"
    )


def check_grpo(config: TrainConfig) -> None:
    """GRPO settings Unsloth cannot run, said before the GPU work starts."""
    g, t = config.grpo, config.training
    if g.temperature >= UNSLOTH_MAX_TEMPERATURE:
        raise HegelionError(
            f"grpo.temperature {g.temperature:g}: Unsloth samples GRPO completions at "
            f"temperatures below {UNSLOTH_MAX_TEMPERATURE:g} (it refuses higher ones as erratic); "
            "lower grpo.temperature (1.0 is TRL's default), or use --trainer trl"
        )
    if g.max_completion_length >= t.max_seq_length:
        raise HegelionError(
            f"grpo.max_completion_length {g.max_completion_length} leaves no room for the prompt "
            f"in training.max_seq_length {t.max_seq_length} (the longest sequence Unsloth loads "
            "the model for: prompt plus completion); raise training.max_seq_length or lower "
            "grpo.max_completion_length"
        )
    grpo_arguments(config)  # the batch rule: whole groups per step


def check_fast_inference(config: TrainConfig, options: UnslothOptions) -> None:
    """vLLM samples GRPO's completions; SFT and DPO sample nothing."""
    if options.fast_inference and config.method != "grpo":
        raise HegelionError(
            f"-o fast_inference=true samples GRPO's completions with vLLM; --method "
            f"{config.method} samples none: drop the option, or use it with --method grpo"
        )


def build_plan(
    config: TrainConfig,
    options: UnslothOptions,
    output_dir: Path,
    *,
    bf16_supported: bool,
    has_eval: bool = False,
) -> UnslothPlan:
    """The whole run's arguments from the config, the options and one GPU fact."""
    check_supported(config)
    check_fast_inference(config, options)
    output_dir = Path(output_dir)
    dtype = resolve_dtype(config, options, bf16_supported)
    return UnslothPlan(
        method=config.method,
        quantization=quantization(config),
        dtype=dtype,
        load=from_pretrained_kwargs(config, options, dtype),
        peft=None
        if config.init_adapter is not None
        else get_peft_model_kwargs(config, options, output_dir),
        args=trainer_args(config, options, output_dir, dtype, has_eval=has_eval),
        resume_from=resume_from(config, output_dir),
        adapter_dir=output_dir / "adapter",
        merged_dir=output_dir / "merged" if config.merge else None,
    )
