"""Fixtures: a scripted Anthropic-compatible server for the whole session, and a fake
key in the environment."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from hegelion_core.testing.openai_server import ScriptedAnthropicServer

#: A fake key: the tests check it is sent and never shown, it opens nothing.
FAKE_KEY = "sk-ant-hegelion-test-" + secrets.token_hex(12)


@pytest.fixture(scope="session")
def scripted() -> Iterator[ScriptedAnthropicServer]:
    with ScriptedAnthropicServer() as server:
        yield server


@pytest.fixture
def server(scripted: ScriptedAnthropicServer) -> Iterator[ScriptedAnthropicServer]:
    """The session's scripted server, with no script and no recorded requests."""
    scripted.reset()
    scripted.latency = 0.0
    yield scripted
    scripted.reset()


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """ANTHROPIC_API_KEY set to a fake key; no user secrets.toml, no other credential."""
    monkeypatch.setenv("HEGELION_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    for name in ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return FAKE_KEY
