"""tracking.py: the trackers checked before training, the variables they read set under the
output directory without replacing the user's, and MetricsLog's rows forwarded."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from hegelion_core import HegelionError
from hegelion_core.training import tracking
from hegelion_core.training.config import TrackingConfig
from hegelion_core.training.metrics import MetricsLog

ALL = ["tensorboard", "wandb", "mlflow", "trackio"]
VARIABLES = (
    "TENSORBOARD_LOGGING_DIR",
    "WANDB_DIR",
    "WANDB_NAME",
    "WANDB_PROJECT",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_ALLOW_FILE_STORE",
    "MLFLOW_EXPERIMENT_NAME",
    "TRACKIO_DIR",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_every_config_tracker_has_a_package() -> None:
    assert set(tracking.TRACKERS) == set(ALL) == set(tracking.PACKAGES)


def test_environment_puts_every_tracker_under_the_output_directory(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "sft-small"
    config = TrackingConfig(report_to=ALL, project="dialectics")
    env = tracking.tracker_environment(config, out, environ={})
    assert env == {
        "TENSORBOARD_LOGGING_DIR": str(out / "tensorboard"),
        "WANDB_DIR": str(out),
        "WANDB_NAME": "sft-small",  # no run_name: the output directory's name
        "WANDB_PROJECT": "dialectics",
        "MLFLOW_TRACKING_URI": (out / "mlruns").as_uri(),
        "MLFLOW_ALLOW_FILE_STORE": "true",
        "MLFLOW_EXPERIMENT_NAME": "dialectics",
        "TRACKIO_DIR": str(out / "trackio"),
    }
    named = TrackingConfig(report_to=["wandb"], run_name="first-try")
    assert tracking.tracker_environment(named, out, environ={}) == {
        "WANDB_DIR": str(out),
        "WANDB_NAME": "first-try",  # no project: wandb's own default stays
    }
    assert tracking.tracker_environment(TrackingConfig(), out, environ={}) == {}


def test_what_the_user_set_is_kept(tmp_path: Path) -> None:
    user = {"WANDB_PROJECT": "mine", "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}
    config = TrackingConfig(report_to=["wandb", "mlflow"], project="dialectics")
    env = tracking.tracker_environment(config, tmp_path, environ=user)
    assert "WANDB_PROJECT" not in env and "MLFLOW_TRACKING_URI" not in env
    # Their own server: the file-store switch is not Hegelion's to set.
    assert "MLFLOW_ALLOW_FILE_STORE" not in env
    assert env["MLFLOW_EXPERIMENT_NAME"] == "dialectics"
    environ = dict(user)
    tracking.apply_tracker_environment(config, tmp_path, environ)
    assert environ["WANDB_PROJECT"] == "mine"
    assert environ["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"


def test_a_later_run_replaces_hegelions_values_but_never_the_users(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    config = TrackingConfig(report_to=["tensorboard"])
    tracking.apply_tracker_environment(config, tmp_path / "one")
    assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "one" / "tensorboard")
    # A pipeline's next stage in the same process: its own directory, not the first's.
    set_now = tracking.apply_tracker_environment(config, tmp_path / "two")
    assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "two" / "tensorboard")
    assert set_now == {"TENSORBOARD_LOGGING_DIR": str(tmp_path / "two" / "tensorboard")}
    clean_env.setenv("TENSORBOARD_LOGGING_DIR", "/srv/tb")  # the user's, from now on
    assert tracking.apply_tracker_environment(config, tmp_path / "three") == {}
    assert os.environ["TENSORBOARD_LOGGING_DIR"] == "/srv/tb"


def test_a_tracker_the_trainer_cannot_use_is_refused() -> None:
    with pytest.raises(HegelionError) as caught:
        tracking.require_trackers(["tensorboard"], trainer="mlx", supported=["wandb"])
    message = str(caught.value)
    assert message.startswith("tracking.report_to: the mlx trainer cannot report to tensorboard")
    assert "it reports to wandb" in message and "--trainer trl" in message


def test_a_missing_tracker_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # what `import wandb` sees uninstalled
    monkeypatch.setitem(tracking.PACKAGES, "tensorboard", ("json", "tensorboard"))
    with pytest.raises(HegelionError) as caught:
        tracking.require_trackers(["tensorboard", "wandb"], trainer="trl", extra="x[tracking]")
    message = str(caught.value)
    assert message.startswith("tracking.report_to: wandb is not installed")
    assert "pip install wandb (or pip install 'x[tracking]')" in message
    assert "tensorboard" not in message  # it is importable
    tracking.require_trackers(["tensorboard"], trainer="trl")  # nothing missing: no error
    monkeypatch.setitem(sys.modules, "trackio", None)
    with pytest.raises(HegelionError) as caught:
        tracking.require_trackers(["trackio"], trainer="trl", extra="x[tracking]")
    assert "pip install trackio, or remove trackio" in str(caught.value)  # not in the extra


def test_forward_train_metrics_sees_every_row_metrics_log_writes_while_inside(
    tmp_path: Path,
) -> None:
    seen: list[tuple[int, dict[str, float]]] = []
    log = MetricsLog(tmp_path)
    log.log(1, {"loss": 3.0})  # before: not forwarded
    with tracking.forward_train_metrics(lambda step, row: seen.append((step, row))):
        log.log(2, {"loss": 2.5, "S": 0.01, "lambda": 1.5})
        log.log(2, {"val_loss": 2.75})
    log.log(3, {"loss": 2.0})  # after: not forwarded
    assert seen == [(2, {"loss": 2.5, "S": 0.01, "lambda": 1.5}), (2, {"val_loss": 2.75})]
    assert len(log.path.read_text().splitlines()) == 4  # metrics.jsonl got every row
