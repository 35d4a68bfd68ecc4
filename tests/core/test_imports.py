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
            if (
                name in _BY_NAME
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
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
    assert plugins == [
        (3, "hegelion_gguf"),
        (4, "hegelion_simplex.stage"),
        (5, "hegelion_echo.teacher"),
    ]


def test_the_walk_covers_core() -> None:
    files = sorted(CORE.rglob("*.py"))
    assert CORE / "pipeline" / "stages.py" in files and CORE / "testing" / "__init__.py" in files
    assert sum(len(imported_modules(p.read_text(encoding="utf-8"))) for p in files) > 300


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_core_imports_no_plugin(path: Path) -> None:
    bad = [
        f"{path.relative_to(CORE.parent)}:{line}: imports {module}"
        for line, module in imported_modules(path.read_text(encoding="utf-8"))
        if is_plugin_package(module)
    ]
    assert not bad, "core must reach plugins through entry points only:\n" + "\n".join(bad)


# ----- core grouped by role: no cycles, the CLI on top, plugins on the public API -------------

PLUGIN_SOURCES = sorted((CORE.parent / "plugins").glob("*/hegelion_*/**/*.py"))


def module_name(path: Path) -> str:
    """``hegelion_core/data/jsonl.py`` -> ``hegelion_core.data.jsonl`` (a package: its dir)."""
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(CORE.rglob("*.py"))}


