"""Fixtures: a tiny Llama built on the spot, datasets from the real ``hegelion dataset``.

Everything runs offline on mlx's CPU backend. The model is a 2-block random Llama
with a ChatML tokenizer (`hegelion_core.testing.tiny_models`), saved in the Hugging
Face layout and loaded by mlx-lm from that directory, exactly as a user's model is.
"""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: a test that tries the network must fail.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from hegelion_core.testing.sample_traces import write_sample_traces


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hegelion_core.testing.tiny_models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_traces(tmp_path_factory.mktemp("traces") / "traces.jsonl")


@pytest.fixture(scope="session")
def make_dataset(traces: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``make_dataset(fmt, *args) -> Path``: the real ``hegelion dataset`` CLI's output."""
    from hegelion_core.cli import cli

    made: dict[tuple[str, ...], Path] = {}

    def make(fmt: str, *args: str) -> Path:
        key = (fmt, *args)
        if key not in made:
            out = tmp_path_factory.mktemp(f"data-{fmt}") / ("mlx" if fmt == "mlx" else f"{fmt}.jsonl")
            result = CliRunner().invoke(cli, ["dataset", str(traces), str(out), "--format", fmt, *args],
                                        catch_exceptions=False)
            assert result.exit_code == 0, result.output
            made[key] = out
        return made[key]

    return make


@pytest.fixture(scope="session")
def mlx_data(make_dataset: Callable[..., Path]) -> Path:
    """An mlx split directory: 16 train rows, 4 valid rows."""
    return make_dataset("mlx", "--valid-ratio", "0.2", "--seed", "0")
