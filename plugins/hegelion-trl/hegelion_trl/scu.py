"""The Shannon Control Unit inside a torch loss.

`hegelion_core.training.scu.SCUController` is the pure math (it never sees a tensor). This
module is the torch half: it adds ``λ / (2σ²N) · Σw²`` over the LoRA weights to the
cross-entropy *tensor*, so the penalty has a gradient (the earlier public SCU
trainers added it as a float, and λ did nothing), and feeds the step's measured CE
and Σw² back to the controller after the optimizer step, which sets λ for the next
step. The TRL trainer and the tests' toy module use this same code path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from hegelion_core import SCUController, SCUState


def lora_weights(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The trainable LoRA matrices (``lora_A``/``lora_B``): the weights SCU prices."""
    return [p for name, p in model.named_parameters() if p.requires_grad and "lora_" in name]


def sum_of_squares(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """Σw² in float32, differentiable (bf16 weights would lose the small terms)."""
    total: torch.Tensor | None = None
    for p in params:
        term = p.float().pow(2).sum()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("SCU found no trainable LoRA weights (parameters named lora_*)")
    return total


class SCURegularizer:
    """Adds the SCU penalty to each micro-batch's loss and updates λ once per step."""

    def __init__(self, controller: SCUController) -> None:
        self.controller = controller
        self._ce: torch.Tensor | None = None  # the step's mean CE, accumulated over micro-batches
        self._sum_w2: torch.Tensor | None = None

    def add_penalty(
        self,
        loss: torch.Tensor,
        params: list[torch.nn.Parameter],
        *,
        micro_steps: int = 1,
        loss_is_step_share: bool = True,
    ) -> torch.Tensor:
        """``loss`` plus this micro-batch's share of the penalty, still differentiable.

        ``loss_is_step_share``: the micro-batch losses already sum to the step's mean
        CE (the trainer normalised by the step's token count), so the penalty is split
        over ``micro_steps`` too. Otherwise ``loss`` is a micro-batch mean that the
        caller divides by ``micro_steps`` afterwards, and the penalty rides along.
        """
        sum_w2 = sum_of_squares(params)
        penalty = self.controller.penalty_weight() * sum_w2
        ce_part = loss.detach() if loss_is_step_share else loss.detach() / micro_steps
        self._ce = ce_part if self._ce is None else self._ce + ce_part
        self._sum_w2 = sum_w2.detach()
        return loss + (penalty / micro_steps if loss_is_step_share else penalty)

    def end_step(
        self, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> SCUState | None:
        """After the optimizer step: feed CE (averaged over ranks by ``reduce``) and Σw²
        to the controller. Returns the new state, or None when no micro-batch ran."""
        if self._ce is None or self._sum_w2 is None:
            return None
        ce = reduce(self._ce) if reduce is not None else self._ce
        state = self.controller.update(float(ce), float(self._sum_w2))
        self._ce = None
        return state

    def metrics(self) -> dict[str, float]:
        return self.controller.metrics()

    def state_dict(self) -> dict[str, Any]:
        return {
            "controller": self.controller.state.model_dump(mode="json"),
            "target": self.controller.target,
            "tokens_per_epoch": self.controller.tokens_per_epoch,
        }

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Continue λ, the integral and the EMA where a checkpoint left them."""
        self.controller.state = SCUState.model_validate(data["controller"])
