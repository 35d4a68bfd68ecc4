"""Shared fixtures: trace files, and a CLI runner that loads plugins like `hegelion`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from hegelion_core.plugins import reset_plugin_manager  # noqa: E402
from hegelion_core.testing import sample_records  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(autouse=True)
def _fresh_plugin_manager() -> Iterator[None]:
    reset_plugin_manager()
    yield
    reset_plugin_manager()


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    with path.open("wb") as fp:
        for row in rows:
            fp.write(row if isinstance(row, bytes) else orjson.dumps(row))
            fp.write(b"\n")
    return path


@pytest.fixture
def traces_file(tmp_path: Path) -> Callable[..., Path]:
    """Write trace records (default: the sample records) to a JSONL file."""

    def make(rows: list[Any] | None = None, name: str = "traces.jsonl") -> Path:
        rows = rows if rows is not None else [r.model_dump(mode="json") for r in sample_records()]
        return write_jsonl(tmp_path / name, rows)

    return make


@pytest.fixture
def run_cli() -> Callable[..., Any]:
    """Invoke `hegelion ARGS...` in-process, with plugin commands loaded."""
    from click.testing import CliRunner

    from hegelion_core.cli import cli, load_plugin_commands

    def run(*args: str, ok: bool = True) -> Any:
        load_plugin_commands(cli)
        result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


@pytest.fixture
def example_traces() -> Path:
    return EXAMPLES / "traces.jsonl"
