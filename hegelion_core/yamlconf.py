"""YAML config files whose errors point at the line of the offending key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hegelion_core.errors import InputError

#: Nodes that aliases (``*name``) may add to a file once expanded: far above what a real
#: config repeats, far below a "billion laughs" file, which expands to gigabytes.
MAX_ALIAS_NODES = 10_000


def load_yaml_mapping(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The file's top-level mapping and ``a.b.0.c`` -> line of every key and item."""
    if not path.is_file():
        raise InputError(path, None, "config file not found")
    text = path.read_text(encoding="utf-8")
    try:
        _check_aliases(path, text)  # before anything expands them
        data = yaml.safe_load(text) or {}
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(path, mark.line + 1 if mark else None, f"invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(path, 1, "expected a mapping at the top level")
    lines: dict[str, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def _check_aliases(path: Path, text: str) -> None:
    """Refuse a file whose aliases expand to more than `MAX_ALIAS_NODES` nodes.

    Anchors and aliases are fine for sharing a block (examples/simplex-qwen3.yaml shares
    a train config); nested ones multiply, and everything that walks the loaded data
    (the line index, validation, --dry-run) would walk every copy. Counted on the
    parser's events, so nothing is expanded to measure it.
    """
    sizes: dict[str, int] = {}  # anchor -> nodes it stands for, expanded
    open_: list[list[Any]] = []  # [anchor, nodes so far] of each collection being read
    added = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            open_.append([event.anchor, 1])
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, n = open_.pop()
        elif isinstance(event, yaml.ScalarEvent):
            anchor, n = event.anchor, 1
        elif isinstance(event, yaml.AliasEvent):
            anchor, n = None, sizes.get(event.anchor or "", 1)
            added += n
            if added > MAX_ALIAS_NODES:
                mark = event.start_mark  # the parser marks every event; typed optional
                raise InputError(
                    path,
                    mark.line + 1 if mark else None,
                    f"YAML aliases expand to more than {MAX_ALIAS_NODES} nodes "
                    f"(at *{event.anchor})",
                    hint="write the repeated part out, or nest fewer aliases",
                )
        else:
            continue
        if anchor:
            sizes[anchor] = n
        if open_:
            open_[-1][1] += n


def _walk(node: yaml.Node, prefix: tuple[str, ...], lines: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, str(key.value))
            lines[".".join(path)] = key.start_mark.line + 1
            _walk(value, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = (*prefix, str(i))
            lines[".".join(path)] = item.start_mark.line + 1
            _walk(item, path, lines)


def line_of(lines: dict[str, int], loc: tuple[Any, ...] | list[Any]) -> int | None:
    """The line of ``loc`` or of its nearest ancestor that has one (a missing key's parent)."""
    parts = [str(p) for p in loc]
    while parts:
        if (n := lines.get(".".join(parts))) is not None:
            return n
        parts.pop()
    return None


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """``stages.generate.limit=2`` style overrides from the command line."""
    node = data
    *parents, leaf = dotted.split(".")
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[leaf] = value
