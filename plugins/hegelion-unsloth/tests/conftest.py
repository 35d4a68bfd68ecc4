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
from pathlib import Path  # noqa: E402

import orjson  # noqa: E402
import pytest  # noqa: E402
from unsloth_helpers import Formatted  # noqa: E402

from hegelion_core.testing import sample_records  # noqa: E402

collect_ignore = ["gpu"]


# tiny_qwen2 and hegelion_dataset are the pytest plugin's in hegelion_core.testing.


@pytest.fixture(scope="session")
def sample_traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Core's three varied sample records (not the twenty short traces), written as
    `hegelion generate` writes them: what ``hegelion_dataset`` formats here."""
    path = tmp_path_factory.mktemp("traces") / "traces.jsonl"
    path.write_bytes(
        b"".join(orjson.dumps(r.model_dump(mode="json")) + b"\n" for r in sample_records())
    )
    return path


@pytest.fixture(scope="module")
def formatted(hegelion_dataset: Formatted) -> Formatted:
    """``formatted(fmt, *args) -> Path``: the output of ``hegelion dataset`` on the traces."""
    return hegelion_dataset


@pytest.fixture(scope="session")
def hegelion_exe() -> Path:
    """The `hegelion` console script of the interpreter running the tests."""
    exe = Path(sys.executable).parent / "hegelion"
    assert exe.exists(), f"hegelion-core is not installed next to {sys.executable}"
    return exe
