"""The SCU controller alone: pure math, no backend."""

from __future__ import annotations

import math

import pytest

from hegelion_core.training.scu import (
    LN2,
    SCUConfig,
    SCUController,
    data_bpt,
    param_bpt,
    target_s_for,
)


def test_bits_per_token() -> None:
    assert data_bpt(LN2) == pytest.approx(1.0)
    # Σw² / (2σ²·N·ln2): 2e-4 / (2·1e-4·1000·ln2) = 1/(1000 ln2)
    assert param_bpt(2e-4, 0.01, 1000) == pytest.approx(1 / (1000 * LN2))


def test_defaults_match_the_design() -> None:
    c = SCUConfig()
    assert (
        c.kp,
        c.ki,
        c.deadband,
        c.i_max,
        c.lambda_min,
        c.lambda_max,
        c.leak,
        c.sigma,
        c.lambda_init,
    ) == (0.8, 0.15, 0.002, 0.2, 1e-4, 10.0, 0.995, 0.01, 1.0)


@pytest.mark.parametrize(
    ("params", "target"), [(0.135e9, 0.005), (1.5e9, 0.01), (8e9, 0.02), (70e9, 0.03)]
)
def test_target_by_model_size(params: float, target: float) -> None:
    assert target_s_for(params) == target
    assert SCUController(SCUConfig(), tokens_per_epoch=100, params=params).target == target


def ce_for_s(s: float, sum_w2: float, sigma: float, n: int) -> float:
    """The data loss (nats) at which S would equal ``s`` for this Σw²."""
    p = param_bpt(sum_w2, sigma, n)
    return p * (1 - s) / s * LN2


def test_lambda_rises_when_s_is_above_target() -> None:
    ctl = SCUController(SCUConfig(target_s=0.01), tokens_per_epoch=1000)
    before = ctl.lam
    ctl.update(ce_for_s(0.05, 1e-3, 0.01, 1000), 1e-3)
    assert ctl.state.s == pytest.approx(0.05) and ctl.lam > before


def test_lambda_falls_when_s_is_below_target() -> None:
    ctl = SCUController(SCUConfig(target_s=0.01), tokens_per_epoch=1000)
    ctl.update(ce_for_s(0.001, 1e-3, 0.01, 1000), 1e-3)
    assert ctl.lam < 1.0


def test_deadband_holds_lambda() -> None:
    ctl = SCUController(SCUConfig(target_s=0.01), tokens_per_epoch=1000)
    ctl.update(ce_for_s(0.0115, 1e-3, 0.01, 1000), 1e-3)
    assert ctl.lam == pytest.approx(1.0) and ctl.state.integral == pytest.approx(0.0)


def test_integral_leaks_clips_and_does_not_wind_up() -> None:
    cfg = SCUConfig(target_s=0.01, lambda_max=2.0)
    ctl = SCUController(cfg, tokens_per_epoch=1000)
    for _ in range(200):
        ctl.update(ce_for_s(0.9, 1e-3, 0.01, 1000), 1e-3)  # far above target: λ pins at max
    assert ctl.lam == 2.0
    assert abs(ctl.state.integral) <= cfg.i_max
    pinned = ctl.state.integral
    for _ in range(5):
        ctl.update(ce_for_s(0.9, 1e-3, 0.01, 1000), 1e-3)
    assert ctl.state.integral == pytest.approx(
        pinned * cfg.leak**5
    )  # frozen while saturated, only leaks
    steps = 0
    while ctl.lam >= 2.0 and steps < 100:
        ctl.update(ce_for_s(0.0001, 1e-3, 0.01, 1000), 1e-3)
        steps += 1
    # It leaves saturation once the EMA of S has crossed the target (~43 steps at
    # α=0.1 from 0.9) and the leaking integral has drained below the error term.
    assert ctl.lam < 2.0 and steps < 100


def test_penalty_weight_is_lambda_over_2_sigma2_n() -> None:
    ctl = SCUController(SCUConfig(sigma=0.02, lambda_init=0.5), tokens_per_epoch=4000)
    assert ctl.penalty_weight() == pytest.approx(0.5 / (2 * 0.02**2 * 4000))


def test_closed_loop_converges_into_the_deadband() -> None:
    """A toy plant: weights shrink when λ grows (w² ∝ 1/(1+κλ)), data loss fixed.
    S must settle within the deadband around the target."""
    cfg = SCUConfig(target_s=0.01)
    n, ce = 10_000, 2.0
    ctl = SCUController(cfg, tokens_per_epoch=n)
    base_w2 = 0.05  # S ≈ 0.2 at λ = 0 -> the controller must push λ up
    history = []
    for _ in range(800):
        sum_w2 = base_w2 / (1 + 40 * ctl.lam)
        ctl.update(ce, sum_w2)
        history.append(ctl.state.s_ema)
    assert all(abs(s - 0.01) <= cfg.deadband + 1e-4 for s in history[-100:])
    assert math.isfinite(ctl.lam) and cfg.lambda_min <= ctl.lam <= cfg.lambda_max


def test_metrics_names() -> None:
    ctl = SCUController(SCUConfig(), tokens_per_epoch=10)
    ctl.update(1.0, 1e-4)
    assert set(ctl.metrics()) == {"DataBPT", "ParamBPT", "S", "S_ema", "lambda", "S_target"}
