"""`hegelion_core.testing` is usable outside pytest (the benchmarks import it), and its
pytest plugin is registered for every test run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from hegelion_core.testing.scripted_server import (
    ScriptedAnthropicServer,
    ScriptedOpenAIServer,
    ScriptedServer,
)

WITHOUT_PYTEST = """
import sys
sys.modules["pytest"] = None  # any `import pytest` now fails
import hegelion_core.testing as testing
import hegelion_core.testing.calls
import hegelion_core.testing.openai_server
import hegelion_core.testing.sample_traces
import hegelion_core.testing.scripted_server
import hegelion_core.testing.tiny_models
assert len(testing.sample_records()) == 3
assert "torch" not in sys.modules and "transformers" not in sys.modules
try:
    testing.TeacherContract
except ImportError:
    print("contracts need pytest")
"""


def test_the_testing_package_imports_without_pytest_or_torch() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PYTEST], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "contracts need pytest"


# ----- the pytest plugin's fixtures ----------------------------------------------------


def test_the_pytest_plugin_is_registered_by_its_entry_point(pytestconfig: pytest.Config) -> None:
    plugin = pytestconfig.pluginmanager.get_plugin("hegelion")
    assert plugin is not None and plugin.__name__ == "hegelion_core.testing.pytest_plugin"


def test_openai_server_serves_the_openai_sdk_path(openai_server: ScriptedOpenAIServer) -> None:
    assert isinstance(openai_server, ScriptedOpenAIServer)
    assert openai_server.base_url == f"http://127.0.0.1:{openai_server.port}/v1"
    with urllib.request.urlopen(f"{openai_server.base_url}/models", timeout=5) as resp:
        assert json.load(resp)["data"][0]["id"] == "scripted-model"
    assert openai_server.pending == 0 and len(openai_server.requests) == 1


def test_anthropic_server_serves_the_anthropic_sdk_path(
    anthropic_server: ScriptedAnthropicServer,
) -> None:
    assert not isinstance(anthropic_server, ScriptedOpenAIServer)  # siblings, not a subclass
    assert anthropic_server.base_url == anthropic_server.root_url
    assert anthropic_server.base_url == f"http://127.0.0.1:{anthropic_server.port}"


def test_each_test_gets_a_server_of_its_own(openai_server: ScriptedOpenAIServer) -> None:
    assert openai_server.requests == [] and openai_server.latency == 0.0


def test_the_neutral_base_has_no_sdk_base_url() -> None:
    with ScriptedServer() as server, pytest.raises(NotImplementedError, match="root_url"):
        server.base_url  # noqa: B018


def test_fake_api_key_sets_a_fresh_key_and_hides_the_user_config(
    fake_api_key: Callable[..., str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HEGELION_TEST_OTHER", "left over")
    first = fake_api_key("HEGELION_TEST_KEY", clear=["HEGELION_TEST_OTHER"])
    assert first.startswith("sk-hegelion-test-") and len(first) > 30
    assert os.environ["HEGELION_TEST_KEY"] == first and "HEGELION_TEST_OTHER" not in os.environ
    assert os.environ["HEGELION_CONFIG_DIR"] == str(tmp_path / "config")
    assert not (tmp_path / "config" / "secrets.toml").exists()
    assert fake_api_key("HEGELION_TEST_KEY2") != first
    assert fake_api_key("HEGELION_TEST_KEY3", "sk-given-0123456789") == "sk-given-0123456789"


def test_sample_traces_are_trace_records(sample_traces: Path) -> None:
    rows = [json.loads(line) for line in sample_traces.read_text().splitlines()]
    assert len(rows) == 20 and all(r["hegelion_trace"]["synthesis"] for r in rows)


def test_hegelion_dataset_runs_the_real_command_once_per_arguments(
    hegelion_dataset: Callable[..., Path], sample_traces: Path
) -> None:
    sft = hegelion_dataset("sft")
    assert sft.name == "sft.jsonl" and len(sft.read_text().splitlines()) == 20
    assert hegelion_dataset("sft") == sft  # made once
    split = hegelion_dataset("chat", "--valid-ratio", "0.2")
    assert split.is_dir() and {p.name for p in split.glob("*.jsonl")} >= {
        "train.jsonl",
        "valid.jsonl",
    }


def test_hegelion_dataset_fails_the_test_with_the_commands_output(
    hegelion_dataset: Callable[..., Path],
) -> None:
    with pytest.raises(AssertionError, match="no-such-format"):
        hegelion_dataset("no-such-format")


def test_tiny_tokenizer_dir_holds_a_chatml_tokenizer(tiny_tokenizer_dir: Path) -> None:
    config = json.loads((tiny_tokenizer_dir / "tokenizer_config.json").read_text())
    assert "<|im_start|>" in str(
        config.get("chat_template") or (tiny_tokenizer_dir / "chat_template.jinja").read_text()
    )


def test_every_fixture_of_the_plugin_is_documented() -> None:
    import ast

    import hegelion_core.testing.pytest_plugin as plugin

    tree = ast.parse(Path(plugin.__file__).read_text())
    fixtures = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("fixture" in ast.unparse(d) for d in node.decorator_list)
    ]
    docs = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()
    assert len(fixtures) == 10
    for name in fixtures:
        assert f"| `{name}` |" in docs, name


def test_hegelion_dataset_uses_each_folders_own_sample_traces(tmp_path: Path) -> None:
    """Two folders that override ``sample_traces`` differently, run together: each one's
    datasets come from its own traces (a session-scoped ``hegelion_dataset`` kept the
    first folder's traces for both)."""

    for name, n in (("a", 3), ("b", 5)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "conftest.py").write_text(
            "import pytest\n"
            "from hegelion_core.testing.sample_traces import SAMPLE_TRACES, write_sample_traces\n"
            "@pytest.fixture(scope='session')\n"
            "def sample_traces(tmp_path_factory):\n"
            f"    return write_sample_traces(tmp_path_factory.mktemp('t') / 't.jsonl',"
            f" SAMPLE_TRACES[:{n}])\n"
        )
        (tmp_path / name / f"test_{name}.py").write_text(
            "def test_rows(hegelion_dataset, sample_traces):\n"
            "    rows = hegelion_dataset('chat').read_text().splitlines()\n"
            "    assert len(rows) == len(sample_traces.read_text().splitlines())\n"
        )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "a", "b"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout, run.stdout
