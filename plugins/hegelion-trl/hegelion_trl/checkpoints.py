"""Which checkpoint a resumed run continues from, and making the output agree with it.

transformers writes a checkpoint's files one after another and ``trainer_state.json``
last, so after ``kill -9`` the newest ``checkpoint-N`` directory may be half written.
A checkpoint counts only when its ``trainer_state.json`` parses and names step N.
Resuming also drops ``metrics.jsonl`` rows logged after that step (they are logged
again), so the curve has each step once.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

import orjson

from hegelion_core import HegelionError
from hegelion_trl.config_map import checkpoints_dir

_CHECKPOINT = re.compile(r"checkpoint-(\d+)")
TRAINER_STATE = "trainer_state.json"


def read_trainer_state(checkpoint: Path) -> dict[str, Any] | None:
    """The checkpoint's trainer state, or None when it is missing or torn."""
    try:
        state = orjson.loads((checkpoint / TRAINER_STATE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return state if isinstance(state, dict) else None


def checkpoint_dirs(output_dir: Path) -> list[tuple[int, Path]]:
    """Every ``checkpoint-N`` directory, complete or not, by step."""
    root = checkpoints_dir(output_dir)
    if not root.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if p.is_dir() and (m := _CHECKPOINT.fullmatch(p.name))
    ]
    return sorted(found)


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint."""
    for step, path in reversed(checkpoint_dirs(output_dir)):
        state = read_trainer_state(path)
        if state is not None and state.get("global_step") == step:
            return path
    return None


def checkpoint_step(checkpoint: Path) -> int:
    m = _CHECKPOINT.fullmatch(checkpoint.name)
    if not m:
        raise ValueError(f"not a checkpoint directory: {checkpoint}")
    return int(m.group(1))


def truncate_metrics(output_dir: Path, last_step: int) -> None:
    """Keep the ``metrics.jsonl`` rows up to ``last_step``: later ones are logged again."""
    from hegelion_core import atomic_output

    path = Path(output_dir) / "metrics.jsonl"
    if not path.exists():
        return
    keep = []
    for line in path.read_bytes().splitlines():
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a torn last line from a killed run
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= last_step:
            keep.append(orjson.dumps(row) + b"\n")
    with atomic_output(path) as tmp:
        tmp.write_bytes(b"".join(keep))


def prepare_output(output_dir: Path, resume: bool) -> Path | None:
    """Check the output directory for this run; return the checkpoint to resume from.

    Without ``resume``, checkpoints of an earlier run are an error: training on would
    mix two runs' metrics and rotate the old checkpoints away.
    """
    found = checkpoint_dirs(output_dir)
    if not resume:
        if found:
            raise HegelionError(
                f"{checkpoints_dir(output_dir)} holds checkpoints of an earlier run: pass --resume "
                f"to continue it, or choose a new --output"
            )
        truncate_metrics(output_dir, 0)  # a run killed before its first checkpoint starts over
        return None
    latest = latest_checkpoint(output_dir)
    if latest is None:
        print(
            f"hegelion-trl: no complete checkpoint in {checkpoints_dir(output_dir)}; "
            "starting from the beginning",
            file=sys.stderr,
        )
        truncate_metrics(output_dir, 0)
        return None
    step = checkpoint_step(latest)
    for other_step, path in found:
        if other_step > step:  # torn by the kill; training writes it again
            shutil.rmtree(path, ignore_errors=True)
    truncate_metrics(output_dir, step)
    print(f"hegelion-trl: resuming from {latest} (step {step})", file=sys.stderr)
    return latest
