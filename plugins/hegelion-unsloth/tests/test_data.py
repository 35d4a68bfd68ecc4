"""Hegelion rows -> TRL rows, and what TRL (the version Unsloth pins) makes of them.

The row conversion is pure; the second half hands the converted rows and the mapped
arguments to the real ``trl.SFTTrainer``/``DPOTrainer`` on CPU, without Unsloth (it
cannot load a model without a GPU), to check what Unsloth's patched trainers inherit:
the loss covers the answer only, and the arguments are accepted and mean what the
config says (checkpoints where ``--resume`` looks, warmup as a ratio).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hegelion_unsloth.data import CHATML_ASSISTANT, needs_chat_template, read_rows, to_trl_row
from hegelion_unsloth.mapping import UnslothOptions, build_plan
from unsloth_helpers import Formatted

from hegelion_core.errors import InputError
from hegelion_core.training.config import load_train_config


def rows_of(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


# ----- pure conversion ----------------------------------------------------------------


def test_chat_rows_split_at_the_last_assistant_turn(formatted: Formatted) -> None:
    for row in rows_of(formatted("chat")):
        out = to_trl_row(row, "chat")
        assert [m["role"] for m in out["completion"]] == ["assistant"]
        assert out["prompt"] + out["completion"] == row["messages"]
        assert out["prompt"][-1]["role"] == "user"


def test_sft_rows_become_chat_prompt_completion() -> None:
    row = {
        "instruction": "Is free will real?",
        "input": "Consider determinism.",
        "output": "<thought>...</thought> Yes, in a sense.",
        "system": "Reason dialectically.",
    }
    out = to_trl_row(row, "sft")
    assert out["prompt"] == [
        {"role": "system", "content": "Reason dialectically."},
        {"role": "user", "content": "Is free will real?\n\nConsider determinism."},
    ]
    assert out["completion"] == [{"role": "assistant", "content": row["output"]}]


def test_sft_rows_without_system_or_input() -> None:
    out = to_trl_row({"instruction": "Q", "input": "", "output": "A", "system": None}, "sft")
    assert out["prompt"] == [{"role": "user", "content": "Q"}]


def test_scu_text_splits_before_the_answer(formatted: Formatted) -> None:
    for row in rows_of(formatted("scu")):
        out = to_trl_row(row, "scu")
        assert out["prompt"].endswith(CHATML_ASSISTANT)
        assert (
            out["completion"].endswith("<|im_end|>") and CHATML_ASSISTANT not in out["completion"]
        )
        assert out["prompt"] + out["completion"] + "\n" == row["text"]


def test_whole_sequences_when_completion_only_is_off(formatted: Formatted) -> None:
    chat = rows_of(formatted("chat"))[0]
    assert to_trl_row(chat, "chat", completion_only=False) == {"messages": chat["messages"]}
    scu = rows_of(formatted("scu"))[0]
    assert to_trl_row(scu, "scu", completion_only=False) == {"text": scu["text"]}
    sft = to_trl_row(rows_of(formatted("sft"))[0], "sft", completion_only=False)
    assert [m["role"] for m in sft["messages"]][-2:] == ["user", "assistant"]


def test_dpo_rows_keep_their_three_fields(formatted: Formatted) -> None:
    row = {**rows_of(formatted("dpo"))[0], "extra": 1}
    assert to_trl_row(row, "dpo") == {k: row[k] for k in ("prompt", "chosen", "rejected")}


def test_which_rows_need_the_tokenizers_chat_template(formatted: Formatted) -> None:
    assert needs_chat_template("chat", {}) and needs_chat_template("sft", {})
    assert not needs_chat_template("scu", {})
    assert not needs_chat_template("dpo", rows_of(formatted("dpo"))[0])
    assert needs_chat_template("dpo", rows_of(formatted("dpo", "--conversational"))[0])


def test_a_text_without_an_answer_is_located_to_its_line(tmp_path: Path) -> None:
    path = tmp_path / "scu.jsonl"
    path.write_text(
        '{"text": "<|im_start|>user\\nhi<|im_end|>\\n<|im_start|>assistant\\nyo<|im_end|>\\n"}\n'
        '{"text": "<|im_start|>user\\nno answer here<|im_end|>\\n"}\n'
    )
    with pytest.raises(InputError, match=r"scu\.jsonl:2: .*completion_only_loss=false"):
        read_rows(path, "scu")
    assert len(read_rows(path, "scu", completion_only=False)) == 2


def test_a_row_missing_a_field_is_located(tmp_path: Path) -> None:
    path = tmp_path / "sft.jsonl"
    path.write_text('{"instruction": "Q", "output": "A"}\n{"instruction": "Q2"}\n')
    with pytest.raises(InputError, match=r"sft\.jsonl:2: .*'output'"):
        read_rows(path, "sft")


# ----- the converted rows and mapped arguments in real TRL (CPU, no Unsloth) -----------


def cpu(args: dict[str, Any]) -> dict[str, Any]:
    """The mapped arguments, with only what a CPU run must change: no bf16/fp16 and no
    checkpointing (Unsloth supplies its own on the GPU)."""
    return {
        **args,
        "bf16": False,
        "fp16": False,
        "use_cpu": True,
        "gradient_checkpointing": False,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def trl_setup(fmt_path: Path, fmt: str, model: Path, out: Path, overrides: dict[str, Any]) -> Any:
    import datasets
    import peft
    import trl
    from transformers import AutoTokenizer

    cfg = load_train_config(
        None,
        {
            "model": str(model),
            "lora.r": 4,
            "lora.lora_alpha": 8,
            "lora.lora_dropout": 0.0,
            "training.max_seq_length": 1024,
            "training.per_device_train_batch_size": 2,
            "training.learning_rate": 1e-3,
            **overrides,
        },
    )
    p = build_plan(cfg, UnslothOptions(), out, bf16_supported=False)
    rows = read_rows(fmt_path, fmt, completion_only=cfg.training.completion_only_loss)
    lora = peft.LoraConfig(**cfg.lora.to_peft())  # Unsloth's get_peft_model builds the same
    Config, Trainer = (
        (trl.SFTConfig, trl.SFTTrainer) if p.method == "sft" else (trl.DPOConfig, trl.DPOTrainer)
    )
    return Trainer(
        model=str(model),
        args=Config(**cpu(p.args)),
        peft_config=lora,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(model),
    ), p


@pytest.mark.parametrize("fmt", ["chat", "sft", "scu"])
def test_trl_masks_everything_but_the_answer(
    formatted: Formatted, tiny_qwen2: Path, tmp_path: Path, fmt: str
) -> None:
    trainer, _ = trl_setup(formatted(fmt), fmt, tiny_qwen2, tmp_path, {"training.max_steps": 1})
    tok = trainer.processing_class
    source = rows_of(formatted(fmt))
    assert len(trainer.train_dataset) == len(source), "TRL dropped rows"
    batch = trainer.data_collator([trainer.train_dataset[0]])
    labels = [t for t in batch["labels"][0].tolist() if t != -100]
    ids = batch["input_ids"][0].tolist()
    assert 0 < len(labels) < len(ids), "the prompt must be masked and the answer kept"
    trained = tok.decode(labels)
    whole = tok.decode(ids)
    assert "<|im_start|>user" in whole and "<|im_start|>user" not in trained
    answer = (
        source[0]["messages"][-1]["content"]
        if fmt == "chat"
        else source[0]["output"]
        if fmt == "sft"
        else source[0]["text"].rpartition(CHATML_ASSISTANT)[2]
    )
    assert answer.split("<|im_end|>")[0].strip()[:60] in trained
    assert trained.rstrip().endswith(tok.eos_token), "the end of the answer must be trained"


def test_trl_reads_the_mapped_dpo_arguments(
    formatted: Formatted, tiny_qwen2: Path, tmp_path: Path
) -> None:
    trainer, _ = trl_setup(
        formatted("dpo", "--conversational"),
        "dpo",
        tiny_qwen2,
        tmp_path,
        {"method": "dpo", "training.beta": 0.3, "training.max_steps": 1},
    )
    assert trainer.args.beta == 0.3 and trainer.args.max_length == 1024
    prepared = trainer.train_dataset
    assert len(prepared) == len(rows_of(formatted("dpo", "--conversational")))
    tok = trainer.processing_class
    # The chat template was applied to the message lists: the prompt opens the answer turn.
    assert tok.decode(prepared[0]["prompt_ids"]).endswith(CHATML_ASSISTANT)
    assert prepared[0]["chosen_ids"] != prepared[0]["rejected_ids"]


def test_trl_reads_the_mapped_sft_arguments_as_given(
    formatted: Formatted, tiny_qwen2: Path, tmp_path: Path
) -> None:
    trainer, _ = trl_setup(
        formatted("chat"),
        "chat",
        tiny_qwen2,
        tmp_path,
        {
            "training.max_steps": 7,
            "training.save_steps": 3,
            "training.warmup_ratio": 0.2,
            "training.lr_scheduler_type": "cosine",
            "training.save_total_limit": 4,
        },
    )
    args = trainer.args
    assert Path(args.output_dir) == tmp_path / "checkpoints", "checkpoints go where --resume looks"
    assert (args.max_steps, args.save_steps, args.save_total_limit) == (7, 3, 4)
    assert args.get_warmup_steps(7) == 2, "warmup_ratio 0.2 of 7 steps, rounded up"
    assert args.lr_scheduler_type == "cosine" and args.completion_only_loss is True
    assert args.include_num_input_tokens_seen == "non_padding" and args.max_length == 1024
    # No training step here: TRL 1.15's SFT and DPO forward runs a Triton kernel (fused
    # LM head) whenever triton is installed, as Unsloth installs it, and Triton has no
    # CPU driver. Checkpoints and --resume run for real in tests/gpu/run_gpu_checks.py.
