"""Helpers for the export tests: a LoRA adapter trained with plain peft + torch, and
the CLI run in-process (the gguf env has no trl, and needs none for a few steps)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

CHAT_ROWS = [
    [
        {"role": "user", "content": "What comes after the thesis?"},
        {"role": "assistant", "content": "The antithesis, which attacks the thesis."},
    ],
    [
        {"role": "user", "content": "And after the antithesis?"},
        {"role": "assistant", "content": "The synthesis keeps what survives from both."},
    ],
    [
        {"role": "user", "content": "Name the three movements."},
        {"role": "assistant", "content": "THESIS, ANTITHESIS, SYNTHESIS."},
    ],
]


def train_lora(
    model_dir: Path,
    out_dir: Path,
    *,
    steps: int = 4,
    lr: float = 1e-3,
    random_init: bool = False,
    seed: int = 0,
    r: int = 8,
    alpha: int = 16,
) -> Path:
    """A PEFT LoRA adapter after ``steps`` AdamW steps on a few chat rows.

    ``random_init`` starts B from random values instead of zeros, so the adapter
    changes the logits a lot even after a couple of steps: a merge that dropped it
    would show.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
        target_modules=[
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
        init_lora_weights=not random_init,
    )
    model = get_peft_model(model, config)
    if random_init:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.05)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    batches = []
    for row in CHAT_ROWS:
        ids = tokenizer.apply_chat_template(row, tokenize=True, return_dict=True)["input_ids"]
        batches.append(torch.tensor([list(ids)]))
    for step in range(steps):
        ids = batches[step % len(batches)]
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def hegelion(*args: str | Path) -> Result:
    """``hegelion ...`` in-process, as the console script runs it (plugin commands too)."""
    from hegelion_core.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def read_report(out: Path) -> dict[str, Any]:
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def listing(path: Path) -> list[str]:
    """Every entry under ``path`` (relative), hidden ones included."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []
