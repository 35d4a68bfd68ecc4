"""Fixtures for hegelion-trl: core's pytest plugin gives ``tiny_model`` and
``hegelion_dataset`` (the real ``hegelion dataset`` CLI run on trace records, never rows
written to please TRL); here ``sample_traces`` is overridden with `trl_helpers.TRACES`,
ten short traces, so "at least 90% parse" means at most one miss.

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

from pathlib import Path

import pytest
import torch
from trl_helpers import TRACES

from hegelion_core.testing.sample_traces import write_sample_traces

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def sample_traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`trl_helpers.TRACES` as trace records, for the plugin's ``hegelion_dataset``."""
    return write_sample_traces(tmp_path_factory.mktemp("trl-traces") / "traces.jsonl", TRACES)
