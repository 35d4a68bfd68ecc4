"""`score_with_full_logits` answers TRL's ``fused_lm_head=True`` calls exactly as TRL does.

The reference is TRL's own fused head on the same model and batch (its torch fallback,
this being a CPU): loss, per-token fields and LoRA gradients must match.
"""

from __future__ import annotations

from pathlib import Path

import peft
import pytest
import torch
from hegelion_trl.lm_head import score_with_full_logits
from transformers import AutoModelForCausalLM
from trl.trainer.utils import add_fused_lm_head

FIELDS = ("log_probs", "entropy", "is_top1", "label_mask")


def lora_model(tiny_model: Path) -> torch.nn.Module:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))  # what SFTTrainer does
    config = peft.LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    return peft.get_peft_model(model, config)


def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 500, (3, 24), generator=g)
    mask = torch.ones_like(ids)
    mask[2, 18:] = 0  # a padded row
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :6] = -100  # the prompt is not trained
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def run(
    model: torch.nn.Module, inputs: dict[str, torch.Tensor], **kw
) -> tuple[object, list[torch.Tensor]]:
    model.zero_grad()
    out = model(**inputs, fused_lm_head=True, **kw)
    out.loss.backward()
    return out, [p.grad.clone() for p in model.parameters() if p.requires_grad]


@pytest.mark.parametrize("num_items_in_batch", [None, torch.tensor(50)])
def test_the_same_loss_fields_and_gradients_as_trls_fused_head(
    tiny_model: Path, num_items_in_batch
) -> None:
    model, inputs = lora_model(tiny_model), batch()
    want, want_grads = run(model, inputs, num_items_in_batch=num_items_in_batch)
    assert score_with_full_logits(model)  # a CPU: no Triton
    got, got_grads = run(model, inputs, num_items_in_batch=num_items_in_batch)

    torch.testing.assert_close(got.loss, want.loss, rtol=1e-5, atol=1e-6)
    for field in FIELDS:
        torch.testing.assert_close(
            getattr(got, field).float(),
            getattr(want, field).float(),
            rtol=1e-5,
            atol=1e-5,
            msg=field,
        )
    assert int(got.label_mask.sum()) == 18 + 18 + 12  # shifted labels: prompt and padding left out
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


def test_plain_calls_and_generation_are_left_alone(tiny_model: Path) -> None:
    model, inputs = lora_model(tiny_model), batch()
    before = model(**inputs).logits
    score_with_full_logits(model)
    torch.testing.assert_close(model(**inputs).logits, before)
    assert model.generate(inputs["input_ids"][:1, :6], max_new_tokens=3, do_sample=False).shape == (
        1,
        9,
    )


def test_heads_that_transform_their_logits_keep_trls_path(tiny_model: Path) -> None:
    model = lora_model(tiny_model)
    model.get_base_model().config.final_logit_softcapping = 30.0
    assert not score_with_full_logits(model)
    plain = AutoModelForCausalLM.from_pretrained(tiny_model)  # never patched by TRL
    assert not score_with_full_logits(plain)
