"""A training run teaches the trace format: before, the model's greedy answers are
not dialectic traces; after an overfit SFT run, they parse."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from hegelion_trl.trainer import TRLTrainer
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl_helpers import TRACES, train_config

from hegelion_core.data.parsing import parse_trace
from hegelion_core.records import DEFAULT_SYSTEM


def greedy_answers(model_dir: Path, tokenizer_dir: Path) -> list[str]:
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    answers = []
    for question, *_ in TRACES:
        messages = [
            {"role": "system", "content": DEFAULT_SYSTEM},
            {"role": "user", "content": question},
        ]
        ids = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"]
        with torch.no_grad():
            out = model.generate(
                ids,
                max_new_tokens=96,
                do_sample=False,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        answers.append(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
    return answers


def test_sft_teaches_the_trace_format(
    hegelion_dataset: Callable[..., Path], tiny_model: Path, tmp_path: Path
) -> None:
    before = greedy_answers(tiny_model, tiny_model)
    assert sum(parse_trace(a).ok for a in before) <= 1, before[:2]

    # Full batch, 100 steps: the tiny model's tied embeddings (std 0.02) under a final
    # RMSNorm cap its logits near 1, so only the argmax can be learned, and LoRA on the
    # linear layers needs about 90 full-batch steps to pin it down (60 of batch 4 do not).
    config = train_config(
        tiny_model,
        merge=True,
        training={
            "max_steps": 100,
            "learning_rate": 1e-2,
            "per_device_train_batch_size": len(TRACES),
        },
        lora={"r": 16, "lora_alpha": 32, "target_modules": "all-linear"},
    )
    result = TRLTrainer().train(hegelion_dataset("chat"), tmp_path, config)
    assert result.merged_dir is not None

    after = greedy_answers(result.merged_dir, result.merged_dir)
    parsed = [parse_trace(a) for a in after]
    misses = [a[:120] for a, p in zip(after, parsed, strict=True) if not p.ok]
    assert sum(p.ok for p in parsed) >= 9, misses
    # Not just the shape: the trained dialectic itself, prompt by prompt.
    assert sum(p.ok and p.synthesis == s for p, (*_, s) in zip(parsed, TRACES, strict=True)) >= 8
