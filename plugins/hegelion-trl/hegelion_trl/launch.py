"""Multi-process training through ``accelerate launch``.

The parent (``hegelion train``) writes the job as JSON, starts ``accelerate launch
--config_file <ddp|zero2|zero3|fsdp|yours> --num_processes N ... -m
hegelion_trl.worker JOB``, and reads back the result that rank 0 wrote. Facts this
relies on (accelerate 1.15):

- ``accelerate launch --cpu --num_processes 2`` starts *one* process (its simple
  launcher expects mpirun for more). CPU data parallelism goes through the DDP
  config's torchrun launcher instead, with ``use_cpu`` in the training arguments,
  which makes accelerate pick the gloo backend (``DistributedType.MULTI_CPU``).
- A config file's ``mixed_precision`` overrides the training arguments' precision
  through ``ACCELERATE_MIXED_PRECISION``, so the shipped files say ``'no'`` and
  ``training.bf16`` decides.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from hegelion_core import HegelionError, TrainConfig

BUILTIN_CONFIGS = ("ddp", "zero2", "zero3", "fsdp")
RESULT_FILE = "trl_result.json"


class Job(BaseModel):
    """What every worker process needs: the same arguments as an in-process run."""

    data: Path
    output: Path
    config: TrainConfig
    resume_from: Path | None = None
    attn_implementation: str | None = None
    bnb_4bit_quant_type: str = "nf4"


def accelerate_config_path(name: str) -> Path:
    """A shipped config by name, or the user's own YAML file."""
    if name in BUILTIN_CONFIGS:
        ref = resources.files("hegelion_trl") / "accelerate_configs" / f"{name}.yaml"
        return Path(str(ref))
    path = Path(name).expanduser()
    if not path.is_file():
        raise HegelionError(
            f"accelerate_config={name!r}: not one of {', '.join(BUILTIN_CONFIGS)} and no such file"
        )
    return path


def check_engine(name: str, *, cuda: bool, scu: bool) -> None:
    """Refuse combinations that cannot work, before any process starts."""
    if name in ("zero2", "zero3", "fsdp") and not cuda:
        raise HegelionError(
            f"accelerate_config={name} shards across GPUs and this machine has no CUDA device; "
            "on CPU use accelerate_config=ddp (gloo)"
        )
    if name in ("zero2", "zero3"):
        try:
            import deepspeed  # noqa: F401
        except ImportError:
            raise HegelionError(
                f"accelerate_config={name} needs DeepSpeed: pip install 'hegelion-trl[deepspeed]'"
            ) from None
    if scu and name in ("zero3", "fsdp"):
        raise HegelionError(
            f"--scu needs the whole LoRA weights on every process to price them, and {name} shards "
            "them; use accelerate_config=ddp or zero2"
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accelerate_command(
    job_path: Path,
    *,
    num_processes: int,
    config_file: Path,
    num_machines: int = 1,
    machine_rank: int = 0,
    main_process_ip: str | None = None,
    main_process_port: int | None = None,
) -> list[str]:
    """The ``accelerate launch`` command line for the worker module."""
    if num_machines > 1 and (main_process_ip is None or main_process_port is None):
        raise HegelionError(
            "a multi-node launch (num_machines > 1) needs main_process_ip and "
            "main_process_port: the address of machine_rank 0"
        )
    port = main_process_port if main_process_port is not None else free_port()
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config_file),
        "--num_processes",
        str(num_processes),
        "--num_machines",
        str(num_machines),
        "--machine_rank",
        str(machine_rank),
        "--main_process_port",
        str(port),
    ]
    if main_process_ip is not None:
        cmd += ["--main_process_ip", main_process_ip]
    return [*cmd, "-m", "hegelion_trl.worker", str(job_path)]


def job_file(output_dir: Path, machine_rank: int) -> Path:
    """One job file per machine: on a shared filesystem the machines must not collide."""
    return output_dir / f"trl_job-{machine_rank}.json"


def launch(job: Job, command: list[str], *, reports: bool = True) -> dict[str, Any]:
    """Run the launch; return the result rank 0 wrote. ``reports``: this is machine 0,
    which owns the result (other machines of a multi-node run return {})."""
    from hegelion_core import atomic_output

    job.output.mkdir(parents=True, exist_ok=True)
    result_path = job.output / RESULT_FILE
    if reports:
        result_path.unlink(missing_ok=True)
    job_path = Path(command[-1])
    with atomic_output(job_path) as tmp:
        tmp.write_text(job.model_dump_json(indent=2), encoding="utf-8")
    proc = subprocess.run(command, check=False)
    if proc.returncode != 0:
        raise HegelionError(
            f"accelerate launch exited with status {proc.returncode}; "
            "the workers' errors are printed above"
        )
    if not reports or not result_path.exists():
        return {}
    import orjson

    return orjson.loads(result_path.read_bytes())
