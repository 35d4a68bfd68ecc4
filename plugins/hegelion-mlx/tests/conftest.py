"""Fixtures: a tiny Llama built on the spot, datasets from the real ``hegelion dataset``
(both the pytest plugin's in hegelion_core.testing, under the names these tests use).

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

# tiny_model, sample_traces and hegelion_dataset are the pytest plugin's in
# hegelion_core.testing (a 2-block random Llama, the twenty short sample traces, and the
# real `hegelion dataset` on them).


@pytest.fixture(scope="module")
def make_dataset(hegelion_dataset: Callable[..., Path]) -> Callable[..., Path]:
    """``make_dataset(fmt, *args) -> Path``: the real ``hegelion dataset`` CLI's output."""
    return hegelion_dataset


@pytest.fixture(scope="module")
def mlx_data(hegelion_dataset: Callable[..., Path]) -> Path:
    """An mlx split directory: 16 train rows, 4 valid rows."""
    return hegelion_dataset("mlx", "--valid-ratio", "0.2", "--seed", "0")
