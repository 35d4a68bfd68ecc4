"""Experiment trackers (``tracking:`` in the training config): what every trainer needs.

Trainers pass ``tracking.report_to`` to their library's own tracker integration (TRL's
and Unsloth's ``report_to``, mlx-lm's reporting callbacks). What is the same for all of
them lives here:

- `require_trackers`: each named tracker is importable, and the trainer can report to
  it, checked before anything loads, with the package to install;
- `tracker_environment` / `apply_tracker_environment`: the variables the trackers read
  (project, run name, where the files go: under the output directory, so a run is
  self-contained), never replacing what the user already set;
- `forward_train_metrics`: everything `MetricsLog` logs (loss, SCU's S and lambda, GRPO's
  rewards) handed to a tracker, for trainers whose metrics do not pass through a
  library's own logging (mlx).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import get_args

from hegelion_core.errors import HegelionError
from hegelion_core.hookspecs import hookimpl
from hegelion_core.training.config import TrackingConfig

#: Every tracker the config accepts, in the config's own order.
TRACKERS: tuple[str, ...] = get_args(
    get_args(TrackingConfig.model_fields["report_to"].annotation)[0]
)

#: Tracker -> (the module its integration imports, the package that provides it).
PACKAGES: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),  # mlflow-skinny provides the same module, lighter
    "trackio": ("trackio", "trackio"),
}

#: The values this process set itself (so a later run may replace them; the user's never).
_SET_BY_HEGELION: dict[str, str] = {}


def require_trackers(
    report_to: Sequence[str],
    *,
    trainer: str,
    supported: Sequence[str] = TRACKERS,
    extra: str | None = None,
    in_extra: Sequence[str] = ("tensorboard", "wandb", "mlflow"),
) -> None:
    """Refuse, before anything loads, a tracker ``trainer`` cannot report to or whose
    package is missing, naming what to install (``extra``: the plugin's pip extra, which
    installs the trackers ``in_extra``)."""
    for name in report_to:
        if name not in supported:
            others = "--trainer trl or --trainer unsloth"
            raise HegelionError(
                f"tracking.report_to: the {trainer} trainer cannot report to {name} (it reports "
                f"to {', '.join(supported) or 'no tracker'}); remove {name} from "
                f"tracking.report_to, or train with {others}, which report to "
                f"{', '.join(TRACKERS)}"
            )
    missing = [n for n in report_to if not _importable(PACKAGES[n][0])]
    if missing:
        packages = " ".join(PACKAGES[n][1] for n in missing)
        also = f" (or pip install '{extra}')" if extra and set(missing) <= set(in_extra) else ""
        raise HegelionError(
            f"tracking.report_to: {', '.join(missing)} is not installed (no module named "
            f"{', '.join(PACKAGES[n][0] for n in missing)}); pip install {packages}{also}, "
            f"or remove {', '.join(missing)} from tracking.report_to"
        )


def _importable(module: str) -> bool:
    """Installed, without importing it (wandb and mlflow take seconds); a module set to None
    in ``sys.modules`` is one Python refuses to import."""
    if module in sys.modules:
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def tracker_run_name(tracking: TrackingConfig, output_dir: Path) -> str:
    """``tracking.run_name``, else the output directory's name (``runs/sft-qwen``: sft-qwen)."""
    return tracking.run_name or Path(output_dir).resolve().name


def tensorboard_dir(output_dir: Path) -> Path:
    return Path(output_dir).resolve() / "tensorboard"


def mlflow_store(output_dir: Path) -> Path:
    """MLflow's local file store when ``MLFLOW_TRACKING_URI`` is unset."""
    return Path(output_dir).resolve() / "mlruns"


