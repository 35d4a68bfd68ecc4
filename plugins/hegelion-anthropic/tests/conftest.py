"""Fixtures: a fake Anthropic key for every test (the scripted servers,
``anthropic_server`` and the rest, are the pytest plugin's in hegelion_core.testing)."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture(autouse=True)
def api_key(fake_api_key: Callable[..., str]) -> str:
    """ANTHROPIC_API_KEY set to a fake key; no user secrets.toml, no other credential."""
    return fake_api_key(
        "ANTHROPIC_API_KEY",
        clear=("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_PROFILE"),
    )
