"""SFT and DPO on the tiny model: train, save, reload, merge; the CLI end to end."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import orjson
import peft
import pytest
import torch
from click.testing import CliRunner
from hegelion_trl.trainer import TRLTrainer
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl_helpers import read_jsonl, train_config

from hegelion_core.cli import cli
from hegelion_core.errors import HegelionError
from hegelion_core.testing import TrainerContract


class TestTRLTrainerContract(TrainerContract):
    @pytest.fixture
    def driver(self) -> TRLTrainer:
        return TRLTrainer({"accelerate_config": "zero2", "main_process_port": 29555})


def _logits(model: torch.nn.Module, tokenizer: object, text: str) -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt").input_ids  # type: ignore[operator]
    with torch.no_grad():
        return model(input_ids=ids).logits


def check_adapter_and_merge(model_dir: Path, out: Path) -> None:
    """The adapter reloads on the base, changes its output, and the merged model
    computes what base + adapter compute."""
    adapter = out / "adapter"
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "chat_template.jinja",
    ):
        assert (adapter / name).is_file(), f"adapter lacks {name}"
    config = orjson.loads((adapter / "adapter_config.json").read_bytes())
    assert config["peft_type"] == "LORA" and config["r"] == 4

    tokenizer = AutoTokenizer.from_pretrained(adapter)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Is free will real?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    base = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    base_logits = _logits(base, tokenizer, text)
    tuned = peft.PeftModel.from_pretrained(base, adapter).eval()
    tuned_logits = _logits(tuned, tokenizer, text)
    assert (tuned_logits - base_logits).abs().max() > 1e-3, "the adapter changes nothing"

    merged_dir = out / "merged"
    assert (merged_dir / "model.safetensors").is_file()
    merged_tok = AutoTokenizer.from_pretrained(merged_dir)
    assert merged_tok.chat_template == tokenizer.chat_template
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(_logits(merged, tokenizer, text), tuned_logits, atol=1e-4, rtol=0)


@pytest.mark.parametrize("fmt", ["chat", "sft", "scu"])
def test_sft_trains_saves_reloads_and_merges(
    hegelion_dataset: Callable[..., Path], tiny_model: Path, tmp_path: Path, fmt: str
) -> None:
    config = train_config(tiny_model, merge=True)
    result = TRLTrainer().train(hegelion_dataset(fmt), tmp_path, config)
    assert result.adapter_dir == tmp_path / "adapter" and result.merged_dir == tmp_path / "merged"
    assert result.metrics["steps"] == 4 and result.metrics["tokens"] > 0
    assert result.metrics["tokens_per_s"] > 0 and result.metrics["peak_rss_mb"] > 0
    assert {"torch", "transformers", "trl", "peft", "accelerate"} <= set(result.versions)
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all({"loss", "lr"} <= set(r) for r in rows)
    check_adapter_and_merge(tiny_model, tmp_path)


@pytest.mark.parametrize("extra", [(), ("--conversational",)], ids=["standard", "conversational"])
def test_dpo_trains_saves_reloads_and_merges(
    hegelion_dataset: Callable[..., Path], tiny_model: Path, tmp_path: Path, extra: tuple[str, ...]
) -> None:
    config = train_config(tiny_model, method="dpo", merge=True)
    result = TRLTrainer().train(hegelion_dataset("dpo", *extra), tmp_path, config)
    assert result.metrics["steps"] == 4
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert any("rewards/chosen" in r for r in rows), rows[0]
    check_adapter_and_merge(tiny_model, tmp_path)


def test_dpo_rows_for_sft_fail_with_the_core_error(
    hegelion_dataset: Callable[..., Path], tiny_model: Path, tmp_path: Path
) -> None:
    args = [
        "train",
        "--trainer",
        "trl",
        "--method",
        "sft",
        "--model",
        str(tiny_model),
        "--data",
        str(hegelion_dataset("dpo")),
        "--output",
        str(tmp_path / "run"),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert "holds dpo rows, but --method sft needs chat or sft or scu rows" in result.output
    with pytest.raises(HegelionError, match="--format chat"):  # the driver checks too, from Python
        TRLTrainer().train(hegelion_dataset("dpo"), tmp_path / "py", train_config(tiny_model))
    assert not (tmp_path / "run" / "adapter").exists()


def test_scu_with_dpo_is_refused(
    hegelion_dataset: Callable[..., Path], tiny_model: Path, tmp_path: Path
) -> None:
    config = train_config(tiny_model, method="dpo", scu={})
    with pytest.raises(HegelionError, match="--scu regularises the SFT cross-entropy"):
        TRLTrainer().train(hegelion_dataset("dpo"), tmp_path, config)


def test_cli_end_to_end_with_a_validation_split(
    hegelion_dataset: Callable[..., Path], tiny_model: Path, tmp_path: Path
) -> None:
    data = hegelion_dataset("chat", "--valid-ratio", "0.2", "--batch-size", "1")
    assert (data / "valid.jsonl").is_file()
    out = tmp_path / "run"
    args = [
        "train",
        "--trainer",
        "trl",
        "--model",
        str(tiny_model),
        "--data",
        str(data),
        "--output",
        str(out),
        "-c",
        "training.max_steps=4",
        "-c",
        "training.save_steps=2",
        "-c",
        "training.per_device_train_batch_size=4",
        "-c",
        "training.max_seq_length=256",
        "-c",
        "lora.r=4",
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"adapter: {out / 'adapter'}" in result.output

    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "metrics.png").stat().st_size > 1000
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["config"]["trainer"] == "trl" and manifest["config"]["lora"]["r"] == 4
    train_hash = hashlib.sha256((data / "train.jsonl").read_bytes()).hexdigest()
    assert train_hash in {i["sha256"] for i in manifest["inputs"]}
    assert len(manifest["inputs"]) == 2  # train and valid
    assert manifest["versions"]["trl"] and manifest["versions"]["torch"]
    assert manifest["metrics"]["steps"] == 4

    rows = read_jsonl(out / "metrics.jsonl")
    train_steps = [r["step"] for r in rows if "loss" in r]
    assert train_steps == [1, 2, 3, 4]
    # Evaluated at every save (steps 2 and 4) on valid.jsonl.
    assert [r["step"] for r in rows if "eval_loss" in r] == [2, 4]
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
    ]

    again = CliRunner().invoke(cli, args)  # the same output without --resume: refused, untouched
    assert again.exit_code != 0 and "pass --resume" in again.output
    assert read_jsonl(out / "metrics.jsonl") == rows


@pytest.mark.parametrize("fmt", ["chat", "sft", "scu"])
def test_only_the_answer_is_trained(
    hegelion_dataset: Callable[..., Path], tiny_model: Path, tmp_path: Path, fmt: str
) -> None:
    """Completion-only loss on every SFT format: the labels hold the assistant's
    <thought> trace and answer, closed by the end-of-turn token, and no prompt."""
    from hegelion_trl.engine import build_trainer

    built = build_trainer(hegelion_dataset(fmt), tmp_path, train_config(tiny_model))
    tokenizer = built.trainer.processing_class
    prepared = built.trainer.train_dataset
    assert len(prepared) == 10
    for example in prepared:
        trained = tokenizer.decode([t for t in example["labels"] if t != -100])
        assert trained.startswith("<thought>\nTHESIS:"), trained[:40]
        # (conversational prompt/completion also trains the template's newline after it)
        assert trained.rstrip("\n").endswith("<|im_end|>"), trained[-40:]
        assert "<|im_start|>" not in trained and "You are a dialectical" not in trained


def test_packing_packs_and_trains(
    hegelion_dataset: Callable[..., Path], tiny_model: Path, tmp_path: Path
) -> None:
    from hegelion_trl.engine import build_trainer

    config = train_config(
        tiny_model, training={"packing": True, "max_seq_length": 512, "max_steps": 2}
    )
    built = build_trainer(hegelion_dataset("chat"), tmp_path, config)
    lengths = [len(ids) for ids in built.trainer.train_dataset["input_ids"]]
    assert len(lengths) < 10 and max(lengths) <= 512  # rows were packed together
    result = built.trainer.train()
    assert built.trainer.state.global_step == 2 and result.training_loss > 0


def test_a_stage_continues_from_the_previous_stages_adapter(
    hegelion_dataset: Callable[..., Path], tiny_model: Path, tmp_path: Path
) -> None:
    """Simplex stages chain: stage 2 starts from stage 1's adapter, not from the base."""
    data = hegelion_dataset("chat")
    first = TRLTrainer().train(data, tmp_path / "one", train_config(tiny_model))
    second = TRLTrainer().train(
        data,
        tmp_path / "two",
        train_config(tiny_model).model_copy(update={"init_adapter": first.adapter_dir}),
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    text = "Is free will real?"
    base = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    one = _logits(peft.PeftModel.from_pretrained(base, first.adapter_dir).eval(), tokenizer, text)
    base = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    two = peft.PeftModel.from_pretrained(base, second.adapter_dir).eval()
    # Both stages' learning is in the second adapter: it moved on from the first one.
    assert (_logits(two, tokenizer, text) - one).abs().max() > 1e-4
    # Stage two starts where stage one ended: its first loss is already below stage one's.
    one_loss = read_jsonl(tmp_path / "one" / "metrics.jsonl")[0]["loss"]
    two_loss = read_jsonl(tmp_path / "two" / "metrics.jsonl")[0]["loss"]
    assert two_loss < one_loss, (one_loss, two_loss)


def test_init_adapter_that_is_not_an_adapter_is_refused(
    hegelion_dataset: Callable[..., Path], tiny_model: Path, tmp_path: Path
) -> None:
    config = train_config(tiny_model).model_copy(update={"init_adapter": tmp_path})
    with pytest.raises(HegelionError, match="not a PEFT adapter"):
        TRLTrainer().train(hegelion_dataset("chat"), tmp_path / "out", config)


def test_rows_longer_than_max_seq_length_are_a_clear_error(
    hegelion_dataset: Callable[..., Path], tiny_model: Path, tmp_path: Path
) -> None:
    config = train_config(tiny_model)
    config = config.model_copy(
        update={"training": config.training.model_copy(update={"max_seq_length": 8})}
    )
    with pytest.raises(HegelionError, match="raise training.max_seq_length"):
        TRLTrainer().train(hegelion_dataset("chat"), tmp_path, config)
