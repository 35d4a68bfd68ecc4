"""Fixtures for hegelion-trl: a tiny offline model and data made by ``hegelion dataset``.

The data is what users get: trace records run through Hegelion's real
``hegelion dataset`` CLI, never rows written to please TRL.

Torch runs on one thread: on a shared 2-core machine, OpenMP's spinning threads
made a tiny training step 20 times slower (0.8 s instead of 0.04 s) whenever the
other core was busy.
"""

from __future__ import annotations

import os

# Before anything imports huggingface_hub or torch.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import torch
from click.testing import CliRunner
from trl_helpers import trace_records

from hegelion_core.testing.tiny_models import build_tiny_model

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random Llama with a ChatML tokenizer (generation markers included)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), arch="llama", seed=0)


@pytest.fixture(scope="session")
def traces_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("traces") / "traces.jsonl"
    path.write_bytes(
        b"".join(orjson.dumps(r.model_dump(mode="json")) + b"\n" for r in trace_records())
    )
    return path


@pytest.fixture(scope="session")
def dataset(traces_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``dataset(fmt, *args)``: the output of ``hegelion dataset TRACES OUT --format fmt *args``.

    A directory when ``args`` ask for splits (``--valid-ratio``), else a JSONL file.
    Cached per arguments for the session.
    """
    from hegelion_core.cli import cli

    made: dict[tuple[str, ...], Path] = {}

    def run(fmt: str, *args: str) -> Path:
        key = (fmt, *args)
        if key not in made:
            root = tmp_path_factory.mktemp(f"data-{fmt}")
            split = any(a.startswith("--valid-ratio") for a in args) or fmt == "mlx"
            out = root / ("data" if split else f"{fmt}.jsonl")
            argv = ["dataset", str(traces_file), str(out), "--format", fmt, *args]
            result = CliRunner().invoke(cli, argv, catch_exceptions=False)
            assert result.exit_code == 0, f"hegelion {' '.join(argv)}:\n{result.output}"
            made[key] = out
        return made[key]

    return run
