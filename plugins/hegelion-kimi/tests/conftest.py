"""Fixtures: a test key, the scripted server under the name these tests use, and the real
Kimi CLI. The servers and ``fake_api_key`` are the pytest plugin's in hegelion_core.testing."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import kimi_cli_env
import pytest
from kimi_test_key import TEST_KEY

from hegelion_core.testing.scripted_server import ScriptedOpenAIServer


@pytest.fixture
def moonshot_key(fake_api_key: Callable[..., str]) -> str:
    """MOONSHOT_API_KEY set to the test key; no secrets.toml from the real config dir."""
    return fake_api_key("MOONSHOT_API_KEY", TEST_KEY)


@pytest.fixture
def server(openai_server: ScriptedOpenAIServer) -> ScriptedOpenAIServer:
    """The plugin's ``openai_server``: a scripted server of the test's own."""
    return openai_server


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
