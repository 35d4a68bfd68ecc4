"""Hegelion's TrainConfig -> the keyword arguments of Unsloth's and TRL's calls.

Pure on purpose: no torch, no unsloth, no trl. ``import unsloth`` raises on a machine
without an accelerator, so every decision that does not need the GPU is made here,
where CI tests it, and the GPU side (`hegelion_unsloth._run`) only passes these
dicts on. The one translation left to the GPU side is the dtype name -> ``torch.dtype``.

Unsloth's defaults differ from Hegelion's (and PEFT's): ``get_peft_model`` defaults to
r=16, lora_alpha=16, lora_dropout=0, and ``from_pretrained`` to 4-bit. Hegelion keeps
one (r, alpha) in its config, so both are always passed explicitly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from hegelion_core import (
    DriverOptions,
    HegelionError,
    Method,
    TrainConfig,
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
    args: dict[str, Any]  # trl.SFTConfig(**args) or trl.DPOConfig(**args)
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
    """``trl.SFTConfig`` / ``trl.DPOConfig`` arguments, for TRL <= 1.15 and transformers <= 5.17
    (Unsloth's pins)."""
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
    else:
        args.update(beta=t.beta)
    return args


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
    require_trackers(
        config.tracking.report_to, trainer="unsloth", extra="hegelion-unsloth[tracking]"
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
