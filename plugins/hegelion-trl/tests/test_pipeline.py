"""`hegelion run` with a real trl train stage: killed during training, the rerun does not
redo generate or format and continues the training from its last checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ECHO = Path(__file__).resolve().parents[3] / "tests" / "plugins" / "hegelion-echo"


@pytest.fixture(scope="module")
def echo_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example echo teacher, pip-installed for real into a directory of its own."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(ECHO),
        ],
        check=True,
        capture_output=True,
    )
    return target


def env(site: Path) -> dict[str, str]:
    return os.environ | {
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    }


def run(site: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hegelion_core", "run", str(config), *args],
        check=False,
        capture_output=True,
        text=True,
        env=env(site),
        timeout=600,
    )


def test_killed_in_train_the_rerun_skips_generate_and_format_and_resumes(
    echo_site: Path, tiny_model: Path, tmp_path: Path
) -> None:
    (tmp_path / "prompts.txt").write_text("\n".join(f"Is claim {i} true?" for i in range(8)) + "\n")
    config = tmp_path / "pipe.yaml"
    config.write_text(f"""\
name: chain
workdir: {tmp_path / "w"}
stages:
  generate: {{teacher: echo, mode: single, prompt_file: prompts.txt, limit: 8}}
  format: {{format: chat}}
  train:
    trainer: trl
    model: {tiny_model}
    config:
      lora: {{r: 4, lora_alpha: 8}}
      training: {{max_steps: 60, save_steps: 2, per_device_train_batch_size: 2, max_seq_length: 256}}
""")
    w = tmp_path / "w"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hegelion_core", "run", str(config)],
        env=env(echo_site),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def checkpointed() -> bool:  # any checkpoint at step 4 or later (older ones are pruned)
        return any(
            int(c.name.rsplit("-", 1)[1]) >= 4
            for c in (w / "train" / "checkpoints").glob("checkpoint-*")
        )

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not checkpointed():
        assert proc.poll() is None, "the pipeline ended before it could be interrupted"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (w / "format" / "stage.json").is_file() and not (w / "train" / "stage.json").exists()
    traces = (w / "generate" / "traces.jsonl").read_bytes()

    again = run(echo_site, config)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "generate: unchanged, skipped" in again.stderr
    assert "format: unchanged, skipped" in again.stderr
    assert "train: resuming train" in again.stderr and "--resume" in again.stderr
    assert (w / "generate" / "traces.jsonl").read_bytes() == traces
    steps = [
        json.loads(x)["step"] for x in (w / "train" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps[-1] == 60 and steps == sorted(steps)
    record = json.loads((w / "train" / "stage.json").read_text())
    assert record["artifact"]["adapter"].endswith("adapter") and record["figures"]["steps"] == 60


def test_simplex_stages_chain_each_from_the_previous_adapter(
    tiny_model: Path, tmp_path: Path
) -> None:
    config = tmp_path / "simplex.yaml"
    config.write_text(f"""\
name: chain
workdir: {tmp_path / "w"}
stages:
  context-data: {{uses: simplex, stage: context, n: 40, eval_n: 10}}
  context-train:
    uses: train
    trainer: trl
    model: {tiny_model}
    config: {{lora: {{r: 4, lora_alpha: 8}}, training: {{max_steps: 4, per_device_train_batch_size: 4, max_seq_length: 1024}}}}
  calibration-data: {{uses: simplex, stage: calibration, n: 40, eval_n: 10}}
  calibration-train:
    uses: train
    trainer: trl
    init_adapter: "stage:context-train"
    config: {{training: {{max_steps: 4, per_device_train_batch_size: 4, max_seq_length: 1024}}}}
""")
    done = subprocess.run(
        [sys.executable, "-m", "hegelion_core", "run", str(config)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "w" / "calibration-train" / "stage.json").read_text())
    argv = record["commands"][0]
    assert argv[argv.index("--model") + 1] == str(tiny_model)  # the first stage's base
    assert f"init_adapter={tmp_path / 'w' / 'context-train' / 'adapter'}" in argv
    assert argv[argv.index("--data") + 1] == str(tmp_path / "w" / "calibration-data" / "data")
