"""One training run in this process (or in each process of an accelerate launch).

Imports torch, transformers, TRL and PEFT at the top: only the ``trl`` driver's
``train`` reaches this module, so ``hegelion plugins`` stays light.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import peft
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from transformers.trainer_callback import ExportableState
from trl import DPOTrainer, GRPOTrainer, SFTTrainer

from hegelion_core import (
    HegelionError,
    MetricsLog,
    SCUConfig,
    SCUController,
    TrainConfig,
    TrainResult,
    finish_tracker_runs,
    grpo_rewards,
    require_peft_adapter,
    reward_stats,
)
from hegelion_trl.checkpoints import read_trainer_state
from hegelion_trl.config_map import Device, build_trl_config
from hegelion_trl.data import Prepared, prepare
from hegelion_trl.grpo import prepare_grpo
from hegelion_trl.lm_head import score_with_full_logits
from hegelion_trl.scu import SCURegularizer, lora_weights
from hegelion_trl.trainer import scu_refusal

CALLBACK_NAME = "HegelionCallback"
VERSIONED = ("torch", "transformers", "trl", "peft", "accelerate", "datasets")


# ----- the loss ------------------------------------------------------------------------


class _HegelionLoss:
    """Counts trained tokens and, with SCU, adds the penalty to the loss tensor."""

    hegelion_scu: SCURegularizer | None = None
    # Set by the TRL trainer this class is mixed into (HegelionSFTTrainer, ...).
    args: Any  # its TrainingArguments
    accelerator: Any
    _hegelion_tokens: torch.Tensor | None = None
    _hegelion_weights: list[torch.nn.Parameter] | None = None

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        training = model.training
        if training:
            self._count_tokens(inputs)
        result = super().compute_loss(  # type: ignore[misc]  # a mixin: super() is TRL's trainer
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )
        if self.hegelion_scu is None or not training:
            return result
        loss, outputs = result if return_outputs else (result, None)
        if self._hegelion_weights is None:
            self._hegelion_weights = lora_weights(model)
        loss = self.hegelion_scu.add_penalty(
            loss,
            self._hegelion_weights,
            micro_steps=getattr(
                self, "current_gradient_accumulation_steps", self.args.gradient_accumulation_steps
            ),
            loss_is_step_share=self._loss_is_step_share(num_items_in_batch),
        )
        return (loss, outputs) if return_outputs else loss

    def _loss_is_step_share(self, num_items_in_batch: Any) -> bool:
        """Transformers' own rule (Trainer.training_step) for "already divided by the
        step's token count", so the penalty is counted once per optimizer step."""
        fixed = getattr(self, "loss_is_scaled_for_ga", None)
        if fixed is not None:
            return bool(fixed)
        return bool(
            (getattr(self, "model_accepts_loss_kwargs", False) and num_items_in_batch is not None)
            or getattr(self, "compute_loss_func", None) is not None
        )

    def _count_tokens(self, inputs: dict[str, Any]) -> None:
        mask = inputs.get("attention_mask")
        if mask is not None:
            n = mask.detach().sum()
        else:
            ids = inputs.get("input_ids", inputs.get("position_ids"))
            n = torch.tensor(ids.numel() if ids is not None else 0)
        self._hegelion_tokens = n if self._hegelion_tokens is None else self._hegelion_tokens + n

    def trained_tokens(self) -> int:
        """Tokens this run fed forward, summed over every process."""
        local = self._hegelion_tokens if self._hegelion_tokens is not None else torch.tensor(0)
        local = local.to(self.accelerator.device)
        return int(self.accelerator.reduce(local, reduction="sum").item())

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """SCU's S and λ join the step's row here, so metrics.jsonl and TRL's tracker
        callbacks (tracking.report_to) get the same row."""
        if self.hegelion_scu is not None and "loss" in logs:
            logs = {**logs, **self.hegelion_scu.metrics()}
        super().log(logs, start_time)  # type: ignore[misc]  # a mixin: super() is TRL's trainer


