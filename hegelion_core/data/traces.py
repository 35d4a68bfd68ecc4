"""Reading trace records from any file Hegelion or its predecessor wrote.

Three shapes are accepted, so users' existing files read as they are:

* current rows: `TraceRecord` as written by ``hegelion generate``;
* the earlier generator's rows: ``instruction/input/output/system`` with
  ``hegelion_trace`` holding a full result dict (``query``, ``mode``, ``thesis``...);
* the earlier agent's and API's logs: ``thesis/antithesis/synthesis`` at top level,
  optionally wrapped as ``{"observation", "action", "result": {...}}``.

A record whose phases are missing or placeholders (``[Generated via CLI]``) is
recovered by parsing its raw text when that holds a real trace, and otherwise
rejected with a countable reason. Nothing is invented.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hegelion_core.data.jsonl import TORN_TAIL, read_jsonl
from hegelion_core.data.parsing import parse_trace
from hegelion_core.records import (
    DEFAULT_SYSTEM,
    DialecticTrace,
    TraceRecord,
    is_placeholder,
    prompt_id,
)

PHASES = ("thesis", "antithesis", "synthesis")
_TRACE_KEYS = set(DialecticTrace.model_fields)


class InvalidTrace(ValueError):
    """A row that is JSON but not a usable trace; ``reason`` is a countable label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def record_from_dict(obj: dict[str, Any]) -> TraceRecord:
    """Validate one row of any supported shape into a `TraceRecord`."""
    if "hegelion_trace" in obj and "prompt_id" in obj:
        try:  # fast path: a current row
            return TraceRecord.model_validate(obj)
        except ValidationError as exc:
            if not _recoverable(exc):
                raise _invalid(exc) from None
    return _from_legacy(obj)


def _recoverable(exc: ValidationError) -> bool:
    """Errors that parsing the raw output might fix (a phase missing or a placeholder)."""
    return all(
        len(e["loc"]) >= 2 and e["loc"][0] == "hegelion_trace" and e["loc"][1] in PHASES
        for e in exc.errors()
    )


def _from_legacy(obj: dict[str, Any]) -> TraceRecord:
    row = dict(obj)
    if "hegelion_trace" not in row and isinstance(row.get("result"), dict):
        result = row.pop("result")  # agent step: {"observation", "action", "result"}
        row = {**result, **{k: v for k, v in row.items() if k not in result}}

    if isinstance(row.get("hegelion_trace"), dict):
        result = dict(row.pop("hegelion_trace"))
        instruction = row.pop("instruction", None) or result.get("query")
    elif any(k in row for k in PHASES):
        result = {
            k: row.pop(k)
            for k in list(row)
            if k in _TRACE_KEYS or k in ("query", "mode", "metadata", "trace")
        }
        instruction = row.pop("instruction", None) or result.get("query")
    else:
        raise InvalidTrace(
            "not a trace record",
            "expected 'hegelion_trace' or top-level 'thesis'/'antithesis'/'synthesis'",
        )
    if not isinstance(instruction, str) or not instruction.strip():
        raise InvalidTrace("instruction missing", "no 'instruction' or 'query' text")

    trace = {k: result[k] for k in _TRACE_KEYS if k in result}
    trace["contradictions"] = _items(result.get("contradictions"), "evidence")
    trace["research_proposals"] = _items(result.get("research_proposals"), "testable_prediction")
    _recover_phases(trace, raw_texts=(row.get("output"), result.get("synthesis")))

    metadata = result.get("metadata")
    meta: dict[str, Any] = metadata if isinstance(metadata, dict) else {}
    input_text = row.pop("input", "") or ""
    record = {
        **row,
        "instruction": instruction,
        "input": input_text,
        "system": row.get("system") or DEFAULT_SYSTEM,
        "hegelion_trace": trace,
        "prompt_id": row.get("prompt_id") or prompt_id(instruction, input_text),
        "source": row.get("source") or meta.get("source"),
        "teacher": row.get("teacher") or meta.get("backend_provider"),
        "model": row.get("model") or meta.get("backend_model"),
    }
    try:
        dialectic = DialecticTrace.model_validate(trace)
        if not isinstance(record.get("output"), str) or is_placeholder(record.get("output")):
            from hegelion_core.records import render_output

            record["output"] = render_output(dialectic)
        return TraceRecord.model_validate(record)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _items(value: Any, second: str) -> list[dict[str, Any]]:
    """Legacy lists hold dicts, or strings such as ``"desc | Prediction: ..."``."""
    items = []
    for item in value or []:
        if isinstance(item, dict) and item.get("description"):
            items.append({"description": item["description"], second: item.get(second)})
        elif isinstance(item, str) and item.strip():
            desc, _, rest = item.partition("|")
            extra = rest.split(":", 1)[-1].strip() if rest else None
            items.append({"description": desc.strip(), second: extra or None})
    return items


