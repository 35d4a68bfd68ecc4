"""The ``mlx`` and ``mlx-scu`` trainers: LoRA SFT through mlx-lm's tuner.

Output layout (``hegelion train`` adds ``manifest.json`` and ``metrics.png``)::

    output/mlx_adapter/   adapters.safetensors + adapter_config.json (mlx-lm's own;
                          ``mlx_lm generate --adapter-path`` and ``fuse`` read it)
    output/adapter/       the same adapter in PEFT layout, with the tokenizer
    output/merged/        with ``merge``: base + adapter, de-quantized, HF safetensors
    output/checkpoints/   <step>_adapters.safetensors, optimizer and loop state
    output/metrics.jsonl  loss, lr, tokens/s (and DataBPT, ParamBPT, S, λ with SCU)
    output/wandb/<run>/   with ``tracking.report_to: [wandb]``: mlx-lm's wandb run, the same rows

mlx is imported only inside ``train``: ``hegelion plugins`` imports this module to
report its status on machines without mlx.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, Field, field_validator

from hegelion_core import (
    DriverOptions,
    HegelionError,
    TrainConfig,
    Trainer,
    TrainResult,
    data_files,
    require_trackers,
)
from hegelion_mlx.data import read_format

MLX_ADAPTER = "mlx_adapter"
PEFT_ADAPTER = "adapter"
MERGED = "merged"
CHECKPOINTS = "checkpoints"
#: tracking.report_to that mlx-lm's own reporting callbacks serve (it has wandb and swanlab;
#: Hegelion's config names wandb of the two).
TRACKERS = ("wandb",)


class MLXOptions(DriverOptions):
    """Trainer options (``-o key=value``); everything else comes from the TrainConfig."""

    num_layers: int = -1  # transformer blocks to adapt, counted from the last; -1: all
    steps_per_eval: int = Field(
        200, ge=0
    )  # validate every N steps (and at the end); 0: only at the end
    val_batches: int = Field(25, ge=-1)  # batches per validation; -1: the whole valid split
    quant_group_size: int = Field(64, ge=1)  # group size when quantization is 4bit/8bit
    trust_remote_code: bool = False
    progress: bool = True  # a progress line on stderr every ~5% of the run

    @field_validator("num_layers")
    @classmethod
    def _layers(cls, v: int) -> int:
        if v == 0 or v < -1:
            raise ValueError("num_layers is -1 (all blocks) or a positive count")
        return v


class MLXTrainer(Trainer):
    """LoRA SFT on MLX (Apple Silicon GPU, or mlx's CPU backend on Linux).

    Applies SCU when ``config.scu`` is set (``--scu``), exactly as ``mlx-scu`` does.
    """

    name = "mlx"
    accepts: ClassVar[tuple[str, ...]] = ("chat", "sft", "scu", "mlx")
    #: Training methods this trainer implements (``hegelion train --method``).
    methods: ClassVar[tuple[str, ...]] = ("sft",)
    #: ``mlx-scu`` regularises even when the config has no ``scu:`` section.
    always_scu: ClassVar[bool] = False

    class Options(MLXOptions):
        pass

    def train(self, data: Path, output_dir: Path, config: TrainConfig) -> TrainResult:
        cfg = (
            config
            if isinstance(config, TrainConfig)
            else TrainConfig.model_validate(
                config.model_dump() if isinstance(config, BaseModel) else config
            )
        )
        self._check(cfg, Path(data))
        return _train(self, Path(data), Path(output_dir), cfg)

    def _check(self, cfg: TrainConfig, data: Path) -> None:
        """Everything that can be refused before a model is loaded."""
        if cfg.method != "sft":
            raise HegelionError(
                f"the {self.name} trainer does LoRA SFT only (MLX LoRA here has no "
                f"{cfg.method.upper()}); for --method {cfg.method} use --trainer trl"
            )
        if cfg.model is None:
            raise HegelionError("no model: pass --model or set `model:` in the config")
        if cfg.num_processes != 1:
            raise HegelionError(
                f"the {self.name} trainer runs in one process; "
                "drop --num-processes (use --trainer trl for many GPUs)"
            )
        if cfg.training.packing:
            raise HegelionError(
                f"the {self.name} trainer does not pack rows; set training.packing: false"
            )
        for path in data_files(data).values():
            read_format(path)  # dpo rows and unknown rows fail here, naming the file
        require_trackers(cfg.tracking.report_to, trainer=self.name, supported=TRACKERS)


class MLXSCUTrainer(MLXTrainer):
    """LoRA SFT with the Shannon Control Unit: λ·Σw²/(2σ²N) in the differentiable
    loss, λ steered each step so the parameter share of the bits, S, meets its target.
    Without a ``scu:`` config section it uses `SCUConfig`'s defaults."""

    name = "mlx-scu"
    always_scu: ClassVar[bool] = True

    class Options(MLXOptions):
        pass


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from hegelion_mlx import __version__

    out = {"hegelion-mlx": __version__}
    for dist in ("mlx", "mlx-lm", "hegelion-core"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def _trim_metrics(path: Path, after: int) -> None:
    """Drop logged rows past the resumed checkpoint: those steps are trained again."""
    if not path.exists():
        return
    from hegelion_core import atomic_output

    keep = [
        line
        for line in path.read_bytes().splitlines()
        if line.strip() and (step := _row_step(line)) is not None and step <= after
    ]
    with atomic_output(path) as tmp:
        tmp.write_bytes(b"".join(line + b"\n" for line in keep))


def _row_step(line: bytes) -> int | None:
    try:
        return int(orjson.loads(line)["step"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None  # a torn last line from a killed run


def _base_ref(model: str) -> str:
    """What PEFT's ``base_model_name_or_path`` records: an absolute path for a local
    model, the hub id otherwise."""
    p = Path(model).expanduser()
    return str(p.resolve()) if p.exists() else model


def earlier_output(directory: Path) -> set[str] | None:
    """An adapter or merged model written by a version before Hegelion's output mark: one
    its train manifest lists, or an mlx adapter whose config has Hegelion's own key."""
    from hegelion_core import listed_beside

    if (found := listed_beside("train")(directory)) is not None:
        return found
    try:
        config = orjson.loads((directory / "adapter_config.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    ours = isinstance(config, dict) and "hegelion" in config
    return {p.name for p in directory.iterdir()} if ours else None


def _write_mlx_adapter(
    model: Any, dest: Path, cfg: TrainConfig, lora: dict[str, Any], num_layers: int
) -> None:
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from hegelion_core import atomic_output

    adapter_config = {
        "model": cfg.model,
        "fine_tune_type": "lora",
        "num_layers": num_layers,
        "lora_parameters": lora,
        "quantization": cfg.quantization,
        "hegelion": {
            "lora_alpha": lora["scale"] * lora["rank"],
            "r": lora["rank"],
            "scu": cfg.scu is not None,
            "init_adapter": str(cfg.init_adapter) if cfg.init_adapter else None,
        },
    }
    with atomic_output(dest, directory=True, earlier=earlier_output) as tmp:
        mx.save_safetensors(
            str(tmp / "adapters.safetensors"), dict(tree_flatten(model.trainable_parameters()))
        )
        (tmp / "adapter_config.json").write_text(
            orjson.dumps(adapter_config, option=orjson.OPT_INDENT_2).decode()
        )


@contextmanager
def _reporting(cfg: TrainConfig, output: Path) -> Iterator[None]:
    """``tracking.report_to`` through mlx-lm's own reporting callbacks, fed every row
    that metrics.jsonl gets (loss, val_loss, SCU's S and λ). The wandb run is named
    for ``tracking.run_name`` (mlx-lm names it after its log directory) and its files go
    to ``output/wandb/RUN_NAME/``."""
    if not cfg.tracking.report_to:
        yield
        return
    from mlx_lm.tuner.callbacks import get_reporting_callbacks

    from hegelion_core import (
        apply_tracker_environment,
        finish_tracker_runs,
        forward_train_metrics,
        tracker_run_name,
    )

    apply_tracker_environment(cfg.tracking, output)  # WANDB_PROJECT unless the user set it
    log_dir = output.resolve() / "wandb" / tracker_run_name(cfg.tracking, output)
    log_dir.mkdir(parents=True, exist_ok=True)
    callback = get_reporting_callbacks(
        ",".join(cfg.tracking.report_to),
        project_name=os.environ.get("WANDB_PROJECT"),
        log_dir=str(log_dir),
        config=cfg.model_dump(mode="json"),
    )
    try:
        with forward_train_metrics(
            lambda step, row: callback.on_train_loss_report({"iteration": step, **row})
        ):
            yield
    finally:
        finish_tracker_runs(cfg.tracking.report_to)


def _train(trainer: MLXTrainer, data: Path, output: Path, cfg: TrainConfig) -> TrainResult:
    import mlx.core as mx
    import numpy as np
    from mlx import nn
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.lora import LoRALinear
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import get_total_parameters, load, quantize_model

    from hegelion_core import MetricsLog, SCUConfig, SCUController, atomic_output
    from hegelion_mlx import loop
    from hegelion_mlx.checkpoints import latest_checkpoint, prune
    from hegelion_mlx.data import load_splits
    from hegelion_mlx.merge import fuse_adapter
    from hegelion_mlx.peft_format import mlx_to_peft, read_adapter

    opts: MLXOptions = trainer.options
    assert cfg.model is not None  # MLXTrainer._check refused a config without one
    args = cfg.training
    output.mkdir(parents=True, exist_ok=True)
    mx.random.seed(args.seed)
    np.random.seed(args.seed)

    try:
        model, tokenizer, model_config = load(
            cfg.model,
            return_config=True,
            tokenizer_config={"trust_remote_code": opts.trust_remote_code},
            trust_remote_code=opts.trust_remote_code,
        )
    except Exception as exc:  # hub, file and architecture errors all arrive here
        raise HegelionError(
            f"mlx-lm cannot load the model {cfg.model!r}: {type(exc).__name__}: {exc}"
        ) from exc
    base_params = get_total_parameters(model)
    if cfg.quantization != "none" and not any(
        isinstance(m, nn.QuantizedLinear) for _, m in model.named_modules()
    ):
        bits = 4 if cfg.quantization == "4bit" else 8
        model, model_config = quantize_model(model, model_config, opts.quant_group_size, bits)

    splits = load_splits(data, tokenizer, mask_prompt=args.completion_only_loss)
    batch = args.per_device_train_batch_size
    if len(splits.train) < batch:
        raise HegelionError(
            f"{data}: the train split has {len(splits.train)} rows, fewer than the batch size {batch} "
            "(mlx-lm needs at least one full batch): lower training.per_device_train_batch_size "
            "or add rows"
        )

    layers = len(model.layers)
    # Continuing an earlier adapter (Simplex stages chain): its rank, scale, targets and
    # blocks win over the config's, as with --trainer trl.
    init = (
        read_adapter(cfg.init_adapter, model_layers=layers)
        if cfg.init_adapter is not None
        else None
    )
    num_layers = init.num_layers if init is not None else opts.num_layers
    if num_layers > layers:
        raise HegelionError(f"num_layers {num_layers} but the model has {layers} blocks")
    lora = init.lora_parameters if init is not None else cfg.lora.to_mlx(num_layers)
    model.freeze()
    linear_to_lora_layers(model, num_layers, lora)
    adapted = [(n, m) for n, m in model.named_modules() if hasattr(m, "lora_a")]
    if not adapted:
        linears = sorted(
            {
                n.rsplit(".", 1)[-1]
                for n, m in model.layers[-1].named_modules()
                if isinstance(m, (nn.Linear, nn.QuantizedLinear))
            }
        )
        raise HegelionError(
            f"no module matched lora.target_modules {cfg.lora.target_modules}; "
            f"this model's blocks have: {linears}"
        )
    if init is None and isinstance(cfg.lora.target_modules, list):
        missing = sorted(set(cfg.lora.target_modules) - {n.rsplit(".", 1)[-1] for n, _ in adapted})
        if missing:
            raise HegelionError(f"lora.target_modules {missing} match no layer of this model")
    not_linear = [n for n, m in adapted if not isinstance(m, LoRALinear)]
    if not_linear:
        raise HegelionError(
            f"{not_linear[0]} is not a linear layer ({len(not_linear)} such): the PEFT "
            "conversion handles linear LoRA only; name linear modules in lora.target_modules"
        )
    if init is not None:
        loop.load_trainable(
            model,
            init.weights,
            mismatch=lambda problem: (
                f"init_adapter: {cfg.init_adapter} does not fit the base model {cfg.model} ({problem}); "
                "continue from an adapter trained on the same base"
            ),
        )

    per_epoch = max(1, (len(splits.train) // batch) // args.gradient_accumulation_steps)
    total = (
        args.max_steps
        if args.max_steps > 0
        else max(1, math.ceil(args.num_train_epochs * per_epoch))
    )
    settings = loop.LoopSettings(
        total_steps=total,
        batch_size=batch,
        grad_accumulation_steps=args.gradient_accumulation_steps,
        max_seq_length=args.max_seq_length,
        logging_steps=args.logging_steps,
        save_steps=args.save_steps,
        save_total_limit=args.save_total_limit,
        steps_per_eval=opts.steps_per_eval,
        val_batches=opts.val_batches,
        seed=args.seed,
        grad_checkpoint=args.gradient_checkpointing,
        progress=opts.progress,
    )
    warmup = math.ceil(args.warmup_ratio * total)
    optimizer = loop.build_optimizer(
        args.optim, loop.build_schedule(args.learning_rate, args.lr_scheduler_type, total, warmup)
    )

    controller = None
    scu_config = cfg.scu or (SCUConfig() if trainer.always_scu else None)
    if scu_config is not None:
        controller = SCUController(
            scu_config,
            tokens_per_epoch=max(1, loop.tokens_per_epoch(splits.train, settings)),
            params=base_params,
        )

    checkpoints = output / CHECKPOINTS
    resume = latest_checkpoint(checkpoints) if cfg.resume else None
    metrics = MetricsLog(output)
    if resume is not None:
        _trim_metrics(metrics.path, resume.step)
        prune(checkpoints, args.save_total_limit)  # sweep what the interrupted save left
    else:
        if cfg.resume and opts.progress:
            print(f"no checkpoint in {checkpoints}: starting from step 0", file=sys.stderr)
        # A fresh run starts a fresh curve, and a later --resume must not pick up a
        # checkpoint of an earlier run in the same directory.
        metrics.path.unlink(missing_ok=True)
        if checkpoints.is_dir():
            shutil.rmtree(checkpoints)

    mx.reset_peak_memory()
    started = time.perf_counter()
    with _reporting(cfg, output):
        result = loop.run(
            model,
            optimizer,
            splits.train,
            splits.valid,
            settings,
            checkpoints=checkpoints,
            metrics=metrics,
            controller=controller,
            resume=resume,
        )
    wall = time.perf_counter() - started

    mlx_dir, peft_dir = output / MLX_ADAPTER, output / PEFT_ADAPTER
    _write_mlx_adapter(model, mlx_dir, cfg, lora, num_layers)
    with atomic_output(peft_dir, directory=True, earlier=earlier_output) as tmp:
        mlx_to_peft(mlx_dir, tmp, base_model=_base_ref(cfg.model))
        tokenizer.save_pretrained(str(tmp))
    merged = None
    if cfg.merge:
        merged = fuse_adapter(
            cfg.model, mlx_dir, output / MERGED, trust_remote_code=opts.trust_remote_code
        )

    figures: dict[str, float] = {
        "train_loss": result.train_loss,
        "steps": float(result.steps),
        "tokens": float(result.tokens),
        "tokens_per_s": result.tokens / result.train_time if result.train_time > 0 else 0.0,
        "train_runtime_s": wall,
        "peak_memory_mb": mx.get_peak_memory() / 1e6,
        "trainable_params": float(
            sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
        ),
        "train_rows": float(len(splits.train)),
    }
    if result.val_loss is not None:
        figures["val_loss"] = result.val_loss
    if result.resumed_from is not None:
        figures["resumed_from_step"] = float(result.resumed_from)
    if controller is not None:
        figures.update({k: float(v) for k, v in controller.metrics().items()})
        figures["tokens_per_epoch"] = float(controller.tokens_per_epoch)
    return TrainResult(
        adapter_dir=peft_dir, merged_dir=merged, metrics=figures, versions=_versions()
    )
