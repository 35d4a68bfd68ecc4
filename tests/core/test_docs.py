"""Docs keep up with the code: every hook documented with its real arguments and
tested under its own name, every format and `hegelion dataset` option documented
(after datasette's tests/test_docs.py)."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from hegelion_core import hookspecs
from hegelion_core.cli.dataset import dataset_command
from hegelion_core.plugins import driver_names

ROOT = Path(__file__).resolve().parents[2]
HOOKS = [
    name
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("hegelion_")
]


def test_there_are_hooks() -> None:
    assert len(HOOKS) == 7


def _headings(markdown: str) -> set[str]:
    return {m.group(1).strip("` ") for m in re.finditer(r"^#+ (.+)$", markdown, re.MULTILINE)}


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook: str) -> None:
    """docs/plugins.md has a heading ``hook(arg1, arg2)`` with the spec's exact arguments,
    in order, as pluggy passes them."""
    from hegelion_core.plugins import get_plugin_manager

    text = (ROOT / "docs" / "plugins.md").read_text()
    assert f"`{hook}(" in text
    spec = getattr(get_plugin_manager().hook, hook).spec
    assert spec is not None
    assert list(spec.argnames) == list(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert f"{hook}({', '.join(spec.argnames)})" in _headings(text)


def _test_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        names |= {
            n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        }
    return names


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test_named_for_it(hook: str) -> None:
    """Hook ``hegelion_X`` has a test function ``test_hook_X`` (tests/core/test_hooks.py)."""
    assert f"test_hook_{hook.removeprefix('hegelion_')}" in _test_names()


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
    [
        o
        for p in dataset_command.params
        for o in p.opts
        if o.startswith("--") and o not in SELF_EXPLANATORY
    ],
)
def test_dataset_option_is_documented(option: str) -> None:
    assert option in (ROOT / "docs" / "formats.md").read_text()


def _core_modules() -> list[str]:
    """Every module under hegelion_core as docs/architecture.md names it: dotted from the
    package (``data.curate.filters``), a package with a slash (``data.curate/``)."""
    core = ROOT / "hegelion_core"
    names = []
    for path in sorted(core.rglob("*.py")):
        parts = path.relative_to(core).with_suffix("").parts
        if parts == ("__init__",):
            names.append("__init__")
        elif parts[-1] == "__init__":
            names.append(".".join(parts[:-1]) + "/")
        else:
            names.append(".".join(parts))
    return names


def test_the_module_map_sees_every_module() -> None:
    names = _core_modules()
    assert {"records", "cli.app", "data.curate/", "generation.generate", "__main__"} <= set(names)
    assert len(names) > 80


@pytest.mark.parametrize("module", _core_modules())
def test_every_module_is_in_the_architecture_map(module: str) -> None:
    """docs/architecture.md's module map has a row for each module, with what it holds."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    row = re.search(rf"^\| `{re.escape(module)}` \| (.+) \|$", text, re.MULTILINE)
    assert row is not None, (
        f"docs/architecture.md: add `| `{module}` | what it holds |` to the module map"
    )
    assert len(row.group(1).strip()) > 5