class HegelionSFTTrainer(_HegelionLoss, SFTTrainer):
    """TRL's SFTTrainer with Hegelion's token count and SCU penalty."""


class HegelionDPOTrainer(_HegelionLoss, DPOTrainer):
    """TRL's DPOTrainer with Hegelion's token count."""


class HegelionGRPOTrainer(_HegelionLoss, GRPOTrainer):
    """TRL's GRPOTrainer with Hegelion's token count (prompt and completion tokens of each
    scored batch) and each reward's own counters (the judge's failures) in every log row.
    SCU is refused for GRPO before this class is built (`scu_refusal`)."""

    def _count_tokens(self, inputs: dict[str, Any]) -> None:
        n = inputs["prompt_mask"].detach().sum() + inputs["completion_mask"].detach().sum()
        self._hegelion_tokens = n if self._hegelion_tokens is None else self._hegelion_tokens + n

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "train_runtime" not in logs:
            logs = {**logs, **reward_stats(self.reward_funcs)}
        super().log(logs, start_time)


# ----- metrics and SCU steps ------------------------------------------------------------


class HegelionCallback(TrainerCallback, ExportableState):
    """Per-step metrics to ``metrics.jsonl`` (rank 0), λ updated after every optimizer
    step, and the SCU state saved inside each checkpoint's ``trainer_state.json``
    (written last, so a checkpoint that has it is complete)."""

    def __init__(
        self,
        metrics: MetricsLog | None = None,
        scu: SCURegularizer | None = None,
        reduce: Any = None,
    ) -> None:
        self.metrics = metrics
        self.scu = scu
        self.reduce = reduce

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.scu is None:
            return
        self.scu.end_step(self.reduce)
        if not control.should_log:  # else the trainer's log() adds them to the step's row
            self._write(state, self.scu.metrics())

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if not logs or "train_runtime" in logs:  # the end-of-run summary goes to TrainResult
            return
        row = {
            ("lr" if k == "learning_rate" else k): v
            for k, v in logs.items()
            if isinstance(v, (int, float))
        }
        self._write(state, row)

    def _write(self, state: Any, row: dict[str, float]) -> None:
        if self.metrics is not None and state.is_world_process_zero:
            self.metrics.log(state.global_step, row)

    def state(self) -> dict[str, Any]:
        return {"args": {}, "attributes": {"scu": self.scu.state_dict() if self.scu else None}}


def saved_scu_state(checkpoint: Path) -> dict[str, Any] | None:
    state = read_trainer_state(checkpoint) or {}
    saved = (state.get("stateful_callbacks") or {}).get(CALLBACK_NAME)
    if isinstance(saved, list):
        saved = saved[-1] if saved else None
    return ((saved or {}).get("attributes") or {}).get("scu")


# ----- model ---------------------------------------------------------------------------


def quantization_config(quantization: str, device: Device, quant_type: str = "nf4") -> Any:
    """bitsandbytes' config for QLoRA, or a clear error where it cannot run."""
    if quantization == "none":
        return None
    if not device.cuda:
        raise HegelionError(
            f"quantization: {quantization} (QLoRA through bitsandbytes) needs an NVIDIA GPU, and "
            "this machine has no CUDA device. Train LoRA on the unquantized model instead "
            "(quantization: none, the default), or on a Mac use --trainer mlx."
        )
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant_type,
        bnb_4bit_compute_dtype=torch.bfloat16 if device.bf16 else torch.float16,
        bnb_4bit_use_double_quant=True,
    )


def require_bitsandbytes() -> None:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise HegelionError("QLoRA needs bitsandbytes: pip install 'hegelion-trl[qlora]'") from None


def load_model(
    config: TrainConfig, device: Device, *, bf16: bool, quant: Any, attn_implementation: str | None
) -> Any:
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if bf16 else torch.float32}
    if quant is not None:
        require_bitsandbytes()
        from accelerate import PartialState

        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": PartialState().local_process_index}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    return AutoModelForCausalLM.from_pretrained(config.model, **kwargs)