def tracker_environment(
    tracking: TrackingConfig, output_dir: Path, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The variables the named trackers read that ``environ`` does not set already.

    Files go under the output directory: ``tensorboard/``, ``wandb/``, ``mlruns/`` (a
    local MLflow file store), ``trackio/``. ``tracking.project`` is wandb's project and
    MLflow's experiment (trainers pass it to trackio, and the run name to every tracker,
    as arguments). A variable the user set wins over all of these.
    """
    env = os.environ if environ is None else environ
    out = Path(output_dir).resolve()
    name = tracker_run_name(tracking, output_dir)
    want: dict[str, str] = {}
    if "tensorboard" in tracking.report_to:
        want["TENSORBOARD_LOGGING_DIR"] = str(tensorboard_dir(out))
    if "wandb" in tracking.report_to:
        want["WANDB_DIR"] = str(out)
        want["WANDB_NAME"] = name
        if tracking.project:
            want["WANDB_PROJECT"] = tracking.project
    if "mlflow" in tracking.report_to:
        if "MLFLOW_TRACKING_URI" not in env or "MLFLOW_TRACKING_URI" in _ours(env):
            # MLflow 3 keeps its file store only on request ("maintenance mode"); a
            # database store needs sqlalchemy, which mlflow-skinny lacks: set the URI.
            want["MLFLOW_TRACKING_URI"] = mlflow_store(out).as_uri()
            want["MLFLOW_ALLOW_FILE_STORE"] = "true"
        if tracking.project:
            want["MLFLOW_EXPERIMENT_NAME"] = tracking.project
    if "trackio" in tracking.report_to:
        want["TRACKIO_DIR"] = str(out / "trackio")  # read when trackio is first imported
    ours = _ours(env)
    return {k: v for k, v in want.items() if k not in env or env[k] == ours.get(k)}


def _ours(env: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``env`` that this process set itself and still hold that value."""
    if env is not os.environ:
        return {}
    return {k: v for k, v in _SET_BY_HEGELION.items() if env.get(k) == v}


def apply_tracker_environment(
    tracking: TrackingConfig,
    output_dir: Path,
    environ: MutableMapping[str, str] | None = None,
) -> dict[str, str]:
    """Set `tracker_environment` in ``environ`` (the process's by default); returns what
    it set. A later run in the same process may replace these values, never the user's."""
    env = os.environ if environ is None else environ
    values = tracker_environment(tracking, output_dir, env)
    earlier = _ours(env).get("MLFLOW_TRACKING_URI")
    env.update(values)
    if env is os.environ:
        _SET_BY_HEGELION.update(values)
    mlflow = sys.modules.get("mlflow")
    if earlier and "MLFLOW_TRACKING_URI" in values and mlflow is not None:
        # transformers sets MLflow's process-wide URI once and keeps it after: a later
        # run in this process would log into the earlier run's store.
        if mlflow.get_tracking_uri() == earlier:
            mlflow.set_tracking_uri(values["MLFLOW_TRACKING_URI"])
    return values


def finish_tracker_runs(report_to: Sequence[str]) -> None:
    """End the run a tracker leaves open after training: transformers' wandb callback
    keeps it until the process exits, so the next training in this process (a pipeline's
    next stage) would log into it, and the summary would not be written yet."""
    wandb = sys.modules.get("wandb")
    if "wandb" in report_to and wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


class _Forwarder:
    """A plugin for the ``hegelion_train_metrics`` hook that hands each row to ``send``."""

    def __init__(self, send: Callable[[int, dict[str, float]], None]) -> None:
        self.send = send

    @hookimpl
    def hegelion_train_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.send(step, metrics)


@contextmanager
def forward_train_metrics(send: Callable[[int, dict[str, float]], None]) -> Iterator[None]:
    """While inside, every row a `MetricsLog` logs (in this process) also goes to ``send``."""
    from hegelion_core.hooks import get_plugin_manager

    forwarder = _Forwarder(send)
    pm = get_plugin_manager()
    pm.register(forwarder)
    try:
        yield
    finally:
        pm.unregister(forwarder)
