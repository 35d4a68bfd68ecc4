"""Reading trace records from any file Hegelion, its predecessor or another tool wrote.

Four shapes are accepted, so users' existing files read as they are:

* current rows: `TraceRecord` as written by ``hegelion generate``;
* the earlier generator's rows: ``instruction/input/output/system`` with
  ``hegelion_trace`` holding a full result dict (``query``, ``mode``, ``thesis``...);
* the earlier agent's and API's logs: ``thesis/antithesis/synthesis`` at top level,
  optionally wrapped as ``{"observation", "action", "result": {...}}``;
* rows whose trace is only text (curator, distilabel, Hub datasets, the earlier tool's
  SFT files, chat ``messages``): the first of `TRACE_FIELDS` that holds text, or the
  last assistant turn of ``messages``, parsed as ``hegelion generate`` parses a
  teacher's answer, with the prompt from `PROMPT_FIELDS` (or the last user turn before
  that answer). Such a row becomes the record ``generate`` would have written for the
  same answer: the same ``prompt_id``, phases and canonical ``output``.

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

from hegelion_core.data.parsing import parse_trace
from hegelion_core.data.quality import QualityConfig, empty_answer, trace_issues
from hegelion_core.data.sources import ReadOptions, SourceRow, iter_hub_rows, iter_source_rows
from hegelion_core.records import (
    DEFAULT_SYSTEM,
    DialecticTrace,
    TraceRecord,
    is_placeholder,
    prompt_id,
    render_output,
)

PHASES = ("thesis", "antithesis", "synthesis")
_TRACE_KEYS = set(DialecticTrace.model_fields)
#: Columns that may hold a whole trace as text, in order of preference (then ``messages``).
TRACE_FIELDS = ("output", "response", "generation", "completion", "answer")
#: Columns that may hold the prompt, in order of preference (then ``messages``).
PROMPT_FIELDS = ("instruction", "prompt", "question", "problem", "query", "input")
_CUT = {"length", "max_tokens"}  # finish_reason / stop_reason of an answer the limit cut
_NOT_A_TRACE = (
    "expected 'hegelion_trace', top-level 'thesis'/'antithesis'/'synthesis', trace text in "
    f"one of {', '.join(TRACE_FIELDS)}, or an assistant turn in 'messages'; name the "
    "column with --trace-field"
)


class InvalidTrace(ValueError):
    """A row that is JSON but not a usable trace; ``reason`` is a countable label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def record_from_dict(
    obj: dict[str, Any],
    options: ReadOptions | None = None,
    quality: QualityConfig | None = None,
) -> TraceRecord:
    """Validate one row of any supported shape into a `TraceRecord`.

    ``options`` names the text and prompt columns of rows whose trace is only text;
    ``quality`` checks such rows for degenerate output (Hegelion's own records were
    checked when they were generated)."""
    if "hegelion_trace" in obj and "prompt_id" in obj:
        try:  # fast path: a current row
            return TraceRecord.model_validate(obj)
        except ValidationError as exc:
            if not _recoverable(exc):
                raise _invalid(exc) from None
    if _structured(obj):
        return _from_legacy(obj)
    return _from_text(obj, options or ReadOptions(), quality)


def _structured(obj: dict[str, Any]) -> bool:
    """A row that carries its phases as fields (ours, the earlier tool's, an agent step)."""
    if isinstance(obj.get("hegelion_trace"), dict) or any(k in obj for k in PHASES):
        return True
    result = obj.get("result")
    return isinstance(result, dict) and (
        isinstance(result.get("hegelion_trace"), dict) or any(k in result for k in PHASES)
    )


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
        raise InvalidTrace("not a trace record", _NOT_A_TRACE)
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
            record["output"] = render_output(dialectic)
        return TraceRecord.model_validate(record)
    except ValidationError as exc:
        raise _invalid(exc) from None


# ----- rows whose trace is only text ------------------------------------------------


def _from_text(
    obj: dict[str, Any], options: ReadOptions, quality: QualityConfig | None
) -> TraceRecord:
    """The record ``hegelion generate`` writes for the same answer: parsed, never guessed."""
    field, text, before = _trace_text(obj, options.trace_field)
    instruction, input_text, system = _prompt(obj, options.prompt_field, before)
    if is_placeholder(text):
        raise InvalidTrace(
            "thesis missing", f"{field} is empty or a placeholder ({text.strip()[:40]!r})"
        )
    parsed = parse_trace(text)
    if not parsed.ok:
        first = next(p for p in PHASES if p in parsed.missing)
        raise InvalidTrace(f"{first} missing", f"{field}: " + "; ".join(parsed.missing.values()))
    trace = parsed.to_trace()
    if trace.answer is not None and trace.answer.strip() == trace.synthesis.strip():
        trace.answer = None  # the answer that repeats the synthesis is the default one
    if quality is not None and quality.enabled:
        issues = [str(i) for i in trace_issues(trace, quality)]
        if empty_answer(text):
            issues.append("empty_answer (nothing after </thought>)")
        if issues:
            reason = f"degenerate: {issues[0].split(' ')[0]}"  # as generate and curate say
            raise InvalidTrace(reason, f"{field}: {'; '.join(issues)}")
    model = next((obj[k] for k in ("model", "model_name") if isinstance(obj.get(k), str)), None)
    finish = next(
        (obj[k] for k in ("finish_reason", "stop_reason") if isinstance(obj.get(k), str)), ""
    )
    try:
        return TraceRecord(
            instruction=instruction,
            input=input_text,
            output=render_output(trace),
            system=system,
            hegelion_trace=trace,
            prompt_id=prompt_id(instruction, input_text),
            model=model,
            truncated=finish.lower() in _CUT,
        )
    except ValidationError as exc:
        raise _invalid(exc) from None


