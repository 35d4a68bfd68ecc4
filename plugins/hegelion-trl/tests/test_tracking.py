"""tracking.report_to through TRL's own tracker callbacks, read back with each tracker's
own reader: what the trackers hold is what metrics.jsonl holds, step for step, SCU's S
and λ included. Offline: tensorboard event files, wandb's offline run directory, an
MLflow local file store."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hegelion_trl.trainer import TRLTrainer
from trl_helpers import read_jsonl, train_config

from hegelion_core import HegelionError
from hegelion_core.testing.tracker_files import wandb_history, wandb_offline_run, wandb_records

ENV = (
    "TENSORBOARD_LOGGING_DIR",
    "WANDB_DIR",
    "WANDB_NAME",
    "WANDB_PROJECT",
    "WANDB_MODE",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_ALLOW_FILE_STORE",
    "TRACKIO_DIR",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No tracker variable from the machine or an earlier test; all restored afterwards."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    yield


def train(data: Path, out: Path, model: Path, **tracking: Any) -> list[dict[str, Any]]:
    config = train_config(model, scu={"lambda_init": 2.0}, tracking=tracking)
    TRLTrainer().train(data, out, config)
    rows = [r for r in read_jsonl(out / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    return rows


def test_tensorboard_holds_metrics_jsonl_step_for_step(
    hegelion_dataset: Callable[..., Path], tiny_model: Path, tmp_path: Path
) -> None:
    pytest.importorskip("tensorboard", reason="pip install 'hegelion-trl[tracking]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb-run"
    rows = train(hegelion_dataset("chat"), out, tiny_model, report_to=["tensorboard"])
    logdir = out / "tensorboard"
    assert list(logdir.glob("events.out.tfevents.*")), f"no event file in {logdir}"
    events = EventAccumulator(str(logdir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for key in ("loss", "S", "lambda", "DataBPT", "ParamBPT"):
        assert f"train/{key}" in tags, f"train/{key} not in {sorted(tags)}"
        logged = [(e.step, e.value) for e in events.Scalars(f"train/{key}")]
        expected = [(r["step"], r[key]) for r in rows]
        assert [s for s, _ in logged] == [s for s, _ in expected], key
        assert [v for _, v in logged] == pytest.approx([v for _, v in expected], rel=1e-6), key
    # λ moves (SCU is on), so equal curves are not equal constants.
    assert len({r["lambda"] for r in rows}) > 1


def test_wandb_offline_run_holds_the_metrics(
    hegelion_dataset: Callable[..., Path],
    tiny_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("wandb", reason="pip install 'hegelion-trl[tracking]'")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "wandb-run"
    rows = train(
        hegelion_dataset("chat"),
        out,
        tiny_model,
        report_to=["wandb"],
        project="hegelion-tests",
        run_name="tiny",
    )
    records = wandb_records(wandb_offline_run(out / "wandb"))
    (run,) = [r.run for r in records if r.HasField("run")]
    assert (run.project, run.display_name) == ("hegelion-tests", "tiny")
    steps = {h["train/global_step"]: h for h in wandb_history(records) if "train/loss" in h}
    assert sorted(steps) == [r["step"] for r in rows]
    for r in rows:
        for key in ("loss", "S", "lambda"):
            assert steps[r["step"]][f"train/{key}"] == pytest.approx(r[key], rel=1e-6), key
    # The run was finished (its exit record written), so a next training starts its own.
    assert any(r.HasField("exit") for r in records)


def test_mlflow_local_store_holds_the_metrics(
    hegelion_dataset: Callable[..., Path], tiny_model: Path, tmp_path: Path
) -> None:
    pytest.importorskip("mlflow", reason="pip install 'hegelion-trl[tracking]'")
    from mlflow.tracking import MlflowClient

    out = tmp_path / "mlflow-run"
    rows = train(
        hegelion_dataset("chat"), out, tiny_model, report_to=["mlflow"], project="hegelion-tests"
    )
    store = out / "mlruns"
    assert store.is_dir(), "the default store lives under the output directory"
    client = MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name("hegelion-tests")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "mlflow-run"  # the output directory's name
    for key in ("loss", "S", "lambda"):
        history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        assert [m.step for m in history] == [r["step"] for r in rows], key
        assert [m.value for m in history] == pytest.approx([r[key] for r in rows], rel=1e-6)


def test_a_tracker_not_installed_is_refused_before_training(
    hegelion_dataset: Callable[..., Path],
    tiny_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what `import mlflow` sees uninstalled
    config = train_config(tiny_model, tracking={"report_to": ["mlflow"]})
    with pytest.raises(HegelionError) as caught:
        TRLTrainer().train(hegelion_dataset("chat"), tmp_path, config)
    message = str(caught.value)
    assert "tracking.report_to: mlflow is not installed" in message
    assert "pip install mlflow (or pip install 'hegelion-trl[tracking]')" in message
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "metrics.jsonl").exists()


def test_mlflow_process_uri_follows_the_next_run(tmp_path: Path) -> None:
    """transformers calls mlflow.set_tracking_uri once per process; a second run in the
    same process must not log into the first run's store."""
    import mlflow

    from hegelion_core.training import tracking
    from hegelion_core.training.config import TrackingConfig

    config = TrackingConfig(report_to=["mlflow"])
    before = mlflow.get_tracking_uri()
    try:
        first = tracking.apply_tracker_environment(config, tmp_path / "one")
        mlflow.set_tracking_uri(first["MLFLOW_TRACKING_URI"])  # what transformers does
        second = tracking.apply_tracker_environment(config, tmp_path / "two")
        assert mlflow.get_tracking_uri() == second["MLFLOW_TRACKING_URI"]
        assert second["MLFLOW_TRACKING_URI"] == (tmp_path / "two" / "mlruns").as_uri()
        mlflow.set_tracking_uri("http://127.0.0.1:5000")  # the user's own, in code
        tracking.apply_tracker_environment(config, tmp_path / "three")
        assert mlflow.get_tracking_uri() == "http://127.0.0.1:5000"
    finally:
        mlflow.set_tracking_uri(before)
