"""The ``unsloth`` trainer: QLoRA SFT, DPO and GRPO with Unsloth's kernels and TRL's trainers.

This module stays light (no torch, no unsloth at import): ``hegelion plugins`` imports
it to report status on any machine. ``train`` checks the data and the config, then
for CUDA, then imports unsloth, and only then the GPU side (`hegelion_unsloth._run`).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import ClassVar

from hegelion_core import HegelionError, TrainConfig, Trainer, TrainResult, check_data
from hegelion_unsloth.gpu import import_unsloth, require_cuda
from hegelion_unsloth.mapping import UnslothOptions, check_fast_inference, check_supported


class UnslothTrainer(Trainer):
    """Unsloth QLoRA (4-bit by default; ``quantization: none`` for 16-bit LoRA) on one NVIDIA GPU:
    SFT, DPO, and GRPO (prompts; completions sampled by TRL's generate, or by vLLM with
    ``-o fast_inference=true``).

    Writes what every Hegelion trainer writes: ``adapter/`` (PEFT layout),
    ``merged/`` (16-bit) with ``--merge``, ``checkpoints/`` for ``--resume``, and
    ``metrics.jsonl``. Without a GPU it stops with a message naming ``--trainer trl``
    and ``--trainer mlx``.
    """

    name = "unsloth"
    accepts: ClassVar[tuple[str, ...]] = ("chat", "sft", "scu", "dpo", "prompts")
    methods: ClassVar[tuple[str, ...]] = ("sft", "dpo", "grpo")

    class Options(UnslothOptions):
        pass

    def train(self, data: Path, output_dir: Path, config: TrainConfig) -> TrainResult:
        cfg = (
            config
            if isinstance(config, TrainConfig)
            else TrainConfig.model_validate(config.model_dump())
        )
        data, output_dir = Path(data), Path(output_dir)
        fmt = check_data(data, cfg.method, self.accepts)
        check_supported(cfg)
        check_fast_inference(cfg, self.options)
        if self.options.fast_inference and importlib.util.find_spec("vllm") is None:
            raise HegelionError(
                "-o fast_inference=true samples GRPO's completions with vLLM, which is not "
                "installed here: pip install vllm (a version your Unsloth supports), or drop "
                "the option (TRL's own generate samples them then)"
            )
        gpu = require_cuda()
        # Unsloth compiles patched modules into ./unsloth_compiled_cache by default;
        # keep the user's directory clean (an explicit setting wins).
        os.environ.setdefault(
            "UNSLOTH_COMPILE_LOCATION", str(output_dir / "checkpoints" / "unsloth_compiled_cache")
        )
        import_unsloth()
        from hegelion_unsloth._run import run

        return run(data, output_dir, cfg, self.options, fmt, gpu)