def _trace_text(obj: dict[str, Any], named: str | None) -> tuple[str, str, list[dict[str, str]]]:
    """(field, trace text, the turns before it when the text is a chat's assistant turn)."""
    candidates = (named,) if named else (*TRACE_FIELDS, "messages")
    if named and named not in obj:
        raise InvalidTrace(
            "not a trace record",
            f"no column {named!r} (--trace-field); columns are: {', '.join(obj)}",
        )
    for name in candidates:
        value = obj.get(name)
        if isinstance(value, str) and (named or value.strip()):
            return name, value, []
        turns = _turns(value)
        if turns is not None:
            last = max((i for i, t in enumerate(turns) if t["role"] == "assistant"), default=None)
            if last is not None:
                return f"{name}[{last}]", turns[last]["content"], turns[:last]
    if named:
        raise InvalidTrace(
            "not a trace record", f"column {named!r} holds no text or assistant turn"
        )
    raise InvalidTrace("not a trace record", _NOT_A_TRACE)


def _prompt(
    obj: dict[str, Any], named: str | None, before: list[dict[str, str]]
) -> tuple[str, str, str]:
    """(instruction, input, system). The prompt column wins, then the user turn before
    the answer; ``input`` is Alpaca's context beside ``instruction``."""
    if named and named not in obj:
        raise InvalidTrace(
            "instruction missing",
            f"no column {named!r} (--prompt-field); columns are: {', '.join(obj)}",
        )
    system = obj.get("system") if isinstance(obj.get("system"), str) else None
    for name in (named,) if named else PROMPT_FIELDS:
        value = obj.get(name)
        turns = _turns(value)
        if turns is not None:  # a conversational prompt: [system], user
            before = turns
            break
        if isinstance(value, str) and value.strip():
            if name == "instruction" and isinstance(obj.get("input"), str):
                return value, obj["input"], _system(system, [])
            return value, "", _system(system, [])
    users = [t for t in before if t["role"] == "user"]
    if not users or not users[-1]["content"].strip():
        where = f"column {named!r}" if named else f"none of {', '.join(PROMPT_FIELDS)}"
        raise InvalidTrace("instruction missing", f"{where} holds a prompt, and no user turn")
    return users[-1]["content"], "", _system(system, before)


def _system(column: str | None, turns: list[dict[str, str]]) -> str:
    systems = [t["content"] for t in turns if t["role"] == "system" and t["content"].strip()]
    if systems:
        return systems[-1]
    return column if column and column.strip() else DEFAULT_SYSTEM


def _turns(value: Any) -> list[dict[str, str]] | None:
    """A list of chat turns as ``{"role", "content"}`` with text content (OpenAI content
    parts joined), or None when ``value`` is not one."""
    if not isinstance(value, list) or not value:
        return None
    turns = []
    for turn in value:
        if not isinstance(turn, dict) or not isinstance(turn.get("role"), str):
            return None
        content = turn.get("content")
        if isinstance(content, list):
            content = "".join(
                p.get("text", "")
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            )
        turns.append({"role": turn["role"], "content": content if isinstance(content, str) else ""})
    return turns


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
    path: str | Path | None,
    stats: ReadStats,
    *,
    skip_invalid_json: bool = False,
    options: ReadOptions | None = None,
    quality: QualityConfig | None = None,
) -> Iterator[TraceRecord]:
    """Stream valid records from ``path`` (or, when None, from ``options.hf``), counting
    everything that is not one."""
    for _, record in iter_source_records(
        path, stats, skip_invalid_json=skip_invalid_json, options=options, quality=quality
    ):
        yield record


def iter_source_records(
    path: str | Path | None,
    stats: ReadStats,
    *,
    skip_invalid_json: bool = False,
    options: ReadOptions | None = None,
    quality: QualityConfig | None = None,
) -> Iterator[tuple[SourceRow, TraceRecord]]:
    """`iter_records` with each record's source row (its place and, for JSONL, its bytes)."""
    options = options or ReadOptions()

    def bad_json(where: str, problem: str, torn: bool) -> None:
        stats.lines += 1
        stats.invalid_json += 1
        stats.reject("incomplete last line" if torn else "invalid JSON", f"{where}: {problem}")

    rows = (
        iter_hub_rows(options)
        if path is None
        else iter_source_rows(
            Path(path), options, skip_invalid=skip_invalid_json, on_invalid=bad_json
        )
    )
    for row in rows:
        stats.lines += 1
        try:
            record = record_from_dict(row.row, options, quality)
        except InvalidTrace as exc:
            stats.reject(exc.reason, f"{row.where}: {exc.detail or exc.reason}")
            continue
        stats.valid += 1
        yield row, record


def append_records(path: str | Path, records: list[TraceRecord]) -> int:
    """Append records as complete lines (safe with concurrent writers), then tell hooks."""
    from hegelion_core import hooks
    from hegelion_core.data.jsonl import append_jsonl

    count = append_jsonl(path, [r.model_dump(mode="json") for r in records])
    for record in records:
        hooks.record_written(record, Path(path))
    return count
