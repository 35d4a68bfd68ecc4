"""Hegelion's chat and DPO output trains, as written, in TRL's own trainers.

A formatter can emit rows that look right and still fail at the consumer: a key
TRL does not read, a prompt that eats the whole window, a chat template TRL
cannot mask. Each test runs the real CLI, hands its file to the TRL trainer with
a LoRA adapter on a tiny random model, trains one CPU step, and checks that the
step really happened: the adapter moved and the loss is a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import orjson
import peft
import pytest
import torch
import trl
from transformers import AutoTokenizer

Dataset = Callable[..., Path]

MAX_LENGTH = 256


def _lora() -> Any:
    """A small LoRA on attention; no dropout so the step is deterministic."""
    return peft.LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=["q_proj", "v_proj"],
        task_type="CAUSAL_LM",
    )


def _cpu_args(tmp_path: Path) -> dict[str, Any]:
    """TrainingArguments that one CPU step needs under TRL 1.16 / transformers 5.

    TRL defaults to bf16 and gradient checkpointing; transformers 5 calls the
    latter `activation_checkpointing` (the old name is a deprecated alias, and
    TRL's default True would flow through it if the new name were left unset).
    """
    return dict(
        output_dir=str(tmp_path / "run"),
        max_steps=1,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        learning_rate=1e-2,
        logging_steps=1,
        use_cpu=True,
        bf16=False,
        fp16=False,
        activation_checkpointing=False,
        report_to=[],
        save_strategy="no",
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=0,
        max_length=MAX_LENGTH,
    )


def _first_lora_b(model: torch.nn.Module) -> tuple[str, torch.Tensor]:
    for name, param in model.named_parameters():
        if "lora_B" in name:
            return name, param
    raise AssertionError("the trainer's model has no LoRA adapter (lora_B) at all")


def _train_one_step(trainer: Any) -> None:
    """Train one step and assert it really trained the adapter."""
    name, lora_b = _first_lora_b(trainer.model)
    before = lora_b.detach().clone()
    # PEFT initialises lora_B to zero, so any real update makes it non-zero.
    assert torch.count_nonzero(before) == 0, f"{name} should start at zero"

    result = trainer.train()

    assert trainer.state.global_step == 1
    after = dict(trainer.model.named_parameters())[name].detach()
    assert torch.count_nonzero(after) > 0, f"{name} did not change: no gradient reached the adapter"
    assert not torch.equal(before, after)
    assert math.isfinite(result.training_loss), result
    logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert logged and all(math.isfinite(x) for x in logged), trainer.state.log_history


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL file, as the trainers will see them."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _assistant_texts(messages: list[dict[str, str]]) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "assistant"]


@pytest.mark.parametrize("model_fixture", ["tiny_model", "tiny_qwen2"])
def test_chat_output_trains_in_sft_trainer(
    hegelion_dataset: Dataset,
    sample_traces: Path,
    model_fixture: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    # Qwen2 too: transformers reloads its tokenizer as `Qwen2Tokenizer`, a different
    # class from the one saved, and the generation markers must survive that.
    model_dir: Path = request.getfixturevalue(model_fixture)
    rows = read_rows(hegelion_dataset("chat"))
    assert len(rows) == len(read_rows(sample_traces)), "one chat row per trace"
    assert all(set(row) == {"messages"} for row in rows), rows[0].keys()
    assert all(_assistant_texts(row["messages"]) for row in rows)

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dataset = datasets.Dataset.from_list(rows)
    config = trl.SFTConfig(**_cpu_args(tmp_path), assistant_only_loss=True)
    trainer = trl.SFTTrainer(
        model=str(model_dir),
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=_lora(),
    )

    # The {% generation %} markers reached TRL: every row keeps some assistant
    # tokens in the loss and masks the system and user turns out of it.
    prepared = trainer.train_dataset
    assert len(prepared) == len(rows), "TRL dropped formatted rows"
    for example in prepared:
        labels = example["labels"]
        assert -100 in labels, "prompt tokens are not masked: assistant_only_loss had no effect"
        trained = tokenizer.decode([t for t in labels if t != -100])
        assert trained.endswith(tokenizer.eos_token), "the end-of-turn token is not trained"

    first_answer = _assistant_texts(rows[0]["messages"])[0]
    trained_first = tokenizer.decode([t for t in prepared[0]["labels"] if t != -100])
    assert first_answer[:40] in trained_first

    _train_one_step(trainer)


@pytest.mark.parametrize(
    ("extra_args", "rows_per_trace"),
    [
        pytest.param((), 1, id="default"),
        pytest.param(("--rejected", "both"), 2, id="rejected-both"),
    ],
)
def test_dpo_output_trains_in_dpo_trainer(
    hegelion_dataset: Dataset,
    sample_traces: Path,
    tiny_model: Path,
    tmp_path: Path,
    extra_args: tuple[str, ...],
    rows_per_trace: int,
) -> None:
    rows = read_rows(hegelion_dataset("dpo", *extra_args))
    assert len(rows) == rows_per_trace * len(read_rows(sample_traces))
    for row in rows:
        assert {"prompt", "chosen", "rejected"} <= set(row)
        assert all(isinstance(row[k], str) for k in ("prompt", "chosen", "rejected")), row
        assert row["chosen"] != row["rejected"]

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    trainer = trl.DPOTrainer(
        model=str(tiny_model),
        ref_model=None,  # with a LoRA, the adapter-disabled base is the reference
        args=trl.DPOConfig(**_cpu_args(tmp_path)),
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=_lora(),
    )
    prepared = trainer.train_dataset
    assert len(prepared) == len(rows), "TRL dropped rows whose prompt fills max_length"
    # Plain strings get no chat template; TRL closes each completion with EOS itself.
    assert prepared[0]["chosen_ids"][-1] == tokenizer.eos_token_id
    assert tokenizer.decode(prepared[0]["prompt_ids"]) == rows[0]["prompt"]
    _train_one_step(trainer)
    assert any("rewards/chosen" in entry for entry in trainer.state.log_history)


def test_conversational_dpo_output_trains_in_dpo_trainer(
    hegelion_dataset: Dataset, sample_traces: Path, tiny_model: Path, tmp_path: Path
) -> None:
    rows = read_rows(hegelion_dataset("dpo", "--conversational"))
    assert len(rows) == len(read_rows(sample_traces))
    for row in rows:
        assert isinstance(row["prompt"], list) and row["prompt"][-1]["role"] == "user", row[
            "prompt"
        ]
        assert [m["role"] for m in row["chosen"]] == ["assistant"], row["chosen"]
        assert [m["role"] for m in row["rejected"]] == ["assistant"], row["rejected"]
        assert row["chosen"] != row["rejected"]

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    trainer = trl.DPOTrainer(
        model=str(tiny_model),
        ref_model=None,
        args=trl.DPOConfig(**_cpu_args(tmp_path)),
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=_lora(),
    )
    prepared = trainer.train_dataset
    assert len(prepared) == len(rows), "TRL dropped rows whose prompt fills max_length"
    # The chat template was applied: the prompt ends by opening the assistant turn,
    # and the chosen completion ends by closing it.
    prompt_text = tokenizer.decode(prepared[0]["prompt_ids"])
    assert prompt_text.endswith("<|im_start|>assistant\n"), prompt_text[-60:]
    assert tokenizer.decode(prepared[0]["chosen_ids"]).rstrip().endswith(tokenizer.eos_token)
    _train_one_step(trainer)
