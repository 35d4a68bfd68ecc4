"""The training loop: mlx-lm's compiled step, plus what Hegelion needs around it.

Why not `mlx_lm.tuner.trainer.train` as is: SCU must add ``λ·Σw²/(2σ²N)`` to the
differentiable loss with a λ that changes every step (passed to the compiled step as
an array, so nothing recompiles), and ``--resume`` needs the optimizer state, the
step count and the data position, which mlx-lm neither saves nor restores. The step
itself is mlx-lm's: ``nn.value_and_grad`` inside ``mx.compile`` with the model,
optimizer and RNG state as compile inputs and outputs, batches from mlx-lm's
`iterate_batches`, validation with its `evaluate`.

The loss masks the targets ``offset <= t < length``. mlx-lm 0.32's `default_loss`
uses ``t <= length`` and so also trains every padded row to predict token id 0
after its last token (ml-explore/mlx-lm#1697); Hegelion does not.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.optimizers as optim
from mlx import nn
from mlx.utils import tree_flatten, tree_map
from mlx_lm.tuner.trainer import evaluate, iterate_batches

from hegelion_core import HegelionError, MetricsLog, SCUController, SCUState
from hegelion_mlx.checkpoints import Checkpoint, save_checkpoint

RNG_KEY = "__hegelion_rng_seed__"


def masked_ce(model: nn.Module, batch: mx.array, lengths: mx.array) -> tuple[mx.array, mx.array]:
    """Mean cross-entropy (nats/token) over the trained targets, and their count.

    ``lengths[:, 0]`` is the prompt offset (0 without ``mask_prompt``), ``lengths[:, 1]``
    the row's length: target ``t`` (predicting token ``t``) is trained when
    ``offset <= t < length``.
    """
    inputs, targets = batch[:, :-1], batch[:, 1:]
    logits = model(inputs)
    steps = mx.arange(1, targets.shape[1] + 1)
    mask = mx.logical_and(steps >= lengths[:, 0:1], steps < lengths[:, 1:])
    ntoks = mask.sum()
    ce = (nn.losses.cross_entropy(logits, targets) * mask).astype(mx.float32).sum()
    return ce / mx.maximum(ntoks, 1), ntoks


def sum_of_squares(tree: Any) -> mx.array:
    """Σw² over every array in ``tree`` (the LoRA parameters), in float32."""
    leaves = [v for _, v in tree_flatten(tree)]
    return sum((mx.sum(mx.square(v.astype(mx.float32))) for v in leaves), start=mx.array(0.0))


def scu_loss(
    model: nn.Module, batch: mx.array, lengths: mx.array, penalty_weight: mx.array
) -> tuple[mx.array, mx.array, mx.array, mx.array]:
    """CE + penalty_weight · Σw² of the trainable (LoRA) parameters, all inside the graph.

    Under ``nn.value_and_grad`` the model's trainable parameters are the traced ones, so
    the penalty's gradient, ``2 · penalty_weight · w``, reaches every LoRA weight.
    Returns (loss, ce, trained tokens, Σw²).
    """
    ce, ntoks = masked_ce(model, batch, lengths)
    sw2 = sum_of_squares(model.trainable_parameters())
    return ce + penalty_weight * sw2, ce, ntoks, sw2


def plain_loss(
    model: nn.Module, batch: mx.array, lengths: mx.array, penalty_weight: mx.array
) -> tuple[mx.array, mx.array, mx.array, mx.array]:
    """CE alone (plain LoRA): no Σw² in the graph, so nothing is spent on it."""
    ce, ntoks = masked_ce(model, batch, lengths)
    return ce, ce, ntoks, mx.array(0.0)


def build_schedule(lr: float, kind: str, total_steps: int, warmup_steps: int) -> Any:
    """``training.lr_scheduler_type`` as an mlx schedule (linear warmup from 0 first)."""
    decay = max(1, total_steps - warmup_steps)
    if kind == "cosine":
        main = optim.cosine_decay(lr, decay, 0.0)
    elif kind == "linear":
        main = optim.linear_schedule(lr, 0.0, decay)
    elif kind in ("constant", "constant_with_warmup"):

        def main(_step: Any) -> Any:
            return mx.array(lr, mx.float32)
    else:
        raise HegelionError(
            f"lr_scheduler_type {kind!r} is not supported on MLX; "
            "use cosine, linear, constant or constant_with_warmup"
        )
    if warmup_steps <= 0:
        return main
    return optim.join_schedules(
        [optim.linear_schedule(0.0, lr, warmup_steps), main], [warmup_steps]
    )


def build_optimizer(name: str, schedule: Any) -> optim.Optimizer:
    """``training.optim`` as an mlx optimizer. AdamW gets weight decay 0, as the
    Hugging Face Trainer's default, so the same YAML means the same thing everywhere."""
    key = name.lower()
    if "adamw" in key:
        return optim.AdamW(learning_rate=schedule, weight_decay=0.0)
    if key in ("adam", "adam_torch"):
        return optim.Adam(learning_rate=schedule)
    if "sgd" in key:
        return optim.SGD(learning_rate=schedule)
    if "adafactor" in key:
        return optim.Adafactor(learning_rate=schedule)
    if key == "muon":
        return optim.Muon(learning_rate=schedule)
    raise HegelionError(
        f"optim {name!r} is not available on MLX; use adamw, adam, sgd, adafactor or muon"
    )


