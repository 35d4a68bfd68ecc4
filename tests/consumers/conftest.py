"""Fixtures for consumer tests: Hegelion's formatted output fed to real trainers.

Everything is offline: the models are core's pytest plugin's ``tiny_model`` and
``tiny_qwen2`` (tiny random ones built on the spot) and the data is its
``hegelion_dataset``, Hegelion's own ``hegelion dataset`` command run on the traces
below, so the tests check what users actually get, not rows written to please a trainer.
"""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: a test that tries the network must fail.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from hegelion_core.testing.sample_traces import write_sample_traces  # noqa: E402

# Short on purpose: the rendered rows must fit a 256-token window with room to spare.
SAMPLE_TRACES: tuple[tuple[str, str, str, str], ...] = (
    (
        "Is free will compatible with determinism?",
        "Free will needs only that we act on our own reasons.",
        "If every act is fixed in advance, the reasons are fixed too.",
        "Freedom is acting from reasons, even when the reasons have causes.",
    ),
    (
        "Do markets allocate resources well?",
        "Prices carry information no planner could collect.",
        "Pollution and monopoly show that prices can lie.",
        "Markets work best inside rules that make prices tell the truth.",
    ),
    (
        "Where does knowledge come from?",
        "All knowledge begins as experience of the senses.",
        "Logic and mathematics hold before any experience.",
        "Experience gives the content and reason gives the form.",
    ),
    (
        "Should we trust intuition or evidence?",
        "Intuition is fast and often right about people.",
        "Intuition fails on numbers, where evidence is needed.",
        "Trust intuition to raise questions and evidence to answer them.",
    ),
    (
        "Is history driven by ideas?",
        "Ideas change what people think is possible.",
        "Material conditions decide which ideas can spread.",
        "Ideas and conditions shape each other through conflict.",
    ),
    (
        "Can a good argument fail to persuade?",
        "A sound argument should convince any reasonable person.",
        "People weigh who speaks, not only what is said.",
        "A good argument persuades when it also earns trust.",
    ),
    (
        "Is privacy worth less than security?",
        "Security protects lives, so it comes first.",
        "Without privacy, power over people grows unchecked.",
        "Security that respects limits keeps both lives and freedom.",
    ),
    (
        "Should science be funded by need or curiosity?",
        "Funding should follow the most urgent needs.",
        "The biggest advances came from curious research.",
        "Fund a mix, because curiosity feeds the answers needs require.",
    ),
)


@pytest.fixture(scope="session")
def sample_traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """These eight longer traces, for the plugin's ``hegelion_dataset``: rows nearer a
    real answer's length, still inside a 256-token window."""
    return write_sample_traces(tmp_path_factory.mktemp("traces") / "traces.jsonl", SAMPLE_TRACES)
