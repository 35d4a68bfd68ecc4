"""``--resume`` after ``kill -9``: the run continues from its last checkpoint and ends
exactly where an uninterrupted run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlx.core as mx
import pytest
from click.testing import CliRunner
from hegelion_mlx.checkpoints import latest_checkpoint
from hegelion_mlx.trainer import MLXTrainer
from mlx_testutil import read_jsonl, train_config

from hegelion_core.cli import cli
from hegelion_core.errors import HegelionError

# Constant learning rate and no dropout: then the killed run's first steps, the
# resumed run and a fresh run of the same length are the same computation.
ARGS = [
    "-c",
    "lora.r=8",
    "-c",
    "lora.lora_alpha=16",
    "-c",
    "lora.lora_dropout=0.0",
    "-c",
    "training.learning_rate=1e-2",
    "-c",
    "training.lr_scheduler_type=constant",
    "-c",
    "training.warmup_ratio=0",
    "-c",
    "training.save_steps=3",
    "-o",
    "steps_per_eval=0",
    "-o",
    "progress=false",
]


def start_training(model: Path, data: Path, out: Path) -> subprocess.Popen[bytes]:
    """``hegelion train`` in its own process, long enough that only kill -9 ends it."""
    cmd = [
        sys.executable,
        "-c",
        "from hegelion_core.cli import main; main()",
        "train",
        "--trainer",
        "mlx",
        "--model",
        str(model),
        "--data",
        str(data),
        "--output",
        str(out),
        "-c",
        "training.max_steps=100000",
        *ARGS,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_resume_after_kill_continues_from_the_checkpoint(
    tiny_model: Path, mlx_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    proc = start_training(tiny_model, mlx_data, out)
    try:
        deadline = time.monotonic() + 240
        while latest_checkpoint(out / "checkpoints") is None:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "adapter").exists(), "the killed run must not have finished"

    checkpoint = latest_checkpoint(out / "checkpoints")
    assert checkpoint is not None and checkpoint.step % 3 == 0
    # A save torn by a kill (tensors without their JSON) must be ignored, then swept.
    torn = out / "checkpoints" / f"{checkpoint.step + 1000:07d}_adapters.safetensors"
    torn.write_bytes(b"partial")
    assert latest_checkpoint(out / "checkpoints").step == checkpoint.step

    final = checkpoint.step + 4
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
            str(out),
            "--resume",
            "-c",
            f"training.max_steps={final}",
            *ARGS,
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert f"resumed_from_step {checkpoint.step}" in result.output
    assert not torn.exists()

    steps = [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, final + 1)), (
        "each step once: the killed run's extra steps are dropped"
    )

    reference = tmp_path / "reference"
    config = train_config(tiny_model, training={"max_steps": final, "save_steps": 3})
    MLXTrainer({"steps_per_eval": 0, "progress": False}).train(mlx_data, reference, config)
    resumed = mx.load(str(out / "mlx_adapter" / "adapters.safetensors"))
    fresh = mx.load(str(reference / "mlx_adapter" / "adapters.safetensors"))
    assert resumed.keys() == fresh.keys()
    for key in fresh:
        assert mx.allclose(resumed[key], fresh[key], atol=1e-6, rtol=1e-5), key
    assert float(mx.abs(fresh["model.layers.0.self_attn.q_proj.lora_b"]).max()) > 1e-3


def test_resume_with_other_lora_settings_is_refused(
    tiny_model: Path, mlx_data: Path, tmp_path: Path
) -> None:
    trainer = MLXTrainer({"steps_per_eval": 0, "progress": False})
    trainer.train(
        mlx_data, tmp_path, train_config(tiny_model, training={"max_steps": 3, "save_steps": 2})
    )
    assert latest_checkpoint(tmp_path / "checkpoints").step == 2
    other = train_config(tiny_model, resume=True, lora={"r": 4}, training={"max_steps": 3})
    with pytest.raises(HegelionError, match="other LoRA settings"):
        trainer.train(mlx_data, tmp_path, other)
    assert latest_checkpoint(tmp_path / "checkpoints").step == 2, (
        "a refused resume keeps the checkpoint"
    )
