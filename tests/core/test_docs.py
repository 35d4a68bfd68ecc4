"""Docs keep up with the code: every hook documented and tested, every format and
`hegelion dataset` option documented (after datasette's tests/test_docs.py)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from hegelion_core import hookspecs
from hegelion_core.cli import dataset_command
from hegelion_core.plugins import driver_names

ROOT = Path(__file__).resolve().parents[2]
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("hegelion_")]


def test_there_are_hooks() -> None:
    assert len(HOOKS) == 7


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook: str) -> None:
    assert f"`{hook}(" in (ROOT / "docs" / "plugins.md").read_text()


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_tested(hook: str) -> None:
    tests = "".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    tests += "".join(p.read_text() for p in (ROOT / "tests" / "plugins").rglob("*.py"))
    assert f"def {hook}(" in tests


@pytest.mark.parametrize("fmt", driver_names("formatters"))
def test_format_is_documented(fmt: str) -> None:
    assert f"| `{fmt}` |" in (ROOT / "docs" / "formats.md").read_text()


SELF_EXPLANATORY = {"--quiet"}


@pytest.mark.parametrize(
    "option",
    [o for p in dataset_command.params for o in p.opts if o.startswith("--") and o not in SELF_EXPLANATORY],
)
def test_dataset_option_is_documented(option: str) -> None:
    assert option in (ROOT / "docs" / "formats.md").read_text()