def _set_path(tree: Any, dotted: str, value: mx.array) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value


@dataclass
class LoopSettings:
    total_steps: int
    batch_size: int
    grad_accumulation_steps: int
    max_seq_length: int
    logging_steps: int
    save_steps: int
    save_total_limit: int
    steps_per_eval: int
    val_batches: int
    seed: int
    grad_checkpoint: bool = False
    progress: bool = True


@dataclass
class LoopResult:
    steps: int
    tokens: int
    train_time: float
    train_loss: float  # mean CE over the steps this run trained (nan: nothing left to train)
    val_loss: float | None = None
    resumed_from: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)


def micro_batches(
    dataset: Any, settings: LoopSettings, start: int
) -> Iterator[tuple[mx.array, mx.array]]:
    """mlx-lm's batches, epoch after epoch, from micro-batch ``start`` on.

    Each epoch's order comes from seed + epoch alone, so a resumed run sees exactly
    the batches the interrupted one would have.
    """
    per_epoch = len(dataset) // settings.batch_size
    epoch, skip = divmod(start, per_epoch)
    while True:
        batches = iterate_batches(
            dataset,
            settings.batch_size,
            settings.max_seq_length,
            loop=False,
            seed=settings.seed + epoch,
        )
        for i, batch in enumerate(batches):
            if i >= skip:
                yield batch
        epoch, skip = epoch + 1, 0


def tokens_per_epoch(dataset: Any, settings: LoopSettings) -> int:
    """N for SCU: the targets trained in one pass over the batches (exactly those
    `iterate_batches` yields, so rows it leaves out are not counted)."""
    total = 0
    for _, lengths in iterate_batches(
        dataset, settings.batch_size, settings.max_seq_length, loop=False, seed=0
    ):
        offsets, lens = lengths[:, 0], lengths[:, 1]
        total += int(mx.sum(mx.maximum(lens - mx.maximum(offsets, 1), 0)).item())
    return total


def optimizer_tensors(optimizer: optim.Optimizer) -> dict[str, mx.array]:
    return dict(tree_flatten(optimizer.state))


def load_trainable(
    model: nn.Module, weights: dict[str, mx.array], *, mismatch: Callable[[str], str]
) -> None:
    """Load LoRA weights into ``model``'s trainable parameters, which they must match
    exactly in names and shapes; else `HegelionError` with ``mismatch(first difference)``."""
    ours = dict(tree_flatten(model.trainable_parameters()))
    missing, extra = sorted(set(ours) - set(weights)), sorted(set(weights) - set(ours))
    shapes = [
        f"{k}: {tuple(weights[k].shape)} here, {tuple(v.shape)} in the model"
        for k, v in ours.items()
        if k in weights and weights[k].shape != v.shape
    ]
    if missing:
        raise HegelionError(mismatch(f"no tensor for {missing[0]}"))
    if extra:
        raise HegelionError(mismatch(f"{extra[0]} has no place in the model"))
    if shapes:
        raise HegelionError(mismatch(shapes[0]))
    model.load_weights(list(weights.items()), strict=False)


def restore(model: nn.Module, optimizer: optim.Optimizer, checkpoint: Checkpoint) -> None:
    """Put a checkpoint's adapter weights and optimizer state back in place."""
    load_trainable(
        model,
        mx.load(str(checkpoint.adapters)),
        mismatch=lambda problem: (
            f"checkpoint {checkpoint.adapters} was trained with other LoRA settings (rank, "
            f"target_modules or num_layers) than this run ({problem}): resume with the same config, "
            "or run without --resume to start over"
        ),
    )
    optimizer.init(model.trainable_parameters())
    for key, value in mx.load(str(checkpoint.optimizer)).items():
        _set_path(optimizer.state, key, value)
    mx.eval(model.parameters(), optimizer.state)


