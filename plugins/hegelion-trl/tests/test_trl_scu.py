"""SCU inside the TRL loss: the penalty has a gradient, λ follows S, S settles in
the deadband, metrics every step, and a resumed run continues λ."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
import torch
from hegelion_trl.engine import build_trainer
from hegelion_trl.scu import SCURegularizer, lora_weights
from hegelion_trl.trainer import TRLTrainer
from trl_helpers import read_jsonl, train_config

from hegelion_core.training.scu import SCUConfig, SCUController


def test_penalty_reaches_the_lora_gradients(
    hegelion_dataset: Callable[..., Path], tiny_model: Path, tmp_path: Path
) -> None:
    """Through the trainer's own compute_loss: with SCU, each LoRA weight's gradient
    gains exactly 2·λ/(2σ²N)·w. (PEFT starts lora_B at zero, so without SCU lora_A's
    gradient is exactly zero: any gradient there comes from the penalty.)"""
    built = build_trainer(
        hegelion_dataset("chat"), tmp_path, train_config(tiny_model, scu={"lambda_init": 5.0})
    )
    trainer, scu = built.trainer, built.scu
    assert scu is not None
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    model = trainer.model
    model.train()

    def grads(regularizer: SCURegularizer | None) -> dict[str, torch.Tensor]:
        trainer.hegelion_scu = regularizer
        model.zero_grad()
        trainer.compute_loss(model, dict(batch)).backward()
        return {n: p.grad.detach().clone() for n, p in model.named_parameters() if "lora_" in n}

    plain, with_scu = grads(None), grads(scu)
    weight = scu.controller.penalty_weight()
    assert weight > 0
    named = dict(model.named_parameters())
    a_names = [n for n in plain if "lora_A" in n]
    assert a_names and all(torch.count_nonzero(plain[n]) == 0 for n in a_names)
    for name in plain:
        torch.testing.assert_close(
            with_scu[name] - plain[name], 2 * weight * named[name].detach(), rtol=1e-4, atol=1e-9
        )
    assert any(torch.count_nonzero(with_scu[n]) > 0 for n in a_names)


def test_penalty_counts_once_per_step_under_gradient_accumulation() -> None:
    """Split over micro-batches either way the trainer scales losses, the penalty's
    gradient over one optimizer step is one penalty's gradient."""
    w = torch.nn.Parameter(torch.tensor([0.5, -2.0]))
    for share in (True, False):
        controller = SCUController(
            SCUConfig(target_s=0.1, lambda_init=3.0, sigma=0.5), tokens_per_epoch=10
        )
        expected = 2 * controller.penalty_weight() * w.detach()
        reg = SCURegularizer(controller)
        w.grad = None
        for _ in range(4):  # a mean CE of 1.0: a quarter per micro-batch, or 1.0 each then /4
            ce = torch.tensor(0.25 if share else 1.0)
            loss = reg.add_penalty(ce, [w], micro_steps=4, loss_is_step_share=share)
            (loss if share else loss / 4).backward()  # what Trainer.training_step does
        torch.testing.assert_close(w.grad, expected)
        reg.end_step()
        assert controller.state.data_bpt == pytest.approx(1.0 / math.log(2))  # the step's mean CE


@pytest.mark.parametrize(("sigma", "direction"), [(0.001, "rises"), (100.0, "falls")])
def test_lambda_follows_s(
    hegelion_dataset: Callable[..., Path],
    tiny_model: Path,
    tmp_path: Path,
    sigma: float,
    direction: str,
) -> None:
    """A tight prior (small σ) prices the weights high: S above target, λ rises. A
    loose one makes S tiny: λ falls. Logged every step with DataBPT and ParamBPT."""
    config = train_config(
        tiny_model, scu={"sigma": sigma, "lambda_init": 1.0}, training={"max_steps": 3}
    )
    result = TRLTrainer().train(hegelion_dataset("chat"), tmp_path, config)
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert {"DataBPT", "ParamBPT", "S", "lambda", "loss", "lr"} <= set(row)
        assert row["S_target"] == 0.005  # automatic: a model under 0.2B parameters
    lambdas = [1.0] + [r["lambda"] for r in rows]
    if direction == "rises":
        assert all(r["S"] > 0.5 for r in rows)
        assert all(b > a for a, b in pairwise(lambdas))
    else:
        assert all(r["S"] < 0.001 for r in rows)
        assert all(b < a for a, b in pairwise(lambdas))
    assert result.metrics["scu_lambda"] == pytest.approx(rows[-1]["lambda"])


class _Ridge(torch.nn.Module):
    """A linear map named like a LoRA weight: the smallest model SCU can steer."""

    def __init__(self) -> None:
        super().__init__()
        self.lora_w = torch.nn.Parameter(torch.zeros(8, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.lora_w.T


def test_s_settles_in_the_deadband_on_a_toy_model() -> None:
    """The trainer's code path (add_penalty into the loss, end_step after the
    optimizer step) on a ridge regression: S starts far off and stays inside
    target ± deadband. The gains are gentler than the defaults: on a model this fast
    to respond, the default ki=0.15 compounds into λ every step and S cycles."""
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = x @ torch.randn(8, 8).T + 0.5 * torch.randn(256, 8)
    model = _Ridge()
    config = SCUConfig(
        target_s=0.5,
        deadband=0.02,
        sigma=math.sqrt(8 / 256),
        kp=0.3,
        ki=0.03,
        ema_alpha=1.0,
        leak=0.9,
    )
    reg = SCURegularizer(SCUController(config, tokens_per_epoch=256))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    weights = lora_weights(model)
    s_ema = []
    for _ in range(200):
        loss = reg.add_penalty(torch.nn.functional.mse_loss(model(x), y), weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        state = reg.end_step()
        assert state is not None
        s_ema.append(state.s_ema)
    assert abs(s_ema[0] - 0.5) > 0.4  # started far from the target
    assert all(abs(s - 0.5) <= 0.02 for s in s_ema[-60:]), s_ema[-60:]


def test_resume_continues_lambda(
    hegelion_dataset: Callable[..., Path], tiny_model: Path, tmp_path: Path
) -> None:
    """The controller's state rides in each checkpoint; a run resumed from step 2
    computes step 3's λ from the saved state, exactly as the uninterrupted run did."""
    config = train_config(
        tiny_model, scu={"lambda_max": 1000.0}, training={"max_steps": 4, "save_steps": 2}
    )
    TRLTrainer().train(hegelion_dataset("chat"), tmp_path, config)
    full = read_jsonl(tmp_path / "metrics.jsonl")
    lambdas = [r["lambda"] for r in full]
    assert all(b > a for a, b in pairwise(lambdas))  # still moving: a restart would show

    shutil.rmtree(tmp_path / "checkpoints" / "checkpoint-4")  # as if killed before it was saved
    result = TRLTrainer().train(
        hegelion_dataset("chat"), tmp_path, config.model_copy(update={"resume": True})
    )
    resumed = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    assert resumed[:2] == full[:2]
    for got, want in zip(resumed[2:], full[2:], strict=True):
        assert got["lambda"] == pytest.approx(want["lambda"], rel=1e-5)
        assert got["S"] == pytest.approx(want["S"], rel=1e-4)
    assert result.metrics["steps"] == 4
