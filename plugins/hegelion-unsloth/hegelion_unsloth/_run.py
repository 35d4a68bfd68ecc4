"""The GPU side of the ``unsloth`` trainer. Import only after `gpu.import_unsloth()`.

Everything decided here was decided in `hegelion_unsloth.mapping` (tested in CI);
this module passes those arguments to Unsloth and TRL, runs, saves and measures.
It runs only on an NVIDIA GPU: see ``tests/gpu/run_gpu_checks.py``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

# isort: off
import unsloth  # noqa: F401  first: it patches trl, transformers and peft on import
from unsloth import FastLanguageModel

import datasets
import torch
import trl
from transformers import TrainerCallback

# isort: on
from hegelion_core import (
    HegelionError,
    MetricsLog,
    TrainConfig,
    TrainResult,
    apply_tracker_environment,
    data_files,
    finish_tracker_runs,
    grpo_rewards,
    reward_stats,
)
from hegelion_unsloth.data import needs_chat_template, read_prompt_rows, read_rows
from hegelion_unsloth.gpu import GPUInfo, library_versions
from hegelion_unsloth.mapping import MERGE_METHOD, UnslothOptions, build_plan


class _Metrics(TrainerCallback):
    """Every logged step to metrics.jsonl (and the hook), with GRPO's reward counters (the
    judge's calls and failures); throughput of this run alone."""

    def __init__(self, log: MetricsLog, reward_funcs: list[Any] | None = None) -> None:
        self.log = log
        self.reward_funcs = reward_funcs or []
        self.tokens_at_start = 0
        self.started = 0.0
        self.tokens = 0
        self.seconds = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.tokens_at_start = int(state.num_input_tokens_seen or 0)  # > 0 after --resume
        self.started = time.perf_counter()

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if logs:
            if self.reward_funcs and "train_runtime" not in logs:
                logs = {**logs, **reward_stats(self.reward_funcs)}
            self.log.log(state.global_step, logs)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.seconds = time.perf_counter() - self.started
        self.tokens = int(state.num_input_tokens_seen or 0) - self.tokens_at_start


def run(
    data: Path,
    output_dir: Path,
    config: TrainConfig,
    options: UnslothOptions,
    fmt: str,
    gpu: GPUInfo,
) -> TrainResult:
    files = data_files(data)
    completion_only = config.training.completion_only_loss
    grpo = config.method == "grpo"
    if grpo:  # read before the model loads: a bad row fails fast
        train_rows, eval_rows = read_prompt_rows(data, chat_template=True)
    else:
        train_rows = read_rows(files["train"], fmt, completion_only=completion_only)
        eval_rows = (
            read_rows(files["valid"], fmt, completion_only=completion_only)
            if "valid" in files
            else None
        )
    plan = build_plan(
        config, options, output_dir, bf16_supported=gpu.bf16, has_eval=eval_rows is not None
    )
    apply_tracker_environment(config.tracking, output_dir)  # before the trainer's callbacks

    model, tokenizer = FastLanguageModel.from_pretrained(
        **{**plan.load, "dtype": getattr(torch, plan.dtype)}
    )
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if grpo and not has_template:  # the plain "{user}\n\n" prompts, as the trl trainer's
        train_rows, eval_rows = read_prompt_rows(data, chat_template=False)
    elif needs_chat_template(fmt, train_rows[0]) and not has_template:
        raise HegelionError(
            f"{config.model} has no chat template, and {fmt} rows are conversations: use an "
            "instruct model, or pre-rendered ChatML rows (`hegelion dataset ... --format scu`)"
        )
    if plan.peft is not None:  # else from_pretrained loaded init_adapter, trainable
        model = FastLanguageModel.get_peft_model(model, **plan.peft)

    funcs, _weights = grpo_rewards(config, output_dir) if grpo else ([], [])
    metrics_cb = _Metrics(MetricsLog(output_dir), funcs)
    common: dict[str, Any] = dict(
        model=model,
        train_dataset=datasets.Dataset.from_list(train_rows),
        eval_dataset=datasets.Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        callbacks=[metrics_cb],
    )
    if plan.method == "sft":
        trainer: Any = trl.SFTTrainer(args=trl.SFTConfig(**plan.args), **common)
    elif plan.method == "grpo":
        # Unsloth's GRPOTrainer and GRPOConfig (patched into trl on import; what its config
        # rewrite would change, the plan gives: mapping.unsloth_grpo_pins). With a LoRA and
        # beta > 0 the adapter-disabled base is the KL reference; with fast_inference the
        # model's vLLM engine samples (Unsloth turns use_vllm on for it).
        trainer = trl.GRPOTrainer(args=trl.GRPOConfig(**plan.args), reward_funcs=funcs, **common)
    else:
        # No ref_model: with a LoRA, the adapter-disabled base is the reference (no second copy).
        # Unsloth patches DPOTrainer on import; PatchDPOTrainer() is a no-op in 2026.10.
        trainer = trl.DPOTrainer(args=trl.DPOConfig(**plan.args), ref_model=None, **common)

    torch.cuda.reset_peak_memory_stats()
    output = trainer.train(resume_from_checkpoint=plan.resume_from)
    finish_tracker_runs(config.tracking.report_to)  # the next training starts its own run
    peak_gb = torch.cuda.max_memory_reserved() / 2**30

    model.save_pretrained(str(plan.adapter_dir))
    tokenizer.save_pretrained(str(plan.adapter_dir))
    if plan.merged_dir is not None:
        model.save_pretrained_merged(str(plan.merged_dir), tokenizer, save_method=MERGE_METHOD)

    metrics: dict[str, float] = {
        "train_loss": float(output.training_loss),
        "steps": float(trainer.state.global_step),
        "examples": float(len(train_rows)),
        "tokens": float(metrics_cb.tokens),
        "tokens_per_s": metrics_cb.tokens / metrics_cb.seconds if metrics_cb.seconds else 0.0,
        "train_runtime_s": float(output.metrics.get("train_runtime", metrics_cb.seconds)),
        "peak_gpu_mem_gb": round(peak_gb, 3),
    }
    evals = [e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e]
    if evals:
        metrics["eval_loss"] = float(evals[-1])
    return TrainResult(
        adapter_dir=plan.adapter_dir,
        merged_dir=plan.merged_dir,
        metrics=metrics,
        versions=library_versions(gpu),
    )
