"""Shared fixtures: trace files, and a CLI runner that loads plugins like `hegelion`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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
PLUGINS = Path(__file__).resolve().parent / "plugins"


def install_plugins(tmp_path_factory: pytest.TempPathFactory, *names: str) -> Path:
    """The example plugins ``names``, pip-installed for real into a directory of their own.

    pip builds from a copy of each source: built in place, runs that overlap (two
    checkouts' tests, or xdist) collide in the plugin's shared ``build/`` folder."""
    target = tmp_path_factory.mktemp("site")
    sources = tmp_path_factory.mktemp("plugin-src")
    copies = [
        shutil.copytree(
            PLUGINS / name,
            sources / name,
            ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
        )
        for name in names
    ]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            *map(str, copies),
        ],
        check=True,
        capture_output=True,
    )
    return target


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The echo and broken example plugins, installed (`install_plugins`)."""
    return install_plugins(tmp_path_factory, "hegelion-echo", "hegelion-broken")


def left_out_message(noun: str, name: str, dist: str) -> str:
    """What ``hegelion`` says of a first-party driver that the test's HEGELION_PLUGINS or
    HEGELION_DISABLE_PLUGIN_AUTOLOAD leaves out: the install command where ``dist`` is not
    installed (CI's core environment), "left out" where it is (an all-plugins checkout)."""
    from importlib import metadata

    try:
        metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return f"{noun} {name!r} is not installed. Install it with: pip install {dist}"
    return f"{noun} {name!r} comes from {dist}, which is installed but left out by HEGELION_PLUGINS"


def hegelion_env(site: Path, **env: str) -> dict[str, str]:
    environ = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    }
    for key in ("HEGELION_PLUGINS", "HEGELION_DISABLE_PLUGIN_AUTOLOAD"):
        environ.pop(key, None)
    return environ | env


def hegelion(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`hegelion ARGS` in a subprocess that sees the plugins installed in ``site``."""
    return subprocess.run(
        [sys.executable, "-m", "hegelion_core", *map(str, args)],
        capture_output=True,
        text=True,
        env=hegelion_env(site, **env),
        timeout=300,
    )


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
