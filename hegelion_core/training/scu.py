"""The Shannon Control Unit: adaptive LoRA regularisation, as pure math.

SCU treats fine-tuning as a two-part code: the bits the model spends describing
the data (DataBPT) and the bits spent describing its LoRA weights (ParamBPT). It
steers the share of parameter bits, S = ParamBPT / (DataBPT + ParamBPT), toward a
target S* by scaling the weight penalty λ with a PI controller.

    DataBPT  = CE / ln 2                               (CE in nats per token)
    ParamBPT = Σ w² / (2 σ² N ln 2)                    (N: tokens per epoch)
    penalty  = λ · Σ w² / (2 σ² N)                     (nats per token, in the loss)

The penalty must be part of the differentiable loss (`penalty_weight` gives the
factor to multiply Σw² by inside the backend's graph). The public SCU trainers
computed it from ``.item()`` floats, so it never reached the gradients and λ did
nothing. This module never touches tensors: backends compute Σw² and CE, call
`SCUController.update`, and add ``penalty_weight() * sum_w2`` to their loss.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

LN2 = math.log(2.0)


def target_s_for(params: float) -> float:
    """Automatic target S by model size (parameters): bigger models get more room."""
    if params < 0.2e9:
        return 0.005
    if params < 4e9:
        return 0.01
    if params < 10e9:
        return 0.02
    return 0.03


class SCUConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_s: float | None = Field(None, gt=0, lt=1)  # None: from model size
    kp: float = 0.8
    ki: float = 0.15
    deadband: float = Field(0.002, ge=0)
    i_max: float = Field(0.2, gt=0)  # the integral term stays within ±i_max
    lambda_min: float = Field(1e-4, gt=0)
    lambda_max: float = Field(10.0, gt=0)
    leak: float = Field(0.995, gt=0, le=1)
    ema_alpha: float = Field(0.1, gt=0, le=1)
    sigma: float = Field(0.01, gt=0)  # prior std of the LoRA weights
    lambda_init: float = Field(1.0, gt=0)


def data_bpt(ce_nats: float) -> float:
    return ce_nats / LN2


def param_bpt(sum_w2: float, sigma: float, tokens_per_epoch: int) -> float:
    return sum_w2 / (2 * sigma**2 * tokens_per_epoch * LN2)


class SCUState(BaseModel):
    step: int = 0
    lam: float
    integral: float = 0.0
    s_ema: float | None = None
    s: float = 0.0
    data_bpt: float = 0.0
    param_bpt: float = 0.0


class SCUController:
    """PI control of λ on the EMA of S, with a leaky, clipped integral that does not
    wind up while λ is saturated, and a deadband around the target."""

    def __init__(
        self, config: SCUConfig, *, tokens_per_epoch: int, params: float | None = None
    ) -> None:
        if tokens_per_epoch <= 0:
            raise ValueError("tokens_per_epoch must be positive")
        self.config = config
        self.tokens_per_epoch = tokens_per_epoch
        target = config.target_s if config.target_s is not None else target_s_for(params or 1e9)
        self.target = target
        self.state = SCUState(
            lam=min(max(config.lambda_init, config.lambda_min), config.lambda_max)
        )

    @property
    def lam(self) -> float:
        return self.state.lam

    def penalty_weight(self) -> float:
        """Multiply Σw² by this inside the differentiable loss: λ / (2σ²N), nats per token."""
        return self.state.lam / (2 * self.config.sigma**2 * self.tokens_per_epoch)

    def measure(self, ce_nats: float, sum_w2: float) -> tuple[float, float, float]:
        d = data_bpt(ce_nats)
        p = param_bpt(sum_w2, self.config.sigma, self.tokens_per_epoch)
        return d, p, p / (d + p) if d + p > 0 else 0.0

    def update(self, ce_nats: float, sum_w2: float) -> SCUState:
        """Feed one step's data loss (nats/token) and Σw² of the LoRA weights; returns
        the new state, whose ``lam`` applies to the next step."""
        cfg, st = self.config, self.state
        d, p, s = self.measure(ce_nats, sum_w2)
        st.s_ema = s if st.s_ema is None else (1 - cfg.ema_alpha) * st.s_ema + cfg.ema_alpha * s
        error = st.s_ema - self.target
        if abs(error) <= cfg.deadband:
            error = 0.0
        saturated_high = st.lam >= cfg.lambda_max and error > 0
        saturated_low = st.lam <= cfg.lambda_min and error < 0
        integral = st.integral * cfg.leak
        if not (saturated_high or saturated_low):  # anti-windup: freeze while pinned
            integral += cfg.ki * error
        integral = max(-cfg.i_max, min(cfg.i_max, integral))
        lam = st.lam * math.exp(cfg.kp * error + integral)
        st.lam = max(cfg.lambda_min, min(cfg.lambda_max, lam))
        st.integral = integral
        st.step += 1
        st.s, st.data_bpt, st.param_bpt = s, d, p
        return st.model_copy()

    def metrics(self) -> dict[str, float]:
        """What the earlier trainer printed each step."""
        st = self.state
        return {
            "DataBPT": st.data_bpt,
            "ParamBPT": st.param_bpt,
            "S": st.s,
            "S_ema": st.s_ema or 0.0,
            "lambda": st.lam,
            "S_target": self.target,
        }
