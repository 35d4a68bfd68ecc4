"""Fixtures: a test key, the shared scripted server, and the real Kimi CLI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import kimi_cli_env
import pytest

from hegelion_core.testing.openai_server import ScriptedOpenAIServer

#: Never a real key; long enough for `hegelion_core.secrets.scrub` to hide it.
TEST_KEY = "sk-hegelion-kimi-test-7f3a9c2e51"


@pytest.fixture
def moonshot_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """MOONSHOT_API_KEY set to the test key; no secrets.toml from the real config dir."""
    monkeypatch.setenv("MOONSHOT_API_KEY", TEST_KEY)
    monkeypatch.setenv("HEGELION_CONFIG_DIR", str(tmp_path / "hegelion-config"))
    return TEST_KEY


@pytest.fixture
def server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as srv:
        yield srv


@pytest.fixture(scope="session")
def kimi_venv() -> Path:
    """A venv with the real kimi-cli from PyPI (made on first use; tox makes it first)."""
    default = Path(__file__).resolve().parents[1] / ".kimi-cli-venv"
    venv = Path(os.environ.get("HEGELION_KIMI_CLI_VENV") or default)
    kimi_cli_env.ensure(venv)
    return venv


@pytest.fixture(scope="session")
def kimi_cli(kimi_venv: Path) -> list[str]:
    """The full CLI: kimi-cli 1.52's ``kimi`` script is a stub, its module is not."""
    return [str(kimi_venv / "bin" / "python"), "-m", "kimi_cli.cli"]
