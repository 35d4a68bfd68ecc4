"""Fixtures: datasets made by Hegelion's own `hegelion dataset`, and a tiny local model.

These tests run in CI without a GPU. Everything that needs CUDA is in
``tests/gpu/run_gpu_checks.py``, a script run on a GPU machine, never collected here.
"""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: a test that tries the network must fail.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import orjson  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from hegelion_core.testing import sample_records  # noqa: E402

collect_ignore = ["gpu"]

Formatted = Callable[..., Path]


@pytest.fixture(scope="session")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Core's sample trace records, written as `hegelion generate` writes them."""
    path = tmp_path_factory.mktemp("traces") / "traces.jsonl"
    path.write_bytes(
        b"".join(orjson.dumps(r.model_dump(mode="json")) + b"\n" for r in sample_records())
    )
    return path


@pytest.fixture(scope="session")
def formatted(traces: Path, tmp_path_factory: pytest.TempPathFactory) -> Formatted:
    """``formatted(fmt, *args) -> Path``: the output of ``hegelion dataset`` on the traces."""
    from hegelion_core.cli import cli

    out_dir = tmp_path_factory.mktemp("datasets")

    def run(fmt: str, *args: str) -> Path:
        out = out_dir / f"{fmt}{'-'.join(('',) + args).replace('--', '')}.jsonl"
        if not out.exists():
            result = CliRunner().invoke(
                cli,
                ["dataset", str(traces), str(out), "--format", fmt, *args],
                catch_exceptions=False,
            )
            assert result.exit_code == 0, result.output
        return out

    return run


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Qwen2 with a ChatML tokenizer, built locally (no hub)."""
    from hegelion_core.testing.tiny_models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2"), arch="qwen2", seed=0)


@pytest.fixture(scope="session")
def hegelion_exe() -> Path:
    """The `hegelion` console script of the interpreter running the tests."""
    exe = Path(sys.executable).parent / "hegelion"
    assert exe.exists(), f"hegelion-core is not installed next to {sys.executable}"
    return exe