def _recover_phases(trace: dict[str, Any], raw_texts: tuple[Any, ...]) -> None:
    """Fill phases that are missing or placeholders from a raw trace, if one parses."""
    if not any(is_placeholder(trace.get(p)) for p in PHASES):
        return
    for raw in raw_texts:
        if not isinstance(raw, str) or is_placeholder(raw):
            continue
        parsed = parse_trace(raw)
        if parsed.ok:
            for phase in PHASES:
                trace[phase] = getattr(parsed, phase)
            trace["answer"] = parsed.answer
            trace["contradictions"] = trace["contradictions"] or [
                c.model_dump() for c in parsed.contradictions
            ]
            trace["research_proposals"] = trace["research_proposals"] or [
                p.model_dump() for p in parsed.research_proposals
            ]
            return


def _invalid(exc: ValidationError) -> InvalidTrace:
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"]]
    if loc and loc[0] == "hegelion_trace":
        loc = loc[1:]  # the same problem, whether found in a record or a bare trace
    if loc and loc[0] in PHASES:
        return InvalidTrace(f"{loc[0]} missing", f"{loc[0]} {_msg(first)}")
    if loc and loc[0] == "instruction":
        return InvalidTrace("instruction missing", _msg(first))
    return InvalidTrace(f"invalid {'.'.join(loc) or 'record'}", _msg(first))


def _msg(error: Any) -> str:
    return str(error["msg"]).removeprefix("Value error, ")


# ----- streaming a whole file -------------------------------------------------------


@dataclass
class ReadStats:
    """What reading a traces file found; reasons are counted, not just logged."""

    lines: int = 0
    valid: int = 0
    invalid_json: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # reason -> "file:line: detail"

    def reject(self, reason: str, where: str) -> None:
        self.invalid[reason] += 1
        self.examples.setdefault(reason, where)


def iter_records(
    path: str | Path,
    stats: ReadStats,
    *,
    skip_invalid_json: bool = False,
) -> Iterator[TraceRecord]:
    """Stream valid records from ``path``, counting everything that is not one."""

    def bad_json(lineno: int, problem: str) -> None:
        stats.lines += 1
        stats.invalid_json += 1
        reason = "incomplete last line" if problem == TORN_TAIL else "invalid JSON"
        stats.reject(reason, f"{path}:{lineno}: {problem}")

    for lineno, obj in read_jsonl(path, skip_invalid=skip_invalid_json, on_invalid=bad_json):
        stats.lines += 1
        try:
            record = record_from_dict(obj)
        except InvalidTrace as exc:
            stats.reject(exc.reason, f"{path}:{lineno}: {exc.detail or exc.reason}")
            continue
        stats.valid += 1
        yield record


def append_records(path: str | Path, records: list[TraceRecord]) -> int:
    """Append records as complete lines (safe with concurrent writers), then tell hooks."""
    from hegelion_core import hooks
    from hegelion_core.data.jsonl import append_jsonl

    count = append_jsonl(path, [r.model_dump(mode="json") for r in records])
    for record in records:
        hooks.record_written(record, Path(path))
    return count
