"""Full-logits scoring behind TRL's fused LM head, on devices without Triton.

TRL's SFTTrainer (1.16) calls the model with ``fused_lm_head=True``: the forward returns
per-token log-probabilities, entropy and top-1 hits instead of logits. On CUDA that runs
Triton kernels that never build the (batch, seq, vocab) logits. Elsewhere (a CPU, Apple's
MPS) TRL falls back to torch code that walks the vocabulary in 32k-wide tiles with a dozen
elementwise passes each, forward and backward. On a CPU with SmolLM2's 49k vocabulary that
made a step 3x slower than transformers' own loss (`benchmarks/train_throughput.py
--vocab 49152`). There, `score_with_full_logits` answers the same call from full logits,
as a plain transformers loop does: the same loss and the same fields, so everything TRL
does around it (loss scaling, metrics, sequence parallelism) is unchanged.

Vision-language models, models whose head transforms the logits (softcapping, logit
scales) or adds a router loss, and heads sharded as DTensors keep TRL's own path.
"""

from __future__ import annotations

import types
from typing import Any

import torch

try:
    from torch.distributed.tensor import DTensor as _DTensor
except ImportError:  # a torch without distributed
    _DTensor = ()

#: Config fields that change the logits after the head; any of them keeps TRL's path.
_LOGIT_TRANSFORMS = (
    "final_logit_softcapping",
    "logit_scale",
    "output_multiplier",
    "lm_head_multiplier",
    "logits_scaling",
)


def score_with_full_logits(model: Any) -> bool:
    """Route ``model``'s ``fused_lm_head=True`` calls through full logits when its head is
    on a device without Triton. ``model`` is the one TRL patched with
    ``add_fused_lm_head`` (PEFT's base model under a LoRA). Returns whether it did."""
    try:
        from trl.kernels.chunked_logprob import _use_triton
        from trl.trainer.utils import FusedCausalLMOutput
    except ImportError:  # another TRL: its own path, whatever it is
        return False
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    fused = base.__dict__.get("forward")  # TRL sets an instance attribute
    text_config = base.config.get_text_config()
    head = base.get_output_embeddings()
    if (
        fused is None
        or head is None
        or _use_triton(head.weight.device)
        or text_config is not base.config  # vision-language models: TRL's path knows their backbone
        or any(getattr(text_config, name, None) is not None for name in _LOGIT_TRANSFORMS)
        or getattr(text_config, "output_router_logits", False)
    ):
        return False

    def forward(
        self: Any,
        *args: Any,
        fused_lm_head: bool = False,
        labels: Any = None,
        shift_labels: Any = None,
        num_items_in_batch: Any = None,
        **kwargs: Any,
    ) -> Any:
        head = self.get_output_embeddings()
        if not fused_lm_head or isinstance(head.weight, _DTensor):  # FSDP2 shards: TRL gathers them
            return fused(
                *args,
                fused_lm_head=fused_lm_head,
                labels=labels,
                shift_labels=shift_labels,
                num_items_in_batch=num_items_in_batch,
                **kwargs,
            )
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state
        if shift_labels is None:
            hidden, labels = hidden[:, :-1], labels[:, 1:]
        else:
            labels = shift_labels
        hidden, labels = hidden.to(head.weight.device), labels.to(head.weight.device)
        mask = labels != -100
        logits = head(hidden).float()
        nll, entropy, is_top1 = _FullVocabScore.apply(logits.flatten(0, -2), labels.flatten())
        log_probs, entropy, is_top1 = (
            -nll.view_as(labels),
            entropy.view_as(labels),
            is_top1.view_as(labels),
        )
        count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return FusedCausalLMOutput(
            loss=-log_probs.sum() / count,
            log_probs=log_probs,
            entropy=entropy,
            is_top1=is_top1,
            label_mask=mask,
        )

    base.forward = types.MethodType(forward, base)
    return True


class _FullVocabScore(torch.autograd.Function):
    """Per-token NLL, entropy and top-1 hit from (tokens, vocab) logits in one softmax.

    A row's softmax gives all three (entropy = logsumexp(z) - sum(p * z)), and it is the
    only thing the backward needs: d NLL / dz = p - onehot(label). So logging the entropy
    costs one dot product a row, where a separate pass (what TRL's SFT logs every step)
    cost a quarter of a CPU step at a 49k vocabulary. The softmax is kept as exp(z - max)
    and its row sums, never divided out in place, which saves one pass over the logits.
    Rows go ``ROWS`` at a time so the temporaries stay small. Ignored labels (-100) get
    zeros; entropy and hits carry no gradient (TRL's SFT only logs them)."""

    ROWS = 512

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        valid, targets = labels != -100, labels.clamp(min=0)
        exps = torch.empty_like(logits)  # exp(z - max), not normalised: one pass fewer
        totals = logits.new_empty((logits.shape[0], 1))
        nll, entropy = logits.new_empty(labels.shape), logits.new_empty(labels.shape)
        top1 = torch.empty(labels.shape, dtype=torch.bool, device=logits.device)
        for start in range(0, logits.shape[0], _FullVocabScore.ROWS):
            rows = slice(start, start + _FullVocabScore.ROWS)
            z, e = logits[rows], exps[rows]
            peak, best = z.max(-1, keepdim=True)  # the max and the argmax in one pass
            torch.sub(z, peak, out=e).exp_()
            total = totals[rows] = e.sum(-1, keepdim=True)
            lse = (peak + total.log()).squeeze(-1)
            dots = torch.bmm(e.unsqueeze(1), z.unsqueeze(-1)).view(
                -1
            )  # BLAS: half of vecdot's time
            entropy[rows] = lse - dots / total.squeeze(-1)
            nll[rows] = lse - z.gather(-1, targets[rows].unsqueeze(-1)).squeeze(-1)
            top1[rows] = best.squeeze(-1) == labels[rows]
        nll.masked_fill_(~valid, 0.0)
        entropy.masked_fill_(~valid, 0.0)
        top1 &= valid
        ctx.save_for_backward(exps, totals, targets, valid)
        ctx.mark_non_differentiable(entropy, top1)
        return nll, entropy, top1

    @staticmethod
    def backward(ctx: Any, grad_nll: torch.Tensor, *_: Any) -> tuple[torch.Tensor | None, None]:
        exps, totals, targets, valid = ctx.saved_tensors
        scale = (grad_nll * valid).unsqueeze(-1)
        grad = exps * (scale / totals)  # softmax times the incoming gradient
        grad.scatter_add_(-1, targets.unsqueeze(-1), -scale)
        return grad, None
