"""Hegelion's ``mlx`` output loads in mlx-lm's own dataset code, as ``mlx_lm.lora`` does it.

``mlx_lm.lora --data DIR`` reads ``train/valid/test.jsonl`` from DIR with
`mlx_lm.tuner.datasets.load_dataset`, tokenizes rows with the model's chat
template and batches them with `mlx_lm.tuner.trainer.iterate_batches`. These
tests call exactly those functions on the directory the CLI writes, so a change
on either side (row shape, split names, mlx-lm's loader) shows up here.
No torch: this file runs in the mlx environment.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlx.core as mx
import pytest
from click.testing import CliRunner
from mlx_lm.lora import CONFIG_DEFAULTS
from mlx_lm.tokenizer_utils import TokenizerWrapper
from mlx_lm.tuner.datasets import CacheDataset, ChatDataset, load_dataset
from mlx_lm.tuner.trainer import iterate_batches

from hegelion_core.cli import cli

Dataset = Callable[..., Path]


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def _lora_args(data: Path, **overrides: Any) -> types.SimpleNamespace:
    """The namespace `mlx_lm.lora.run` passes to `load_dataset`: its defaults plus ours."""
    return types.SimpleNamespace(
        **{**CONFIG_DEFAULTS, "data": str(data), "train": True, **overrides}
    )


def _assistant(row: dict[str, Any]) -> str:
    return next(m["content"] for m in reversed(row["messages"]) if m["role"] == "assistant")


def test_mlx_dir_loads_in_mlx_lm(
    hegelion_dataset: Dataset, sample_traces: Path, mlx_tokenizer: Any
) -> None:
    out = hegelion_dataset("mlx", "--valid-ratio", "0.2", "--seed", "0")

    assert (out / "train.jsonl").is_file() and (out / "valid.jsonl").is_file()
    train_rows = read_rows(out / "train.jsonl")
    valid_rows = read_rows(out / "valid.jsonl")
    test_rows = read_rows(out / "test.jsonl") if (out / "test.jsonl").exists() else []
    assert len(train_rows) + len(valid_rows) + len(test_rows) == len(read_rows(sample_traces))
    assert valid_rows, "--valid-ratio 0.2 should give a validation split"
    assert all(set(row) == {"messages"} for row in train_rows + valid_rows), train_rows[0].keys()

    assert isinstance(mlx_tokenizer, TokenizerWrapper)
    train, valid, test = load_dataset(_lora_args(out), mlx_tokenizer)
    assert isinstance(train, ChatDataset) and isinstance(valid, ChatDataset)
    assert (len(train), len(valid), len(test)) == (len(train_rows), len(valid_rows), len(test_rows))

    for split, rows in ((train, train_rows), (valid, valid_rows)):
        cached = CacheDataset(split)
        for i, row in enumerate(rows):
            tokens, offset = cached[i]
            assert tokens and offset == 0
            text = mlx_tokenizer.decode(tokens)
            assert _assistant(row) in text, "the assistant turn did not survive tokenization"
            assert _assistant(row) + mlx_tokenizer.eos_token in text, (
                "the answer is not closed by EOS"
            )


def test_mlx_rows_end_on_the_assistant_turn(hegelion_dataset: Dataset, mlx_tokenizer: Any) -> None:
    """``--mask-prompt`` trains on what follows the last non-assistant turn, so that
    must be exactly the answer: mlx-lm assumes the last message is the assistant's."""
    out = hegelion_dataset("mlx", "--valid-ratio", "0.2", "--seed", "0")
    rows = read_rows(out / "train.jsonl")

    train, _, _ = load_dataset(_lora_args(out, mask_prompt=True), mlx_tokenizer)
    for i, row in enumerate(rows):
        assert row["messages"][-1]["role"] == "assistant"
        tokens, offset = train.process(train[i])
        assert 0 < offset < len(tokens)
        completion = mlx_tokenizer.decode(tokens[offset:])
        assert completion.startswith(_assistant(row)), completion[:80]
        assert "<|im_start|>" not in completion, "prompt tokens leak into the trained part"


