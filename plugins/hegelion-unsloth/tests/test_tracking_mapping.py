"""tracking: -> the report_to, run_name and project TRL's callbacks read under Unsloth,
and a tracker that cannot run refused before the GPU check (Unsloth itself cannot run
here: the GPU side only passes these on)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hegelion_unsloth.mapping import UnslothOptions, build_plan, trainer_args
from hegelion_unsloth.trainer import UnslothTrainer

from hegelion_core.errors import HegelionError
from hegelion_core.training.config import TrainConfig, load_train_config

OUT = Path("/runs/sft-small")


def config(**tracking: Any) -> TrainConfig:
    return load_train_config(
        None,
        {
            "model": "Qwen/Qwen2.5-0.5B-Instruct",
            **{f"tracking.{k}": v for k, v in tracking.items()},
        },
    )


def args(cfg: TrainConfig) -> dict[str, Any]:
    return trainer_args(cfg, UnslothOptions(), OUT, "bfloat16")


def test_report_to_run_name_and_project_reach_trls_arguments() -> None:
    cfg = config(report_to=["tensorboard", "wandb"], run_name="first-try", project="dialectics")
    got = args(cfg)
    assert got["report_to"] == ["tensorboard", "wandb"]
    assert got["run_name"] == "first-try"
    assert got["project"] == "dialectics"  # trackio's; wandb and mlflow read the environment


def test_without_trackers_nothing_reports_and_the_run_is_named_for_its_directory() -> None:
    got = args(config())
    assert got["report_to"] == "none"
    assert got["run_name"] == "sft-small"
    assert "project" not in got  # transformers' own default stays


def test_tracking_arguments_are_fields_of_trls_config() -> None:
    import trl

    fields = {f.name for f in dataclasses.fields(trl.SFTConfig)}
    got = args(config(report_to=["trackio"], project="p", run_name="r"))
    assert {"report_to", "run_name", "project"} <= fields
    assert set(got) <= fields, set(got) - fields


def test_a_missing_tracker_is_refused_in_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # what `import wandb` sees uninstalled
    with pytest.raises(HegelionError) as caught:
        build_plan(config(report_to=["wandb"]), UnslothOptions(), OUT, bf16_supported=True)
    message = str(caught.value)
    assert message.startswith("tracking.report_to: wandb is not installed")
    assert "pip install wandb (or pip install 'hegelion-unsloth[tracking]')" in message


def test_a_missing_tracker_comes_before_the_gpu_check(
    formatted: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On this machine (no GPU) the driver would say "needs an NVIDIA GPU": the tracker
    error comes first, so a GPU box is never booked for a run that cannot report."""
    monkeypatch.setitem(sys.modules, "mlflow", None)
    cfg = config(report_to=["mlflow"])
    with pytest.raises(HegelionError, match="tracking.report_to: mlflow is not installed"):
        UnslothTrainer().train(formatted("chat"), tmp_path / "run", cfg)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
