"""Checkpoints for ``--resume``: adapter, optimizer state and loop state per step.

``output/checkpoints/<step>_adapters.safetensors`` is the file ``mlx_lm.lora
--resume-adapter-file`` reads. Beside it, ``<step>_optimizer.safetensors`` (Adam's
moments, the step count, the RNG key) and ``<step>_state.json`` (data position,
counters, the SCU controller). The JSON is written last, each file through a rename,
so a run killed mid-save leaves either a whole checkpoint or none: a checkpoint
without its JSON is ignored and swept away.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_STATE = re.compile(r"^(\d+)_state\.json$")


@dataclass(frozen=True)
class Checkpoint:
    step: int
    adapters: Path
    optimizer: Path
    state: dict[str, Any]


def _paths(directory: Path, step: int) -> tuple[Path, Path, Path]:
    stem = f"{step:07d}"
    return (
        directory / f"{stem}_adapters.safetensors",
        directory / f"{stem}_optimizer.safetensors",
        directory / f"{stem}_state.json",
    )


def _save_tensors(path: Path, tensors: dict[str, Any]) -> None:
    import mlx.core as mx

    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.safetensors")
    mx.save_safetensors(str(tmp), tensors)
    os.replace(tmp, path)


def save_checkpoint(
    directory: Path,
    step: int,
    adapters: dict[str, Any],
    optimizer: dict[str, Any],
    state: dict[str, Any],
    *,
    keep: int,
) -> Checkpoint:
    """Write checkpoint ``step`` and keep only the newest ``keep`` complete ones."""
    directory.mkdir(parents=True, exist_ok=True)
    a, o, s = _paths(directory, step)
    _save_tensors(a, adapters)
    _save_tensors(o, optimizer)
    tmp = s.with_name(f".{s.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({**state, "step": step}), encoding="utf-8")
    os.replace(tmp, s)
    prune(directory, keep)
    return Checkpoint(step, a, o, {**state, "step": step})


def complete_steps(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    steps = []
    for p in directory.iterdir():
        m = _STATE.match(p.name)
        if m and all(x.is_file() for x in _paths(directory, int(m.group(1)))[:2]):
            steps.append(int(m.group(1)))
    return sorted(steps)


def latest_checkpoint(directory: Path) -> Checkpoint | None:
    """The newest complete checkpoint in ``directory``, or None."""
    steps = complete_steps(directory)
    if not steps:
        return None
    a, o, s = _paths(directory, steps[-1])
    return Checkpoint(steps[-1], a, o, json.loads(s.read_text(encoding="utf-8")))


def prune(directory: Path, keep: int) -> None:
    """Keep the newest ``keep`` complete checkpoints; drop older ones and every
    partial file a killed save left (temporaries, tensors whose JSON never landed).
    Call it only between saves."""
    kept = set(complete_steps(directory)[-keep:])
    for p in directory.iterdir():
        if p.name.startswith(".") and ".tmp-" in p.name:
            p.unlink(missing_ok=True)
            continue
        m = re.match(r"^(\d+)_", p.name)
        if m and int(m.group(1)) not in kept:
            p.unlink(missing_ok=True)
