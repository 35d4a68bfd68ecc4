"""The distributions are typed (PEP 561) and their type checks stay honest.

`tox -e typecheck` runs mypy itself; these tests guard what mypy cannot see: that every
distribution ships its ``py.typed`` marker in the wheel, and that no ``# type: ignore``
silences the checker without naming the error and saying why.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = [
    ROOT,
    *sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file()),
]
# `# type: ignore[code]  # why`: the code, then a comment of its own with the reason.
REASONED = re.compile(r"#\s*type:\s*ignore\[[a-z0-9_-]+(,\s*[a-z0-9_-]+)*\]\s+#\s*\S")
IGNORE = re.compile(r"#\s*type:\s*ignore\b")


def _package(dist: Path) -> str:
    name = tomllib.loads((dist / "pyproject.toml").read_text())["project"]["name"]
    return name.replace("-", "_")


def _sources() -> list[Path]:
    files = sorted((ROOT / "hegelion_core").rglob("*.py"))
    for dist in DISTRIBUTIONS[1:]:
        files += sorted((dist / _package(dist)).rglob("*.py"))
    return files


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=lambda p: p.name)
def test_every_distribution_ships_py_typed(dist: Path) -> None:
    package = _package(dist)
    assert (dist / package / "py.typed").is_file(), f"{dist.name}: no {package}/py.typed"
    config = tomllib.loads((dist / "pyproject.toml").read_text())
    package_data = config["tool"]["setuptools"].get("package-data", {})
    assert "py.typed" in package_data.get(package, []), (
        f"{dist.name}/pyproject.toml: [tool.setuptools.package-data] {package} lacks "
        '"py.typed", so the wheel would not ship it'
    )


def test_every_distribution_is_type_checked() -> None:
    files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"]
    expected = ["hegelion_core"] + [f"plugins/{d.name}/{_package(d)}" for d in DISTRIBUTIONS[1:]]
    assert sorted(files) == sorted(expected)


def test_every_type_ignore_names_its_code_and_why() -> None:
    bare = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in _sources()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if IGNORE.search(line) and not REASONED.search(line)
    ]
    assert not bare, "write `# type: ignore[code]  # why` (or fix the type):\n" + "\n".join(bare)


def test_reason_pattern() -> None:
    assert REASONED.search("x = f()  # type: ignore[arg-type]  # the SDK's stubs lag")
    assert REASONED.search("y  # type: ignore[assignment, misc]  # a fallback class")
    assert not REASONED.search("x = f()  # type: ignore[arg-type]")
    assert not REASONED.search("x = f()  # type: ignore  # why")


def test_former_options_name_still_imports() -> None:
    """Third-party plugins wrote ``class Options(Options)`` against the old base name."""
    from hegelion_core.contracts import DriverOptions, Options

    assert Options is DriverOptions
