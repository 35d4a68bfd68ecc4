"""Multi-process training through ``accelerate launch``: the shipped engine configs,
the command line, the refusals, and a real 2-process CPU run (gloo)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from click.testing import CliRunner
from hegelion_trl.launch import (
    BUILTIN_CONFIGS,
    accelerate_command,
    accelerate_config_path,
    check_engine,
    job_file,
)
from trl_helpers import read_jsonl

from hegelion_core.cli import cli
from hegelion_core.errors import HegelionError


@pytest.mark.parametrize(
    ("name", "engine"),
    [("ddp", "MULTI_GPU"), ("zero2", "DEEPSPEED"), ("zero3", "DEEPSPEED"), ("fsdp", "FSDP")],
)
def test_shipped_configs_load_in_accelerate(name: str, engine: str) -> None:
    path = accelerate_config_path(name)
    assert path.is_file() and path.parent.name == "accelerate_configs"
    loaded = load_config_from_file(str(path))
    assert loaded.distributed_type.value == engine
    # Precision comes from training.bf16: a config's bf16 would override it through the env.
    assert str(loaded.mixed_precision) in ("no", "PrecisionType.NO")
    if name.startswith("zero"):
        assert loaded.deepspeed_config["zero_stage"] == int(name[-1])


def test_user_config_path_and_unknown_name(tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("distributed_type: MULTI_GPU\n")
    assert accelerate_config_path(str(mine)) == mine
    with pytest.raises(HegelionError, match="not one of ddp, zero2, zero3, fsdp"):
        accelerate_config_path("zero9")
    assert set(BUILTIN_CONFIGS) == {"ddp", "zero2", "zero3", "fsdp"}


def test_command_line_single_and_multi_node(tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    cmd = accelerate_command(job, num_processes=2, config_file=accelerate_config_path("ddp"))
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[-3:] == ["-m", "hegelion_trl.worker", str(job)]
    assert cmd[cmd.index("--num_processes") + 1] == "2"
    assert int(cmd[cmd.index("--main_process_port") + 1]) > 0
    assert "--main_process_ip" not in cmd

    multi = accelerate_command(
        job,
        num_processes=16,
        config_file=accelerate_config_path("zero2"),
        num_machines=2,
        machine_rank=1,
        main_process_ip="10.0.0.1",
        main_process_port=29500,
    )
    pairs = dict(zip(multi[3:-3:2], multi[4:-3:2], strict=True))
    assert pairs == {
        "--config_file": str(accelerate_config_path("zero2")),
        "--num_processes": "16",
        "--num_machines": "2",
        "--machine_rank": "1",
        "--main_process_port": "29500",
        "--main_process_ip": "10.0.0.1",
    }
    # On a shared filesystem, each machine writes its own job file.
    assert job_file(tmp_path, 0) != job_file(tmp_path, 1)
    with pytest.raises(HegelionError, match="main_process_ip and main_process_port"):
        accelerate_command(
            job, num_processes=16, config_file=accelerate_config_path("ddp"), num_machines=2
        )


def test_engines_that_cannot_run_are_refused_up_front() -> None:
    check_engine("ddp", cuda=False, scu=True)  # the CPU path: allowed
    with pytest.raises(HegelionError, match="on CPU use accelerate_config=ddp"):
        check_engine("zero2", cuda=False, scu=False)
    with pytest.raises(HegelionError, match="hegelion-trl\\[deepspeed\\]"):
        check_engine("zero2", cuda=True, scu=False)  # deepspeed is not installed here
    with pytest.raises(HegelionError, match="--scu needs the whole LoRA weights"):
        check_engine("fsdp", cuda=True, scu=True)


def test_two_cpu_processes_train_and_save(
    hegelion_dataset: Callable[..., Path], tiny_model: Path, tmp_path: Path
) -> None:
    """``--num-processes 2`` runs two gloo ranks through accelerate's torchrun launcher."""
    out = tmp_path / "run"
    args = [
        "train",
        "--trainer",
        "trl",
        "--model",
        str(tiny_model),
        "--data",
        str(hegelion_dataset("chat")),
        "--output",
        str(out),
        "--num-processes",
        "2",
        "--scu",
        "-c",
        "training.max_steps=4",
        "-c",
        "training.per_device_train_batch_size=2",
        "-c",
        "training.save_steps=2",
        "-c",
        "training.learning_rate=1e-2",
        "-c",
        "training.max_seq_length=256",
        "-o",
        "accelerate_config=ddp",
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output

    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "adapter" / "adapter_config.json").is_file()
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # rank 0 alone wrote them
    # 10 rows over 2 ranks of batch 2: 3 steps an epoch (one process: 5, epoch 0.8 at step 4).
    assert rows[-1]["epoch"] == pytest.approx(4 / 3)
    assert all("lambda" in r and "S" in r for r in rows)
    assert (out / "checkpoints" / "checkpoint-4" / "trainer_state.json").is_file()
    import orjson

    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["config"]["num_processes"] == 2
    assert manifest["metrics"]["steps"] == 4