def core_imports(path: Path, *, import_time_only: bool = False) -> set[str]:
    """The core modules ``path`` imports (``from hegelion_core.data import jsonl`` names
    ``hegelion_core.data.jsonl``). ``import_time_only``: only what runs when the module is
    imported, i.e. module-level statements outside ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if import_time_only:
        nodes = []
        for stmt in tree.body:
            if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test):
                nodes += [n for s in stmt.orelse for n in ast.walk(s)]
            elif isinstance(stmt, (ast.If, ast.Try, ast.With)):
                nodes += list(ast.walk(stmt))
            else:
                nodes.append(stmt)
    else:
        nodes = list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in MODULES:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found - {module_name(path) if path.is_relative_to(CORE) else ""}


def test_core_imports_sees_submodules_and_skips_type_checking(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text(
        "from typing import TYPE_CHECKING\nfrom hegelion_core.data import jsonl\n"
        "from hegelion_core import records, __version__\n"
        "if TYPE_CHECKING:\n    from hegelion_core.pipeline.stages import Planning\n"
        "def f():\n    from hegelion_core.cli import cli\n"
    )
    assert core_imports(f) == {
        "hegelion_core.data.jsonl",
        "hegelion_core.records",
        "hegelion_core",
        "hegelion_core.pipeline.stages",
        "hegelion_core.cli",
    }
    assert core_imports(f, import_time_only=True) == {
        "hegelion_core.data.jsonl",
        "hegelion_core.records",
        "hegelion_core",
    }


def test_records_and_parsing_do_not_import_each_other() -> None:
    """The schema is at the bottom: parsing reads into records, records never call the
    parser (not even inside a function, where a cycle hides)."""
    records, parsing = "hegelion_core.records", "hegelion_core.data.parsing"
    assert records in core_imports(MODULES[parsing])
    assert not core_imports(MODULES[records]) - {"hegelion_core._version"}


def test_nothing_imports_the_cli() -> None:
    """Commands call the library, never the reverse. The only importers of `cli` are its
    own modules, ``python -m hegelion_core``, and the test kit (`testing`), which runs the
    commands as a user does."""
    bad = [
        f"{name} imports {target}"
        for name, path in MODULES.items()
        if not name.startswith(("hegelion_core.cli", "hegelion_core.testing"))
        and name != "hegelion_core.__main__"
        for target in core_imports(path)
        if target.startswith("hegelion_core.cli")
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycle_at_import_time() -> None:
    """Importing any core module never comes back to a module still being imported: the
    module-level imports form no cycle (type-only and function-level ones may point up)."""
    edges = {name: core_imports(path, import_time_only=True) for name, path in MODULES.items()}
    assert sum(map(len, edges.values())) > 150  # the walk sees the imports
    done: set[str] = set()

    def visit(name: str, stack: list[str]) -> None:
        if name in stack:
            pytest.fail("import cycle: " + " -> ".join([*stack[stack.index(name) :], name]))
        if name in done:
            return
        for target in sorted(edges.get(name, ())):
            visit(target, [*stack, name])
        done.add(name)

    for name in MODULES:
        visit(name, [])


def test_plugin_sources_are_walked() -> None:
    names = {p.parts[-2] for p in PLUGIN_SOURCES} | {p.parent.name for p in PLUGIN_SOURCES}
    assert {"hegelion_openai", "hegelion_simplex", "hegelion_gguf", "hegelion_trl"} <= names


#: Subpackages public in their own right, each with its own ``__all__``: the rewards are
#: named by dotted path (axolotl's ``trl.reward_funcs: [hegelion_core.rewards.format_reward]``).
PUBLIC_SUBPACKAGES = ("hegelion_core.rewards",)


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(CORE.parent)))
def test_plugins_import_only_the_public_api(path: Path) -> None:
    """An in-repo plugin's code imports core only as ``from hegelion_core import NAME``,
    NAME in `hegelion_core.__all__` (or from a public subpackage, a name in its
    ``__all__``): what a third-party author can rely on."""
    import importlib

    import hegelion_core

    public = set(hegelion_core.__all__)
    sub_public = {m: set(importlib.import_module(m).__all__) for m in PUBLIC_SUBPACKAGES}
    bad = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            bad += [
                f"line {node.lineno}: import {a.name}"
                for a in node.names
                if a.name.split(".")[0] == "hegelion_core"
            ]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in sub_public:
                bad += [
                    f"line {node.lineno}: {a.name} is not in {node.module}.__all__"
                    for a in node.names
                    if a.name not in sub_public[node.module]
                ]
            elif node.module.startswith("hegelion_core."):
                bad.append(f"line {node.lineno}: from {node.module} import ...")
            elif node.module == "hegelion_core":
                bad += [
                    f"line {node.lineno}: {a.name} is not in hegelion_core.__all__"
                    for a in node.names
                    if a.name not in public
                ]
    assert not bad, f"{path.relative_to(CORE.parent)}: import from `hegelion_core`:\n" + "\n".join(
        bad
    )


def test_every_public_name_resolves_to_the_module_that_types_it() -> None:
    """`__all__`, the lazy table and the ``TYPE_CHECKING`` imports (what a type checker
    sees) name the same things, and each name loads from its module."""
    import importlib

    import hegelion_core

    tree = ast.parse((CORE / "__init__.py").read_text(encoding="utf-8"))
    typed = {
        alias.asname or alias.name: node.module
        for stmt in tree.body
        if isinstance(stmt, ast.If)
        for node in ast.walk(stmt)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    homes = {**hegelion_core._HOMES, **hegelion_core._TESTING}
    assert typed == homes
    assert set(hegelion_core.__all__) == {"__version__", *hegelion_core._HOMES}
    assert not set(hegelion_core._TESTING) & set(hegelion_core.__all__)
    for name, home in homes.items():
        assert getattr(hegelion_core, name) is getattr(importlib.import_module(home), name)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        hegelion_core.nothing_here  # noqa: B018


def test_importing_hegelion_core_is_cheap() -> None:
    """``import hegelion_core`` loads none of pydantic, click, pytest or torch; naming a
    contract suite is what loads pytest."""
    import subprocess
    import sys

    heavy = ("pydantic", "click", "pytest", "torch", "pluggy", "orjson")
    code = (
        "import sys, hegelion_core; print(sorted({m.split('.')[0] for m in sys.modules} & "
        f"set({heavy!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    code = (
        "import sys, hegelion_core; hegelion_core.Teacher; assert 'pytest' not in sys.modules; "
        "hegelion_core.TeacherContract; assert 'pytest' in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