def test_mlx_splits_batch_at_mlx_lm_default_batch_size(
    hegelion_dataset: Dataset, mlx_tokenizer: Any
) -> None:
    """With mlx-lm's default batch size, every split yields full batches."""
    out = hegelion_dataset("mlx", "--valid-ratio", "0.2", "--seed", "0")
    train, valid, _ = load_dataset(_lora_args(out), mlx_tokenizer)

    batch_size = CONFIG_DEFAULTS["batch_size"]
    for split in (train, valid):
        batches = list(iterate_batches(CacheDataset(split), batch_size, max_seq_length=512))
        assert len(batches) == len(split) // batch_size >= 1
        for batch, lengths in batches:
            assert batch.shape[0] == batch_size and batch.dtype == mx.int32
            assert mx.all(lengths[:, 1] > 0).item()


def test_hegelion_refuses_the_split_mlx_lm_would_reject(
    hegelion_dataset: Dataset, sample_traces: Path, tmp_path: Path, mlx_tokenizer: Any
) -> None:
    """Hegelion's up-front check uses mlx-lm's own threshold: what it refuses at
    the default batch size, mlx-lm would reject; what it accepts, mlx-lm batches."""
    out = tmp_path / "mlx-out"
    argv = [
        "dataset",
        str(sample_traces),
        str(out),
        "--format",
        "mlx",
        "--valid-ratio",
        "0.1",
        "--seed",
        "0",
    ]  # 2 valid rows
    result = CliRunner().invoke(cli, argv, catch_exceptions=False)
    assert result.exit_code != 0
    assert "batch size" in result.output, result.output
    assert not (out / "train.jsonl").exists(), "a refused split must not leave files behind"

    out = hegelion_dataset("mlx", "--valid-ratio", "0.1", "--seed", "0", "--batch-size", "2")
    _, valid, _ = load_dataset(_lora_args(out), mlx_tokenizer)
    assert len(valid) == 2
    with pytest.raises(ValueError, match="at least batch_size"):
        next(
            iterate_batches(CacheDataset(valid), CONFIG_DEFAULTS["batch_size"], max_seq_length=512)
        )
    batch, _ = next(iterate_batches(CacheDataset(valid), 2, max_seq_length=512))
    assert batch.shape[0] == 2


def test_mlx_test_split(hegelion_dataset: Dataset, mlx_tokenizer: Any) -> None:
    out = hegelion_dataset("mlx", "--valid-ratio", "0.2", "--test-ratio", "0.2", "--seed", "0")
    assert (out / "test.jsonl").is_file()

    train, valid, test = load_dataset(_lora_args(out, test=True), mlx_tokenizer)
    assert len(test) == len(read_rows(out / "test.jsonl")) > 0
    assert len(train) > 0 and len(valid) > 0
    ids = {
        json.dumps(r, sort_keys=True)
        for name in ("train", "valid", "test")
        for r in read_rows(out / f"{name}.jsonl")
    }
    assert len(ids) == len(train) + len(valid) + len(test), "a row appears in two splits"


def test_mlx_lm_rejects_a_split_smaller_than_batch_size(tmp_path: Path, mlx_tokenizer: Any) -> None:
    """mlx-lm only notices a too-small split once training starts (its first
    evaluation of the valid split comes at step 1, after the model has loaded):
    that late failure is why Hegelion checks split sizes when it writes them."""
    row = {"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]}
    for name, n in (("train", 4), ("valid", 2)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for _ in range(n)))

    train, valid, _ = load_dataset(_lora_args(tmp_path), mlx_tokenizer)  # loading does not check
    assert len(valid) == 2

    batches = iterate_batches(CacheDataset(valid), batch_size=4, max_seq_length=512)
    with pytest.raises(ValueError, match=r"at least batch_size=4 examples but only has 2"):
        next(batches)

    # The same split is fine at a batch size it can fill.
    batch, _ = next(iterate_batches(CacheDataset(valid), batch_size=2, max_seq_length=512))
    assert batch.shape[0] == 2
    batch, _ = next(iterate_batches(CacheDataset(train), batch_size=4, max_seq_length=512))
    assert batch.shape[0] == 4
