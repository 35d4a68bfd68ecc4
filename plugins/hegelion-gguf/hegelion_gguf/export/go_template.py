"""Ollama's Go text/template, rendered in Python for the constructs Hegelion's templates use.

The Modelfile TEMPLATE is checked by rendering the very Go template that is written, not
a Python copy of it, against the tokenizer's own chat template. Supported: text,
``{{- -}}`` trimming, ``if / else if / else / end``, ``range $i, $m := X``, ``$x := X``,
``$x = X``, fields (``.Content``, ``$.System``, ``$m.Role``), string/int/bool literals and
the functions ``eq ne lt le gt ge not and or len slice``. Anything else raises
`GoTemplateError`, so a construct Ollama might read differently cannot pass unread.
"""

from __future__ import annotations

import json
import re
from typing import Any

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\(|\)|[^\s()]+')
_GO_SPACE = " \t\r\n"  # what Go's {{- -}} trims (not every Unicode space)


class GoTemplateError(ValueError):
    """The template uses a construct this renderer does not know, or is malformed."""


def render_go_template(template: str, data: dict[str, Any]) -> str:
    """Render ``template`` over ``data`` (``{"System": ..., "Messages": [...]}``)."""
    parts: list[tuple[str, str]] = []  # ("text", s) or ("action", s)
    pos, trim_next = 0, False
    for m in _ACTION.finditer(template):
        text = template[pos : m.start()]
        if trim_next:
            text = text.lstrip(_GO_SPACE)
        if m.group(1):
            text = text.rstrip(_GO_SPACE)
        parts.append(("text", text))
        parts.append(("action", m.group(2)))
        pos, trim_next = m.end(), bool(m.group(3))
    tail = template[pos:]
    parts.append(("text", tail.lstrip(_GO_SPACE) if trim_next else tail))
    body, rest = _parse(parts, 0)
    if rest != len(parts):
        raise GoTemplateError("unbalanced {{ end }}")
    out: list[str] = []
    _run(body, data, [{"$": data}], out)
    return "".join(out)


def _parse(parts: list[tuple[str, str]], i: int) -> tuple[list[Any], int]:
    """Nodes until an ``end``/``else`` at this level (the returned index points at it)."""
    nodes: list[Any] = []
    while i < len(parts):
        kind, text = parts[i]
        if kind == "text":
            nodes.append(("text", text))
            i += 1
            continue
        word = text.split(None, 1)[0] if text else ""
        if word in ("end", "else"):
            return nodes, i
        if word in ("if", "range"):
            node, i = _parse_block(parts, i)
            nodes.append(node)
            continue
        if word.startswith("/*"):
            i += 1  # a comment
            continue
        nodes.append(("expr", text))
        i += 1
    return nodes, i


def _parse_block(parts: list[tuple[str, str]], i: int) -> tuple[Any, int]:
    word, head = parts[i][1].split(None, 1)
    branches: list[tuple[str | None, list[Any]]] = []
    cond: str | None = head
    i += 1
    while True:
        nodes, i = _parse(parts, i)
        if i >= len(parts):
            raise GoTemplateError(f"{{{{ {word} }}}} without {{{{ end }}}}")
        branches.append((cond, nodes))
        action = parts[i][1]
        i += 1
        if action == "end":
            return (word, branches), i
        cond = action[len("else") :].strip() or None
        if cond is not None:
            if not cond.startswith("if "):
                raise GoTemplateError(f"unsupported: {{{{ {action} }}}}")
            cond = cond[3:]


def _truthy(value: Any) -> bool:
    return bool(value)