def continue_adapter(model: Any, adapter_dir: Path) -> Any:
    """The base with an earlier run's LoRA loaded trainable (its r, alpha and targets win)."""
    require_peft_adapter(adapter_dir)
    try:
        return peft.PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise HegelionError(
            f"init_adapter: {adapter_dir} does not fit this base model ({exc}); continue from an "
            "adapter trained on the same base"
        ) from None


def merge_adapter(base: str, adapter_dir: Path, merged_dir: Path, *, dtype: torch.dtype) -> Path:
    """Fold the adapter into a fresh full-precision copy of the base (never into a
    4-bit one) and save it as safetensors with the tokenizer and its chat template."""
    from hegelion_core import atomic_output, listed_beside

    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    merged = peft.PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    # An earlier version's merged/ (no mark) is recognised by the run's train manifest.
    with atomic_output(
        merged_dir, directory=True, earlier=listed_beside("train"), inputs=[adapter_dir]
    ) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return merged_dir


# ----- the run -------------------------------------------------------------------------


def trainable_tokens(dataset: Any) -> int:
    """Tokens that carry loss in one epoch: SCU's N."""
    total = 0
    for batch in dataset.select_columns(["labels"]).iter(batch_size=1024):
        total += sum(sum(1 for t in labels if t != -100) for labels in batch["labels"])
    return total


