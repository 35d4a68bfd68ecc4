"""Fixtures for the mlx-lm consumer tests.

These run in an environment with mlx-lm[cpu] and Hegelion core but no torch, so
only the tokenizer half of `hegelion_core.testing.tiny_models` is used: mlx-lm's
data loading needs a tokenizer, not model weights. Everything stays offline.
"""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: a test that tries the network must fail.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from click.testing import CliRunner, Result  # noqa: E402

from hegelion_core.testing.sample_traces import write_sample_traces  # noqa: E402
from hegelion_core.testing.tiny_models import build_tiny_tokenizer  # noqa: E402


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny tokenizer (no weights: building those needs torch)."""
    out = tmp_path_factory.mktemp("tiny-tokenizer")
    build_tiny_tokenizer().save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def mlx_tokenizer(tiny_tokenizer_dir: Path) -> Any:
    """The tokenizer as `mlx_lm.lora` gets it: a `TokenizerWrapper` loaded from disk."""
    from mlx_lm.utils import load_tokenizer

    return load_tokenizer(tiny_tokenizer_dir)


@pytest.fixture(scope="session")
def sample_traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_traces(tmp_path_factory.mktemp("traces") / "traces.jsonl")


@pytest.fixture
def run_dataset(sample_traces: Path, tmp_path: Path) -> Callable[..., tuple[Result, Path]]:
    """``run_dataset(fmt, *extra_args) -> (result, out)``: ``hegelion dataset`` on the sample traces."""
    from hegelion_core.cli import cli

    def run(fmt: str, *extra_args: str) -> tuple[Result, Path]:
        out = tmp_path / (f"{fmt}-out" if fmt == "mlx" else f"{fmt}.jsonl")
        args = ["dataset", str(sample_traces), str(out), "--format", fmt, *extra_args]
        return CliRunner().invoke(cli, args, catch_exceptions=False), out

    return run


@pytest.fixture
def formatted(run_dataset: Callable[..., tuple[Result, Path]]) -> Callable[..., Path]:
    """``formatted(fmt, *extra_args) -> Path``: the output of a ``hegelion dataset`` run.

    Returns the output path (a directory for ``--format mlx``). Fails the test with
    the CLI's own output when the command does not succeed.
    """

    def run(fmt: str, *extra_args: str) -> Path:
        result, out = run_dataset(fmt, *extra_args)
        assert result.exit_code == 0, f"hegelion dataset --format {fmt} {extra_args} failed:\n{result.output}"
        assert out.exists(), f"hegelion dataset --format {fmt} {extra_args} wrote nothing at {out}"
        return out

    return run