def run(
    model: nn.Module,
    optimizer: optim.Optimizer,
    train_set: Any,
    valid_set: Any | None,
    settings: LoopSettings,
    *,
    checkpoints: Path,
    metrics: MetricsLog,
    controller: SCUController | None = None,
    resume: Checkpoint | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> LoopResult:
    """Train ``settings.total_steps`` optimizer steps (continuing ``resume``)."""
    if settings.grad_checkpoint:
        from mlx_lm.tuner.trainer import grad_checkpoint

        grad_checkpoint(model.layers[0])

    accum = settings.grad_accumulation_steps
    start = 0
    tokens, train_time = 0, 0.0
    if resume is not None:
        restore(model, optimizer, resume)
        start = resume.step
        tokens, train_time = (
            int(resume.state.get("tokens", 0)),
            float(resume.state.get("train_time", 0.0)),
        )
        if controller is not None and resume.state.get("scu"):
            controller.state = SCUState.model_validate(resume.state["scu"])
    mx.random.seed(settings.seed + start)

    loss_fn = scu_loss if controller is not None else plain_loss
    value_and_grad = nn.value_and_grad(model, loss_fn)
    state = [model.state, optimizer.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(batch: mx.array, lengths: mx.array, pw: mx.array, prev: Any, do_update: bool) -> Any:
        (loss, ce, ntoks, sw2), grad = value_and_grad(model, batch, lengths, pw)
        if prev is not None:
            grad = tree_map(lambda g, p: g + p, grad, prev)
        if do_update:
            if accum > 1:
                grad = tree_map(lambda g: g / accum, grad)
            optimizer.update(model, grad)
            grad = None
        return loss, ce, ntoks, sw2, grad

    model.train()
    batches = micro_batches(train_set, settings, start * accum)
    window: dict[str, float] = {"ce": 0.0, "tokens": 0, "time": 0.0, "steps": 0}
    ce_total, val_loss = 0.0, None
    history: list[dict[str, float]] = []
    report_every = max(settings.logging_steps, settings.total_steps // 20 or 1)

    for it in range(start + 1, settings.total_steps + 1):
        tic = time.perf_counter()
        pw = mx.array(controller.penalty_weight() if controller is not None else 0.0, mx.float32)
        grad = None
        ce_sum, tok_sum, sw2 = mx.array(0.0), mx.array(0), mx.array(0.0)
        for micro in range(accum):
            batch, lengths = next(batches)
            _, ce, ntoks, sw2, grad = step(batch, lengths, pw, grad, micro == accum - 1)
            ce_sum, tok_sum = ce_sum + ce * ntoks, tok_sum + ntoks
        mx.eval(state, ce_sum, tok_sum, sw2)
        n = int(tok_sum.item())
        ce_value = ce_sum.item() / max(n, 1)
        elapsed = time.perf_counter() - tic
        tokens += n
        train_time += elapsed
        ce_total += ce_value
        window["ce"] += ce_value
        window["tokens"] += n
        window["time"] += elapsed
        window["steps"] += 1

        row: dict[str, float] | None = None
        if controller is not None:
            sw2_value = sw2.item()
            penalty = pw.item() * sw2_value
            controller.update(ce_value, sw2_value)
            row = {
                "loss": ce_value,
                "total_loss": ce_value + penalty,
                "penalty": penalty,
                "lr": optimizer.learning_rate.item(),
                **controller.metrics(),
            }
        if it % settings.logging_steps == 0 or it == settings.total_steps:
            row = {
                **(row or {}),
                "loss": window["ce"] / window["steps"],
                "lr": optimizer.learning_rate.item(),
                "tokens_per_s": window["tokens"] / max(window["time"], 1e-9),
                "tokens": tokens,
                "peak_memory_mb": mx.get_peak_memory() / 1e6,
            }
            window = {"ce": 0.0, "tokens": 0, "time": 0.0, "steps": 0}
        if row is not None:
            metrics.log(it, row)
            history.append({"step": it, **row})
            if on_step is not None:
                on_step(it, row)
            if settings.progress and (it % report_every == 0 or it == settings.total_steps):
                extra = f" S {row['S']:.4f} λ {row['lambda']:.3g}" if "S" in row else ""
                print(
                    f"step {it}/{settings.total_steps} loss {row['loss']:.4f}{extra}",
                    file=sys.stderr,
                    flush=True,
                )

        if valid_set is not None and (
            (settings.steps_per_eval and it % settings.steps_per_eval == 0)
            or it == settings.total_steps
        ):
            val_loss = evaluate(
                model,
                valid_set,
                batch_size=min(settings.batch_size, len(valid_set)),
                num_batches=settings.val_batches,
                max_seq_length=settings.max_seq_length,
                loss=masked_ce,
            )
            model.train()
            metrics.log(it, {"val_loss": val_loss})
            history.append({"step": it, "val_loss": val_loss})

        if it % settings.save_steps == 0 and it < settings.total_steps:
            save_checkpoint(
                checkpoints,
                it,
                dict(tree_flatten(model.trainable_parameters())),
                optimizer_tensors(optimizer),
                {
                    "tokens": tokens,
                    "train_time": train_time,
                    "scu": controller.state.model_dump() if controller is not None else None,
                },
                keep=settings.save_total_limit,
            )

    trained = settings.total_steps - start
    return LoopResult(
        steps=settings.total_steps,
        tokens=tokens,
        train_time=train_time,
        train_loss=ce_total / trained if trained else math.nan,
        val_loss=val_loss,
        resumed_from=resume.step if resume is not None else None,
        history=history,
    )