def _run(nodes: list[Any], dot: Any, scopes: list[dict[str, Any]], out: list[str]) -> None:
    for node in nodes:
        kind = node[0]
        if kind == "text":
            out.append(node[1])
        elif kind == "expr":
            text = node[1]
            if m := re.fullmatch(r"(\$\w+)\s*(:?=)\s*(.+)", text, re.DOTALL):
                value = _eval(m.group(3), dot, scopes)
                if m.group(2) == ":=":
                    scopes[-1][m.group(1)] = value
                else:
                    scope = next((s for s in reversed(scopes) if m.group(1) in s), None)
                    if scope is None:
                        raise GoTemplateError(f"undefined variable {m.group(1)}")
                    scope[m.group(1)] = value
            else:
                value = _eval(text, dot, scopes)
                out.append(value if isinstance(value, str) else json.dumps(value))
        elif kind == "if":
            for cond, body in node[1]:
                if cond is None or _truthy(_eval(cond, dot, scopes)):
                    _run(body, dot, [*scopes, {}], out)
                    break
        elif kind == "range":
            ((head, body),) = node[1]
            m = re.fullmatch(r"(\$\w+),\s*(\$\w+)\s*:=\s*(.+)", head)
            if m:
                names: tuple[str, ...] = (m.group(1), m.group(2))
                source = m.group(3)
            else:
                names, source = (), head
            for n, item in enumerate(_eval(source, dot, scopes)):
                scope = dict(zip(names, (n, item), strict=False))
                _run(body, item, [*scopes, scope], out)
        else:  # pragma: no cover - _parse makes only the kinds above
            raise GoTemplateError(f"unsupported node {kind}")


def _eval(text: str, dot: Any, scopes: list[dict[str, Any]]) -> Any:
    tokens = _TOKEN.findall(text)
    if not tokens:
        raise GoTemplateError("empty action")
    value, n = _command(tokens, 0, dot, scopes)
    if n != len(tokens):
        raise GoTemplateError(f"unsupported expression: {text}")
    return value


def _and(*args: Any) -> Any:
    for a in args[:-1]:
        if not _truthy(a):
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    for a in args[:-1]:
        if _truthy(a):
            return a
    return args[-1]


_FUNCS: dict[str, Any] = {
    "eq": lambda a, *bs: any(a == b for b in bs),
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "not": lambda a: not _truthy(a),
    "and": _and,
    "or": _or,
    "len": len,
    "slice": lambda a, i, j=None: a[i:j],
}


def _command(tokens: list[str], i: int, dot: Any, scopes: list[dict[str, Any]]) -> tuple[Any, int]:
    """A function call with its arguments (to the end or a ')'), or one operand."""
    if tokens[i] in _FUNCS:
        fn, args, i = _FUNCS[tokens[i]], [], i + 1
        while i < len(tokens) and tokens[i] != ")":
            arg, i = _operand(tokens, i, dot, scopes)
            args.append(arg)
        try:
            return fn(*args), i
        except TypeError as exc:
            raise GoTemplateError(f"bad call {' '.join(tokens)}: {exc}") from None
    return _operand(tokens, i, dot, scopes)


def _operand(tokens: list[str], i: int, dot: Any, scopes: list[dict[str, Any]]) -> tuple[Any, int]:
    if i >= len(tokens):
        raise GoTemplateError(f"missing operand in {' '.join(tokens)}")
    tok = tokens[i]
    if tok == "(":
        value, i = _command(tokens, i + 1, dot, scopes)
        if i >= len(tokens) or tokens[i] != ")":
            raise GoTemplateError(f"unclosed '(' in {' '.join(tokens)}")
        return value, i + 1
    if tok.startswith('"'):
        return json.loads(tok), i + 1
    if re.fullmatch(r"-?\d+", tok):
        return int(tok), i + 1
    if tok in ("true", "false"):
        return tok == "true", i + 1
    if tok == ".":
        return dot, i + 1
    if tok.startswith("."):
        return _field(dot, tok[1:]), i + 1
    if tok.startswith("$"):
        name, _, path = tok.partition(".")
        scope = next((s for s in reversed(scopes) if name in s), None)
        if scope is None:
            raise GoTemplateError(f"undefined variable {name}")
        value = scope[name]
        return (_field(value, path) if path else value), i + 1
    raise GoTemplateError(f"unsupported operand {tok!r}")


def _field(value: Any, path: str) -> Any:
    for name in path.split("."):
        value = value.get(name, "") if isinstance(value, dict) else getattr(value, name)
    return value
