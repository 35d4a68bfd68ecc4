"""SCU on MLX: the penalty is in the gradients, λ follows S, S is steered to its target."""

from __future__ import annotations

import types
from itertools import pairwise
from pathlib import Path
from typing import Any

import mlx.core as mx
import pytest
from hegelion_mlx import loop
from hegelion_mlx.trainer import MLXSCUTrainer
from mlx import nn
from mlx.utils import tree_flatten
from mlx_testutil import read_jsonl, train_config


@pytest.fixture(scope="module")
def lora_model_and_batch(tiny_model: Path, mlx_data: Path) -> tuple[nn.Module, Any]:
    """The tiny model with LoRA on q/k/v/o, ``lora_b`` made non-zero, and one real batch."""
    from mlx_lm.tuner.datasets import CacheDataset, load_dataset
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load

    mx.random.seed(0)
    model, tokenizer = load(str(tiny_model))
    model.freeze()
    linear_to_lora_layers(
        model,
        -1,
        {"rank": 4, "scale": 2.0, "dropout": 0.0, "keys": ["self_attn.q_proj", "self_attn.v_proj"]},
    )
    for _, module in model.named_modules():
        if hasattr(module, "lora_b"):
            module.lora_b = mx.random.normal(module.lora_b.shape) * 0.05
    train, _, _ = load_dataset(
        types.SimpleNamespace(data=str(mlx_data), train=True, test=False, mask_prompt=True),
        tokenizer,
    )
    batch = next(loop.iterate_batches(CacheDataset(train), 4, 512, seed=0))
    return model, batch


def grads(model: nn.Module, batch: Any, weight: float) -> tuple[dict[str, mx.array], float, float]:
    (_, ce, _, sw2), g = nn.value_and_grad(model, loop.scu_loss)(model, *batch, mx.array(weight))
    return dict(tree_flatten(g)), ce.item(), sw2.item()


def test_penalty_gradient_reaches_every_lora_weight(
    lora_model_and_batch: tuple[nn.Module, Any],
) -> None:
    model, batch = lora_model_and_batch
    g0, ce0, sw2 = grads(model, batch, 0.0)
    g1, ce1, sw2_again = grads(model, batch, 0.5)
    params = dict(tree_flatten(model.trainable_parameters()))
    assert set(g0) == set(params) and len(params) == 2 * 2 * 2  # 2 blocks x (q, v) x (A, B)
    assert ce0 == pytest.approx(ce1) and sw2 == pytest.approx(sw2_again)
    assert sw2 == pytest.approx(sum(float((w * w).sum()) for w in params.values()), rel=1e-5)
    for name, w in params.items():
        diff = g1[name] - g0[name]
        assert float(mx.abs(diff).max()) > 1e-4, f"the penalty does not reach {name}"
        # d/dw (0.5 · Σw²) = w: exactly the penalty's share of the gradient.
        assert mx.allclose(diff, 2 * 0.5 * w, atol=1e-6, rtol=1e-4), name


def test_plain_loss_has_no_penalty(lora_model_and_batch: tuple[nn.Module, Any]) -> None:
    model, batch = lora_model_and_batch
    (loss, ce, ntoks, _), g = nn.value_and_grad(model, loop.plain_loss)(
        model, *batch, mx.array(0.5)
    )
    g0, ce0, _ = grads(model, batch, 0.0)
    assert loss.item() == ce.item() == pytest.approx(ce0)
    assert ntoks.item() > 0
    for name, value in tree_flatten(g):
        assert mx.allclose(value, g0[name], atol=1e-7), name


def test_loss_masks_the_prompt_and_the_padding(lora_model_and_batch: tuple[nn.Module, Any]) -> None:
    """Trained targets are offset <= t < length: not the prompt, and (unlike mlx-lm
    0.32's default_loss) not the pad after the last token."""
    from mlx_lm.tuner.trainer import default_loss

    model, (batch, lengths) = lora_model_and_batch
    _, ntoks = loop.masked_ce(model, batch, lengths)
    offsets, lens = lengths[:, 0], lengths[:, 1]
    assert ntoks.item() == int(mx.sum(lens - offsets).item())
    _, theirs = default_loss(model, batch, lengths)
    assert theirs.item() == ntoks.item() + batch.shape[0], "mlx-lm counts one padded target per row"


def scu_run(
    tiny_model: Path, mlx_data: Path, out: Path, steps: int, **scu: float
) -> list[dict[str, Any]]:
    config = train_config(tiny_model, scu=scu, training={"max_steps": steps})
    MLXSCUTrainer({"progress": False, "steps_per_eval": 0}).train(mlx_data, out, config)
    return [r for r in read_jsonl(out / "metrics.jsonl") if "S" in r]


@pytest.mark.parametrize(("sigma", "direction"), [(1e-3, "rises"), (100.0, "falls")])
def test_lambda_follows_s(
    tiny_model: Path, mlx_data: Path, tmp_path: Path, sigma: float, direction: str
) -> None:
    """A tight prior (small σ) makes the weights expensive: S above target, λ rises.
    A loose one makes them free: S below target, λ falls."""
    rows = scu_run(tiny_model, mlx_data, tmp_path, 3, sigma=sigma, target_s=0.01)
    lambdas = [1.0] + [r["lambda"] for r in rows]  # lambda_init, then after each step
    if direction == "rises":
        assert all(r["S"] > 0.5 for r in rows)
        assert all(b > a for a, b in pairwise(lambdas)), lambdas
    else:
        assert all(r["S"] < 0.001 for r in rows)
        assert all(b < a for a, b in pairwise(lambdas)), lambdas


def test_s_converges_to_its_target_and_only_because_of_lambda(
    tiny_model: Path, mlx_data: Path, tmp_path: Path
) -> None:
    """σ chosen so S starts near 5x the target. With SCU it comes down to the target's
    neighbourhood; with λ pinned near zero the same run drifts far above it."""
    target = 0.01
    steered = scu_run(tiny_model, mlx_data, tmp_path / "scu", 15, sigma=0.15, target_s=target)
    pinned = scu_run(
        tiny_model,
        mlx_data,
        tmp_path / "pinned",
        15,
        sigma=0.15,
        target_s=target,
        lambda_init=1e-6,
        lambda_min=1e-6,
        lambda_max=1e-6,
    )
    start = steered[0]["S"]
    assert start > 3 * target
    final = sum(r["S"] for r in steered[-3:]) / 3
    assert abs(final - target) < 0.25 * abs(start - target), [round(r["S"], 4) for r in steered]
    assert steered[-1]["lambda"] > 1.0, "S stayed above target, so λ must have grown"
    assert pinned[-1]["S"] > 10 * target, [round(r["S"], 4) for r in pinned]
