"""The ``trl`` trainer driver: ``hegelion train --trainer trl``.

Light on purpose: torch and TRL are imported only when `TRLTrainer.train` runs
(``hegelion plugins`` imports this module to list it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from hegelion_core import (
    DriverOptions,
    HegelionError,
    TrainConfig,
    Trainer,
    TrainResult,
    check_data,
)


class TRLTrainer(Trainer):
    """LoRA SFT / DPO / GRPO in TRL, with SCU (SFT), QLoRA, resume and accelerate launches."""

    name = "trl"
    accepts: ClassVar[tuple[str, ...]] = ("chat", "sft", "scu", "dpo", "prompts")
    methods: ClassVar[tuple[str, ...]] = ("sft", "dpo", "grpo")

    class Options(DriverOptions):
        #: With --num-processes > 1: ddp, zero2, zero3, fsdp, or an accelerate config YAML path.
        accelerate_config: str = "ddp"
        #: Multi-node: run the same command on every machine, each with its machine_rank.
        num_machines: int = Field(1, ge=1)
        machine_rank: int = Field(0, ge=0)
        main_process_ip: str | None = None
        main_process_port: int | None = Field(None, ge=1, le=65535)
        #: transformers' attention kernel (eager, sdpa, flash_attention_2); default: its choice.
        attn_implementation: str | None = None
        #: QLoRA (quantization: 4bit) data type.
        bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"

    def train(self, data: Path, output_dir: Path, config: TrainConfig) -> TrainResult:
        """Train in this process, or through ``accelerate launch`` when
        ``config.num_processes > 1`` (rank 0 writes the outputs)."""
        if not isinstance(config, TrainConfig):
            raise TypeError(f"expected a TrainConfig, got {type(config).__name__}")
        check_data(Path(data), config.method, self.accepts)
        if config.model is None:
            raise HegelionError("no model: set `model:` in the config or pass --model")
        if config.scu is not None and config.method != "sft":
            raise HegelionError(scu_refusal(config.method))
        opts = self.options
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)

        from hegelion_trl.checkpoints import latest_checkpoint, prepare_output

        distributed = config.num_processes > 1 or opts.num_machines > 1
        # In a multi-node run only the main machine owns the output directory.
        if opts.machine_rank == 0:
            resume_from = prepare_output(output_dir, config.resume)
        else:  # another machine of a multi-node run: machine 0 tidies the shared output
            resume_from = latest_checkpoint(output_dir) if config.resume else None
        if not distributed:
            from hegelion_trl.engine import run_training

            return run_training(
                Path(data),
                output_dir,
                config,
                resume_from=resume_from,
                attn_implementation=opts.attn_implementation,
                bnb_4bit_quant_type=opts.bnb_4bit_quant_type,
            )
        return self._launch(Path(data), output_dir, config, resume_from)

    def _launch(
        self, data: Path, output_dir: Path, config: TrainConfig, resume_from: Path | None
    ) -> TrainResult:
        from hegelion_trl.config_map import Device
        from hegelion_trl.launch import (
            Job,
            accelerate_command,
            accelerate_config_path,
            check_engine,
            job_file,
            launch,
        )

        opts = self.options
        if opts.accelerate_config in ("ddp", "zero2", "zero3", "fsdp"):
            check_engine(
                opts.accelerate_config, cuda=Device.detect().cuda, scu=config.scu is not None
            )
        job = Job(
            data=data.resolve(),
            output=output_dir.resolve(),
            config=config,
            resume_from=resume_from.resolve() if resume_from else None,
            attn_implementation=opts.attn_implementation,
            bnb_4bit_quant_type=opts.bnb_4bit_quant_type,
        )
        command = accelerate_command(
            job_file(output_dir.resolve(), opts.machine_rank),
            num_processes=config.num_processes,
            config_file=accelerate_config_path(opts.accelerate_config),
            num_machines=opts.num_machines,
            machine_rank=opts.machine_rank,
            main_process_ip=opts.main_process_ip,
            main_process_port=opts.main_process_port,
        )
        result: dict[str, Any] = launch(job, command, reports=opts.machine_rank == 0)
        if not result:  # a worker machine of a multi-node run: the main machine reports
            return TrainResult()
        return TrainResult.model_validate(result)


def scu_refusal(method: str) -> str:
    """Why SCU is SFT's alone (one message for the driver and the engine)."""
    message = "--scu regularises the SFT cross-entropy; use it with --method sft"
    if method == "grpo":
        message += (
            " (GRPO's loss is a policy-gradient surrogate, near 0 and often negative, not "
            "bits of data: SCU's share S = penalty / (loss + penalty) means nothing there)"
        )
    return message
