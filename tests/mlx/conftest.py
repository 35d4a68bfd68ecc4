"""Fixtures for the mlx-lm consumer tests.

These run in an environment with mlx-lm[cpu] and Hegelion core but no torch, so of
core's pytest plugin they use ``tiny_tokenizer_dir`` (mlx-lm's data loading needs a
tokenizer, not model weights), ``sample_traces`` (the twenty short traces) and
``hegelion_dataset``. Everything stays offline.
"""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: a test that tries the network must fail.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mlx_tokenizer(tiny_tokenizer_dir: Path) -> Any:
    """The tokenizer as `mlx_lm.lora` gets it: a `TokenizerWrapper` loaded from disk."""
    from mlx_lm.utils import load_tokenizer

    return load_tokenizer(tiny_tokenizer_dir)
