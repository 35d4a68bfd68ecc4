"""Core imports no plugin: every import in hegelion_core/, at module level or inside a
function, and every import by name (importlib.import_module, __import__, find_spec),
stays out of plugin packages. What core needs from a plugin comes through entry points."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "hegelion_core"
#: The functions that import a module named by a string.
_BY_NAME = {"import_module", "__import__", "find_spec"}


def is_plugin_package(module: str) -> bool:
    """Any ``hegelion_*`` package other than core's: the in-repo plugins (hegelion_gguf,
    hegelion_simplex...), the example ones (hegelion_echo) and anyone else's."""
    top = module.split(".")[0]
    return top.startswith("hegelion_") and top != "hegelion_core"


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, module) for every absolute import in ``source``, wherever it is."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", None)
            first = node.args[0] if node.args else None
            if name in _BY_NAME and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append((node.lineno, first.value))
    return found


def test_the_walk_sees_function_level_and_by_name_imports() -> None:
    source = (
        "import os\n"
        "def f():\n"
        "    from hegelion_gguf import packaged\n"
        "    import hegelion_simplex.stage\n"
        "    return importlib.import_module('hegelion_echo.teacher')\n"
        "from hegelion_core.pipeline import stages\n"
    )
    plugins = [(line, m) for line, m in imported_modules(source) if is_plugin_package(m)]
    assert plugins == [(3, "hegelion_gguf"), (4, "hegelion_simplex.stage"), (5, "hegelion_echo.teacher")]


def test_the_walk_covers_core() -> None:
    files = sorted(CORE.rglob("*.py"))
    assert CORE / "pipeline" / "stages.py" in files and CORE / "testing" / "__init__.py" in files
    assert sum(len(imported_modules(p.read_text(encoding="utf-8"))) for p in files) > 300


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_core_imports_no_plugin(path: Path) -> None:
    bad = [f"{path.relative_to(CORE.parent)}:{line}: imports {module}"
           for line, module in imported_modules(path.read_text(encoding="utf-8"))
           if is_plugin_package(module)]
    assert not bad, "core must reach plugins through entry points only:\n" + "\n".join(bad)
