"""``hegelion train --trainer mlx|mlx-scu`` end to end, and the drivers' contract."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hegelion_mlx.trainer import MLXSCUTrainer, MLXTrainer
from mlx_testutil import read_jsonl, train_config

from hegelion_core.cli import cli
from hegelion_core.errors import HegelionError, InputError
from hegelion_core.testing import TrainerContract

FAST = [
    "-c",
    "lora.lora_dropout=0.0",
    "-c",
    "training.learning_rate=1e-2",
    "-c",
    "training.warmup_ratio=0",
]


def hegelion_train(*args: str) -> Result:
    return CliRunner().invoke(cli, ["train", *args], catch_exceptions=False)


class TestMLXTrainerContract(TrainerContract):
    @pytest.fixture
    def driver(self) -> MLXTrainer:
        return MLXTrainer({"num_layers": 1, "steps_per_eval": 10})


class TestMLXSCUTrainerContract(TrainerContract):
    @pytest.fixture
    def driver(self) -> MLXSCUTrainer:
        return MLXSCUTrainer()


def test_cli_trains_an_sft_file_and_writes_the_manifest(
    tiny_model: Path, make_dataset: Callable[..., Path], tmp_path: Path
) -> None:
    data = make_dataset("sft")
    out = tmp_path / "run"
    result = hegelion_train(
        "--trainer",
        "mlx",
        "--model",
        str(tiny_model),
        "--data",
        str(data),
        "--output",
        str(out),
        "-c",
        "training.max_steps=4",
        *FAST,
        "-o",
        "progress=false",
    )
    assert result.exit_code == 0, result.output
    assert f"adapter: {out / 'adapter'}" in result.output

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "train" and manifest["config"]["trainer"] == "mlx"
    assert manifest["counts"]["steps"] == 4 and manifest["counts"]["tokens"] > 0
    assert {"mlx", "mlx-lm"} <= set(manifest["versions"])
    assert manifest["metrics"]["tokens_per_s"] > 0
    assert str(out / "adapter") in manifest["outputs"]

    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # a file is the train split only: no val_loss
    assert (out / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


def test_cli_mlx_scu_on_scu_text_rows_logs_the_controller(
    tiny_model: Path, make_dataset: Callable[..., Path], tmp_path: Path
) -> None:
    data = make_dataset("scu")
    out = tmp_path / "run"
    result = hegelion_train(
        "--trainer",
        "mlx-scu",
        "--model",
        str(tiny_model),
        "--data",
        str(data),
        "--output",
        str(out),
        "-c",
        "training.max_steps=3",
        "-c",
        "training.logging_steps=2",
        *FAST,
        "-o",
        "progress=false",
    )
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3], (
        "SCU logs every step, whatever logging_steps says"
    )
    for r in rows:
        assert {"DataBPT", "ParamBPT", "S", "lambda", "loss"} <= set(r)
        assert r["S"] == pytest.approx(r["ParamBPT"] / (r["ParamBPT"] + r["DataBPT"]))
    assert "tokens_per_s" in rows[1] and "tokens_per_s" not in rows[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["trainer"] == "mlx-scu" and "lambda" in manifest["metrics"]


def test_cli_rejects_a_bad_trainer_option(tiny_model: Path, mlx_data: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--trainer",
            "mlx",
            "--model",
            str(tiny_model),
            "--data",
            str(mlx_data),
            "--output",
            str(tmp_path / "r"),
            "-o",
            "num_layers=0",
        ],
    )
    assert result.exit_code != 0
    assert "num_layers" in result.output
    assert not (tmp_path / "r" / "adapter").exists()


def test_dpo_is_refused_with_the_trainer_to_use(
    tiny_model: Path, make_dataset: Callable[..., Path], tmp_path: Path
) -> None:
    config = train_config(tiny_model, method="dpo")
    with pytest.raises(HegelionError, match=r"SFT only.*--trainer trl"):
        MLXTrainer().train(make_dataset("dpo"), tmp_path, config)
    with pytest.raises(InputError, match=r"(?s)dpo rows.*--trainer trl"):
        MLXSCUTrainer().train(make_dataset("dpo"), tmp_path, train_config(tiny_model))
    assert not (tmp_path / "adapter").exists()


def test_a_train_split_smaller_than_the_batch_is_a_clear_error(
    tiny_model: Path, mlx_data: Path, tmp_path: Path
) -> None:
    config = train_config(tiny_model, training={"per_device_train_batch_size": 32})
    with pytest.raises(HegelionError, match=r"16 rows, fewer than the batch size 32"):
        MLXTrainer({"progress": False}).train(mlx_data, tmp_path, config)


def test_unknown_target_module_is_named(tiny_model: Path, mlx_data: Path, tmp_path: Path) -> None:
    config = train_config(tiny_model, lora={"target_modules": ["q_proj", "qkv_proj"]})
    with pytest.raises(HegelionError, match=r"\['qkv_proj'\] match no layer"):
        MLXTrainer({"progress": False}).train(mlx_data, tmp_path, config)
