"""``hegelion train --resume`` after ``kill -9``, and the checkpoint choice behind it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from hegelion_trl.checkpoints import checkpoint_step, latest_checkpoint, prepare_output
from trl_helpers import read_jsonl

from hegelion_core.errors import HegelionError

MAX_STEPS = 120
ROWS = 10
BATCH = 2  # 5 steps an epoch


def _checkpoint(root: Path, step: int, state: bytes | None) -> Path:
    path = root / "checkpoints" / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(b"weights")
    if state is not None:
        (path / "trainer_state.json").write_bytes(state)
    return path


def test_a_torn_checkpoint_is_skipped_and_later_metrics_dropped(tmp_path: Path) -> None:
    good = _checkpoint(tmp_path, 10, orjson.dumps({"global_step": 10}))
    torn = _checkpoint(tmp_path, 20, b'{"global_st')  # killed while writing its state
    unfinished = _checkpoint(tmp_path, 30, None)  # killed before its state
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_bytes(
        b"".join(orjson.dumps({"step": s, "loss": 1.0}) + b"\n" for s in range(1, 26))
        + b'{"step": 26, "lo'
    )  # and a torn last line
    assert latest_checkpoint(tmp_path) == good

    assert prepare_output(tmp_path, resume=True) == good
    assert not torn.exists() and not unfinished.exists()
    assert [r["step"] for r in read_jsonl(metrics)] == list(range(1, 11))

    with pytest.raises(HegelionError, match="pass --resume"):
        prepare_output(tmp_path, resume=False)


def test_resume_after_kill_9_continues_the_run(
    hegelion_dataset: Callable[..., Path], tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "hegelion_core",
        "train",
        "--trainer",
        "trl",
        "--model",
        str(tiny_model),
        "--data",
        str(hegelion_dataset("chat")),
        "--output",
        str(out),
        "-c",
        f"training.max_steps={MAX_STEPS}",
        "-c",
        "training.save_steps=10",
        "-c",
        f"training.per_device_train_batch_size={BATCH}",
        "-c",
        "training.max_seq_length=256",
        "-c",
        "training.learning_rate=1e-3",
        "-c",
        "lora.r=4",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = (tmp_path / "first.log").open("wb")
    first = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 300
    while latest_checkpoint(out) is None:
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    log.close()
    assert not (out / "manifest.json").exists(), "the run finished before the kill"
    killed_at = latest_checkpoint(out)
    assert killed_at is not None
    step = checkpoint_step(killed_at)
    assert 10 <= step < MAX_STEPS and step % 10 == 0
    before = [r for r in read_jsonl(out / "metrics.jsonl") if r["step"] <= step]
    assert [r["step"] for r in before] == list(range(1, step + 1))

    second = subprocess.run(
        [*cmd, "--resume"], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resuming from {killed_at} (step {step})" in second.stderr

    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, MAX_STEPS + 1))  # each step once, in order
    assert rows[:step] == before  # the killed run's curve is kept, not re-logged
    final = orjson.loads(
        (out / "checkpoints" / f"checkpoint-{MAX_STEPS}" / "trainer_state.json").read_bytes()
    )
    assert final["global_step"] == MAX_STEPS
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["metrics"]["steps"] == MAX_STEPS
    # The resumed process trained only the remaining steps: whole epochs of the same rows.
    tokens_per_epoch = rows[ROWS // BATCH - 1]["num_tokens"]
    remaining_epochs = (MAX_STEPS - step) // (ROWS // BATCH)
    assert manifest["metrics"]["tokens"] == remaining_epochs * tokens_per_epoch
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