def versions(*extra: str) -> dict[str, str]:
    out = {}
    for name in (*VERSIONED, *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def note(message: str) -> None:
    if is_rank_zero():
        print(f"hegelion-trl: {message}", file=sys.stderr)


@dataclass
class Built:
    """A ready TRL trainer and what the run reports about it."""

    trainer: Any
    prepared: Prepared
    device: Device
    quantized: bool
    scu: SCURegularizer | None


def build_trainer(
    data: Path,
    output_dir: Path,
    config: TrainConfig,
    *,
    resume_from: Path | None = None,
    attn_implementation: str | None = None,
    bnb_4bit_quant_type: str = "nf4",
    device: Device | None = None,
) -> Built:
    """The TRL trainer for ``config``, with Hegelion's callback (and SCU) attached."""
    if config.model is None:
        raise HegelionError("no model: set `model:` in the config or pass --model")
    if config.scu is not None and config.method != "sft":
        raise HegelionError(scu_refusal(config.method))
    device = device or Device.detect()
    if config.training.bf16 and not device.bf16:
        note("training.bf16 is set but this device has no bf16 support; training in float32")
    quant = quantization_config(config.quantization, device, bnb_4bit_quant_type)

    tokenizer = AutoTokenizer.from_pretrained(config.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if config.method == "grpo":
        prepared = prepare_grpo(data, tokenizer)
    else:
        prepared = prepare(data, tokenizer, completion_only=config.training.completion_only_loss)
    # The TRL config exists before the model loads (DeepSpeed ZeRO-3 needs that order).
    args = build_trl_config(
        config, output_dir, device=device, shape=prepared.shape, has_eval=prepared.eval is not None
    )
    model = load_model(
        config, device, bf16=bool(args.bf16), quant=quant, attn_implementation=attn_implementation
    )
    base_params = model.num_parameters()
    common: dict[str, Any] = {
        "args": args,
        "train_dataset": prepared.train,
        "eval_dataset": prepared.eval,
        "processing_class": tokenizer,
    }
    if config.init_adapter is not None:
        common["model"] = continue_adapter(model, config.init_adapter)
    else:
        common["model"] = model
        common["peft_config"] = peft.LoraConfig(**config.lora.to_peft())
    if config.method == "grpo":
        # With a LoRA and beta > 0, the adapter-disabled base is the KL reference.
        funcs, _weights = grpo_rewards(config, output_dir)
        trainer: Any = HegelionGRPOTrainer(reward_funcs=funcs, **common)
    elif config.method == "dpo":
        # With a LoRA and no ref_model, the adapter-disabled base is the reference.
        trainer = HegelionDPOTrainer(ref_model=None, **common)
    else:
        trainer = HegelionSFTTrainer(**common)
        score_with_full_logits(trainer.model)

    if len(trainer.train_dataset) == 0:
        raise HegelionError(
            f"no training row fits in training.max_seq_length {config.training.max_seq_length}: "
            "truncation cut away every answer, and TRL dropped the rows; raise "
            "training.max_seq_length (or shorten the rows)"
        )
    scu = None
    if config.scu is not None:
        scu = make_regularizer(config.scu, trainable_tokens(trainer.train_dataset), base_params)
        if resume_from is not None and (saved := saved_scu_state(resume_from)) is not None:
            scu.load_state_dict(saved)
        trainer.hegelion_scu = scu
        note(
            f"SCU: target S {scu.controller.target:g}, N {scu.controller.tokens_per_epoch} "
            f"tokens/epoch, λ {scu.controller.lam:.4g}"
        )

    def reduce(t: torch.Tensor) -> torch.Tensor:
        return trainer.accelerator.reduce(t.to(trainer.accelerator.device), reduction="mean")

    trainer.add_callback(
        HegelionCallback(MetricsLog(output_dir) if is_rank_zero() else None, scu, reduce)
    )
    return Built(
        trainer=trainer, prepared=prepared, device=device, quantized=quant is not None, scu=scu
    )


def run_training(
    data: Path,
    output_dir: Path,
    config: TrainConfig,
    *,
    resume_from: Path | None,
    attn_implementation: str | None = None,
    bnb_4bit_quant_type: str = "nf4",
    device: Device | None = None,
) -> TrainResult:
    """Train, save the adapter (and merged weights), and report; every rank calls it."""
    built = build_trainer(
        data,
        output_dir,
        config,
        resume_from=resume_from,
        attn_implementation=attn_implementation,
        bnb_4bit_quant_type=bnb_4bit_quant_type,
        device=device,
    )
    trainer, scu = built.trainer, built.scu
    started = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    runtime = time.perf_counter() - started
    finish_tracker_runs(config.tracking.report_to)  # the next training starts its own run
    tokens = trainer.trained_tokens()

    adapter_dir = Path(output_dir) / "adapter"
    trainer.save_model(str(adapter_dir))  # every rank: sharded engines gather the weights
    trainer.accelerator.wait_for_everyone()
    merged_dir = None
    if config.merge and trainer.is_world_process_zero():
        assert config.model is not None  # build_trainer refused a config without one
        merged_dir = merge_adapter(
            config.model,
            adapter_dir,
            Path(output_dir) / "merged",
            dtype=torch.bfloat16 if trainer.args.bf16 else torch.float32,
        )
    trainer.accelerator.wait_for_everyone()

    train_runtime = float(out.metrics.get("train_runtime", runtime))
    metrics = {
        "train_loss": float(out.training_loss),
        "steps": float(trainer.state.global_step),
        "examples": float(len(built.prepared.train)),
        "tokens": float(tokens),
        "tokens_per_s": tokens / train_runtime if train_runtime > 0 else 0.0,
        "runtime_s": train_runtime,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if built.device.cuda:
        metrics["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if scu is not None:
        metrics.update({"scu_lambda": scu.controller.lam, "scu_S": scu.controller.state.s})
    extra = [
        *(["bitsandbytes"] if built.quantized else []),
        *(["deepspeed"] if trainer.is_deepspeed_enabled else []),
    ]
    return TrainResult(
        adapter_dir=adapter_dir, merged_dir=merged_dir, metrics=metrics, versions=versions(*extra)
    )


def make_regularizer(config: SCUConfig, tokens_per_epoch: int, params: float) -> SCURegularizer:
    """Target S from the config, else from the base model's size."""
    if tokens_per_epoch <= 0:
        raise HegelionError("SCU: the training set has no trainable tokens")
    return SCURegularizer(SCUController(config, tokens_per_epoch=tokens_per_epoch, params=params))
