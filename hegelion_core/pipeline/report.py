"""``hegelion report RUN_DIR``: one self-contained ``report.html`` of a pipeline run.

A run directory says what happened in many small files (each stage's ``stage.json``, the
trainer's ``metrics.jsonl``, each eval's ``results.json`` and ``items.jsonl``, the curate
manifest). The report puts them on one page a person can open anywhere: every stage with
its time and figures, the training loss curve, the eval table, the curate filter counts
and three held-out answers before and after, their thesis, antithesis and synthesis
highlighted. The page loads nothing (inline CSS, an inline SVG curve, no script; its
Content-Security-Policy forbids anything else), and every text from the run is escaped:
model answers are untrusted.

Every reader here is lenient: a stage that did not finish, a missing or half-written
file is a note on the page, never an error. Only a directory with no stage at all is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any, TypeGuard

import orjson

from hegelion_core._version import __version__
from hegelion_core.data.jsonl import atomic_output
from hegelion_core.data.parsing import PARTS, parse_trace
from hegelion_core.errors import HegelionError, InputError
from hegelion_core.pipeline.runner import RECORD, STARTED, StageRecord

REPORT = "report.html"
#: In the page's ``<meta name="generator">``: a ``report.html`` without it is not ours to replace.
GENERATOR = "hegelion report"
ANSWERS_SHOWN = 3
_CSP = "default-src 'none'; style-src 'unsafe-inline'"
#: What `hegelion run` renames a stage's old output to when the stage starts afresh.
_MOVED_ASIDE = re.compile(r"\.prev-\d{8}-\d{6}(?:-\d+)?$")


@dataclass
class Stage:
    """One ``WORKDIR/STAGE/`` directory: its record, or why there is none."""

    name: str
    dir: Path
    record: StageRecord | None
    note: str = ""

    @property
    def kind(self) -> str:
        return self.record.kind if self.record else "?"


@dataclass
class EvalRun:
    """One model's results in an eval stage (``STAGE/LABEL/``)."""

    label: str
    results: dict[str, Any]
    items: list[dict[str, Any]] = field(default_factory=list)
    data: Path | None = None


# ----- reading the run ----------------------------------------------------------------


def _load_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows that parse: a run killed mid-write leaves at most a torn last line."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def load_stages(run_dir: Path, order: Sequence[str] | None = None) -> list[Stage]:
    """Every stage directory of ``run_dir``: those named in ``order`` first, in that order
    (the pipeline file's), then the rest in the order they finished."""
    if not run_dir.is_dir():
        raise InputError(
            run_dir,
            None,
            "no such run directory",
            hint="the run directory is runs/NAME, or the pipeline file's workdir:",
        )
    stages = []
    for d in sorted(p for p in run_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if _MOVED_ASIDE.search(d.name):
            continue  # an earlier output `hegelion run` kept: not a stage of this run
        if (d / RECORD).is_file():
            try:
                record = StageRecord.model_validate_json((d / RECORD).read_bytes())
            except (OSError, ValueError) as exc:
                stages.append(Stage(d.name, d, None, f"{RECORD} unreadable: {str(exc)[:200]}"))
                continue
            if record.stage == d.name:  # else a copy of another stage's directory
                stages.append(Stage(d.name, d, record))
        elif (d / STARTED).is_file():
            stages.append(
                Stage(d.name, d, None, "did not finish (no stage.json): rerun the pipeline")
            )
    if not stages:
        raise InputError(
            run_dir,
            None,
            f"no pipeline stage here (no STAGE/{RECORD})",
            hint="run `hegelion run PIPELINE.yaml` first, and give its work directory",
        )
    rank = {name: i for i, name in enumerate(order or ())}
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(
        stages,
        key=lambda s: (rank.get(s.name, len(rank)), s.record.created_at if s.record else far),
    )


def loss_curves(stage: Stage) -> dict[str, list[tuple[float, float]]]:
    """``metrics.jsonl``'s training loss and validation loss, by step. A resumed run logs
    the steps after its checkpoint again: the last value of a step wins."""
    rows = _read_jsonl(stage.dir / "metrics.jsonl")
    curves: dict[str, dict[float, float]] = {"loss": {}, "validation loss": {}}
    for row in rows:
        step = row.get("step")
        if not _finite(step):
            continue
        for name, keys in (
            ("loss", ("loss", "train_loss")),
            ("validation loss", ("eval_loss", "val_loss")),
        ):
            value = next((row[k] for k in keys if _finite(row.get(k))), None)
            if value is not None:
                curves[name][float(step)] = float(value)
    return {name: sorted(points.items()) for name, points in curves.items() if points}


def curate_filters(stage: Stage) -> tuple[Path | None, list[dict[str, Any]]]:
    """The curate manifest (``OUT.manifest.json`` beside the stage's output) and its
    per-filter counts; (None, []) when there is none."""
    assert stage.record is not None
    candidates = []
    for value in stage.record.artifact.values():
        path = Path(value)
        if not path.name:
            continue
        if path.name.endswith(".manifest.json"):
            candidates.append(path)
        else:
            candidates.append(path.with_name(path.name + ".manifest.json"))
    # A run directory that was moved: the same names under this stage's directory.
    candidates += [stage.dir / c.name for c in candidates]
    for path in candidates:
        manifest = _load_json(path) if path.is_file() else None
        if isinstance(manifest, dict):
            return path, _filter_rows(manifest)
    return None, []


def _filter_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``{name (or filter), rows_in, dropped, examples, rows_out}`` rows, wherever the
    manifest keeps their list (``filters``, or one level down)."""
    for value in [
        manifest.get("filters"),
        *manifest.values(),
        *(v.get("filters") for v in manifest.values() if isinstance(v, dict)),
    ]:
        if (
            isinstance(value, list)
            and value
            and all(
                isinstance(r, dict) and "rows_in" in r and ("name" in r or "filter" in r)
                for r in value
            )
        ):
            return value
    return []


def eval_runs(stage: Stage) -> list[EvalRun]:
    """Each model an eval stage scored, in the order the stage ran them."""
    assert stage.record is not None
    runs = []
    for argv in stage.record.commands:
        out, data = _flag(argv, "--out"), _flag(argv, "--data")
        if argv[:1] != ["eval"] or out is None:
            continue
        label = Path(out).name
        results = _load_json(stage.dir / label / "results.json")
        if not isinstance(results, dict):
            continue
        items_name = (results.get("files") or {}).get("items", "items.jsonl")
        runs.append(
            EvalRun(
                label,
                results,
                _read_jsonl(stage.dir / label / items_name),
                Path(data) if data else None,
            )
        )
    return runs


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv[:-1] else None


def prompt_texts(data: Path | None) -> dict[str, str]:
    """Item id -> prompt, from the eval's prompt file when it is still there."""
    if data is None or not data.is_file():
        return {}
    from hegelion_core.data.prompt_sources.file import FilePromptSource

    try:
        return {p.id: p.text for p in FilePromptSource({"path": data}).iter_prompts()}
    except (HegelionError, OSError, ValueError):
        return {}  # not a prompt file (a calibration eval.jsonl): the ids alone


# ----- formatting ---------------------------------------------------------------------


def _finite(v: Any) -> TypeGuard[float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fmt_metric(v: Any) -> str:
    """An eval figure as `hegelion eval` prints it."""
    if v is None:
        return "n/a"
    return f"{v:.4f}" if _finite(v) else escape(str(v))


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items() if not isinstance(x, (dict, list)))
    return str(v)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.1f} s"
    minutes, s = divmod(round(seconds), 60)
    return (
        f"{minutes} min {s:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
    )


def _e(text: Any) -> str:
    return escape(str(text), quote=True)


# ----- the loss curve -----------------------------------------------------------------


def _ticks(lo: float, hi: float, count: int = 5, *, whole: bool = False) -> list[float]:
    """Round values spanning [lo, hi], for an axis (``whole``: integers only, for steps)."""
    if hi <= lo:
        pad = abs(lo) * 0.05 or 0.5
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    step = max(step, 1) if whole else step
    first = math.floor(lo / step) * step
    ticks = [first]
    while ticks[-1] < hi - step * 1e-9:
        ticks.append(first + len(ticks) * step)
    return ticks


def _tick_label(v: float) -> str:
    return f"{v:.6g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def loss_svg(
    curves: dict[str, list[tuple[float, float]]], width: int = 720, height: int = 280
) -> str:
    """An SVG line chart of the loss by step (and the validation loss, dashed)."""
    left, right, top, bottom = 64, 16, 16, 40
    points = [p for c in curves.values() for p in c]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    xt, yt = _ticks(min(xs), max(xs), 6, whole=True), _ticks(min(ys), max(ys), 5)
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="training loss by step">'
    ]

    def line(x1: float, x2: float, y1: float, y2: float) -> str:
        return f'<line class="grid" x1="{x1:.1f}" x2="{x2:.1f}" y1="{y1:.1f}" y2="{y2:.1f}"/>'

    def label(x: float, y: float, anchor: str, text: str, cls: str = "tick") -> str:
        return f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{text}</text>'

    for y in yt:
        parts += [
            line(left, width - right, sy(y), sy(y)),
            label(left - 6, sy(y) + 4, "end", _tick_label(y)),
        ]
    for x in xt:
        parts += [
            line(sx(x), sx(x), top, height - bottom),
            label(sx(x), height - bottom + 16, "middle", _tick_label(x)),
        ]
    parts.append(label((left + width - right) / 2, height - 6, "middle", "step", "axis"))
    for i, (name, curve) in enumerate(curves.items()):
        cls = "series" if i == 0 else "series alt"
        if len(curve) > 2000:  # a long run: every k-th step (and the last) draws the same line
            curve = [*curve[: -1 : len(curve) // 1000], curve[-1]]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in curve)
        parts.append(f'<polyline class="{cls}" points="{coords}"/>')
        if len(curve) <= 60:
            parts += [
                f'<circle class="{cls}" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5">'
                f"<title>{_e(name)} at step {x:g}: {y:.4g}</title></circle>"
                for x, y in curve
            ]
        parts.append(
            f'<text class="legend {cls}" x="{width - right - 4}" y="{top + 14 + 16 * i}" '
            f'text-anchor="end">{_e(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


# ----- answers, highlighted -----------------------------------------------------------


def highlight(response: str) -> str:
    """The answer as written, its THESIS, ANTITHESIS and SYNTHESIS bodies (and the answer
    after ``</thought>``) marked in place; the raw text when the parser finds no section."""
    parsed = parse_trace(response)
    bodies = {part: getattr(parsed, part) for part in PARTS}
    if parsed.answer:
        bodies["answer"] = parsed.answer
    spans = []
    for part, body in bodies.items():
        if body:
            start = response.find(body) if part != "answer" else response.rfind(body)
            if start < 0:
                return _blocks(parsed, response)
            spans.append((start, start + len(body), part))
    spans.sort()
    if any(a[1] > b[0] for a, b in zip(spans, spans[1:])):
        return _blocks(parsed, response)
    out, at = [], 0
    for start, end, part in spans:
        out.append(_e(response[at:start]))
        out.append(f'<mark class="{part}" title="{part}">{_e(response[start:end])}</mark>')
        at = end
    out.append(_e(response[at:]))
    notes = "".join(f"<li>{_e(why)}</li>" for why in parsed.missing.values())
    text = f'<pre class="answer">{"".join(out)}</pre>'
    if not any(bodies[p] for p in PARTS):
        return f'{text}<p class="note">no THESIS, ANTITHESIS or SYNTHESIS section: shown as written</p>'
    return text + (f'<ul class="missing">{notes}</ul>' if notes else "")


def _blocks(parsed: Any, response: str) -> str:
    """The parsed sections one under the other, with the text as written folded away."""
    out = []
    for part in (*PARTS, "answer"):
        body = getattr(parsed, part)
        if body:
            out.append(
                f'<div class="block {part}"><b>{part.upper()}</b><pre>{_e(body)}</pre></div>'
            )
    out += [f'<p class="note">{_e(why)}</p>' for why in parsed.missing.values()]
    out.append(
        f'<details><summary>as written</summary><pre class="answer">{_e(response)}</pre></details>'
    )
    return "".join(out)


# ----- the page -----------------------------------------------------------------------


_STYLE = """
:root { --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --bg: #ffffff; --card: #f6f8fa;
  --thesis: #dbeafe; --thesis-b: #2563eb; --anti: #fee2e2; --anti-b: #dc2626;
  --synth: #dcfce7; --synth-b: #16a34a; --ans: #fef9c3; --ans-b: #ca8a04; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 10px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 8px; }
.meta, .note, .muted { color: var(--muted); }
p.note { font-size: 13px; }
.meta { margin: 0; font-size: 13px; }
code, pre, .num { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--card); font-weight: 600; font-size: 13px; }
table.eval, table.curate { width: auto; min-width: 62%; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.up { color: var(--synth-b); } td.down { color: var(--anti-b); }
.figures { margin: 0; padding: 0; list-style: none; }
.figures li { display: inline-block; margin: 0 14px 2px 0; white-space: nowrap; }
.figures li b { font-weight: 500; color: var(--muted); }
details { margin: 4px 0; } summary { cursor: pointer; color: var(--muted); font-size: 13px; }
details pre { white-space: pre-wrap; word-break: break-word; }
.chart { max-width: 100%; height: auto; background: var(--card); border-radius: 6px; }
.chart .grid { stroke: var(--line); stroke-width: 1; }
.chart .tick, .chart .axis, .chart .legend { font-size: 12px; fill: var(--muted); }
.chart polyline.series { fill: none; stroke: var(--thesis-b); stroke-width: 2; }
.chart polyline.alt { stroke: var(--ans-b); stroke-dasharray: 6 4; }
.chart circle.series { fill: var(--thesis-b); } .chart circle.alt { fill: var(--ans-b); }
.chart .legend.series { fill: var(--thesis-b); } .chart .legend.alt { fill: var(--ans-b); }
.legend-key { margin: 8px 0 12px; font-size: 13px; }
.legend-key mark { padding: 1px 6px; margin-right: 6px; }
.item { border: 1px solid var(--line); border-radius: 8px; margin: 14px 0; overflow: hidden; }
.item > .prompt { background: var(--card); padding: 10px 14px; border-bottom: 1px solid var(--line); }
.item > .prompt code { color: var(--muted); }
.pair { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); }
.pair > div { padding: 10px 14px; min-width: 0; }
.pair > div + div { border-left: 1px solid var(--line); }
.pair h4 { margin: 0 0 6px; font-size: 13px; }
.ok { color: var(--synth-b); } .bad { color: var(--anti-b); }
pre.answer, .block pre { white-space: pre-wrap; word-break: break-word; margin: 0; line-height: 1.55;
  font: inherit; font-size: 14px; }
mark { border-radius: 3px; color: inherit; padding: 0 1px; }
mark.thesis { background: var(--thesis); box-shadow: inset 3px 0 var(--thesis-b); }
mark.antithesis { background: var(--anti); box-shadow: inset 3px 0 var(--anti-b); }
mark.synthesis { background: var(--synth); box-shadow: inset 3px 0 var(--synth-b); }
mark.answer { background: var(--ans); box-shadow: inset 3px 0 var(--ans-b); }
.block { border-left: 3px solid; padding: 4px 10px; margin: 0 0 8px; border-radius: 3px; }
.block pre { white-space: pre-wrap; margin: 2px 0 0; }
.block.thesis { background: var(--thesis); border-color: var(--thesis-b); }
.block.antithesis { background: var(--anti); border-color: var(--anti-b); }
.block.synthesis { background: var(--synth); border-color: var(--synth-b); }
.block.answer { background: var(--ans); border-color: var(--ans-b); }
ul.missing { margin: 6px 0 0; padding-left: 18px; color: var(--muted); font-size: 13px; }
.error { color: var(--anti-b); }
"""


def _figures(figures: dict[str, Any]) -> str:
    items = [
        f'<li><b>{_e(k)}</b> <span class="num">{_e(_fmt(v))}</span></li>'
        for k, v in figures.items()
    ]
    return (
        f'<ul class="figures">{"".join(items)}</ul>' if items else '<span class="muted">none</span>'
    )


def _stages_section(stages: list[Stage]) -> str:
    rows = []
    for s in stages:
        if s.record is None:
            rows.append(
                f'<tr data-stage="{_e(s.name)}"><td>{_e(s.name)}</td><td>?</td>'
                f'<td class="num">-</td><td class="note">{_e(s.note)}</td></tr>'
            )
            continue
        r = s.record
        commands = "\n".join("hegelion " + " ".join(argv) for argv in r.commands)
        main = next(
            (
                r.artifact[k]
                for k in ("gguf", "adapter", "data", "traces", "results")
                if r.artifact.get(k)
            ),
            "",
        )
        rows.append(
            f'<tr data-stage="{_e(s.name)}"><td>{_e(s.name)}</td><td>{_e(r.kind)}</td>'
            f'<td class="num">{_duration(r.elapsed_s)}</td><td>{_figures(r.figures)}'
            + (f'<div class="meta"><code>{_e(main)}</code></div>' if main else "")
            + f"<details><summary>commands</summary><pre>{_e(commands)}</pre></details></td></tr>"
        )
    return (
        '<h2>Stages</h2><table class="stages"><thead><tr><th>stage</th><th>kind</th>'
        '<th class="num">time</th><th>figures</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )


def _train_section(stages: list[Stage]) -> str:
    out = []
    for s in stages:
        curves = loss_curves(s)
        title = f"<h3>{_e(s.name)}</h3>" if len(stages) > 1 else ""
        if not curves:
            out.append(
                f'{title}<p class="note">no loss logged in {_e(s.dir / "metrics.jsonl")}</p>'
            )
            continue
        loss = curves.get("loss") or next(iter(curves.values()))
        summary = (
            f"{len(loss)} logged steps; loss {loss[0][1]:.4g} at step {loss[0][0]:g}, "
            f"{loss[-1][1]:.4g} at step {loss[-1][0]:g}"
        )
        out.append(f'{title}<p class="meta">{summary}</p>{loss_svg(curves)}')
    return "<h2>Training loss</h2>" + "".join(out) if out else ""


def _curate_section(stages: list[Stage]) -> str:
    out = []
    for s in stages:
        path, filters = curate_filters(s)
        title = f"<h3>{_e(s.name)}</h3>" if len(stages) > 1 else ""
        if not filters:
            out.append(
                f'{title}<p class="note">no filter counts found (curate manifest: '
                f"{_e(path or 'none')})</p>"
            )
            continue
        rows = []
        for f in filters:
            dropped = f.get("dropped") or {}
            reasons = (
                ", ".join(f"{_e(k)} {_e(v)}" for k, v in dropped.items())
                if isinstance(dropped, dict)
                else _e(dropped)
            )
            total = (
                sum(v for v in dropped.values() if isinstance(v, int))
                if isinstance(dropped, dict)
                else ""
            )
            examples = f.get("examples") or {}
            shown = (
                "".join(f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in examples.items())
                if isinstance(examples, dict)
                else f"<li>{_e(examples)}</li>"
            )
            details = (
                f"<details><summary>examples</summary><ul>{shown}</ul></details>"
                if examples
                else ""
            )
            name = f.get("name", f.get("filter"))
            rows.append(
                f'<tr data-filter="{_e(name)}"><td>{_e(name)}</td>'
                f'<td class="num">{_e(f.get("rows_in", ""))}</td>'
                f'<td class="num">{_e(total)}</td><td>{reasons or "-"}{details}</td>'
                f'<td class="num">{_e(f.get("rows_out", ""))}</td></tr>'
            )
        out.append(
            f'{title}<table class="curate"><thead><tr><th>filter</th><th class="num">rows in</th>'
            '<th class="num">dropped</th><th>why</th><th class="num">rows out</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    return "<h2>Curation</h2>" + "".join(out) if out else ""


def _eval_table(runs: list[EvalRun]) -> str:
    names: list[str] = []
    for run in runs:
        names += [k for k in run.results.get("metrics", {}) if k not in names]
    change = len(runs) == 2
    head = "".join(f'<th class="num">{_e(r.label)}</th>' for r in runs)
    head += '<th class="num">change</th>' if change else ""
    rows = []
    for name in names:
        values = [r.results.get("metrics", {}).get(name) for r in runs]
        cells = "".join(
            f'<td class="num" data-label="{_e(r.label)}">{fmt_metric(v)}</td>'
            for r, v in zip(runs, values)
        )
        if change:
            a, b = values
            if _finite(a) and _finite(b):
                cls = "up" if b > a else "down" if b < a else ""
                cells += f'<td class="num {cls}">{b - a:+.4f}</td>'
            else:
                cells += '<td class="num">-</td>'
        rows.append(f'<tr data-metric="{_e(name)}"><td>{_e(name)}</td>{cells}</tr>')
    counts = "".join(
        f'<td class="num">{_e(r.results.get("counts", {}).get("items", "?"))}</td>' for r in runs
    )
    rows.append(f'<tr class="muted"><td>items</td>{counts}{"<td></td>" if change else ""}</tr>')
    models = "".join(
        f"<li><b>{_e(r.label)}</b>: <code>{_e(r.results.get('model', '?'))}</code>"
        + (
            f" + adapter <code>{_e(r.results['adapter'])}</code>"
            if r.results.get("adapter")
            else ""
        )
        + "".join(
            f'<br><span class="note">note: {_e(n)}</span>' for n in r.results.get("notes", [])
        )
        + "</li>"
        for r in runs
    )
    suite = _e(runs[0].results.get("suite", "?"))
    return (
        f'<p class="meta">suite {suite}</p><table class="eval"><thead><tr><th>metric</th>{head}'
        f'</tr></thead><tbody>{"".join(rows)}</tbody></table><ul class="meta">{models}</ul>'
    )


def _answer(item: dict[str, Any], *, dialectic: bool) -> tuple[str, str]:
    """One model's answer to one item, and what its scoring said of it."""
    if item.get("error"):
        return (
            ' <span class="bad">failed</span>',
            f'<p class="error">the model failed on this item: {_e(item["error"])}</p>',
        )
    response = str(item.get("response", ""))
    if not dialectic:  # calibration, belief revision: no trace to mark
        return "", f'<pre class="answer">{_e(response)}</pre>'
    verdict = ""
    if item.get("format_ok") is True:
        verdict = ' <span class="ok">complete trace</span>'
    elif item.get("format_ok") is False:
        missing = ", ".join(item.get("missing") or [])
        verdict = f' <span class="bad">{"missing " + _e(missing) if missing else "incomplete trace"}</span>'
    return verdict, highlight(response)


def _answers(runs: list[EvalRun]) -> str:
    """Three held-out items, each model's answer side by side."""
    by_label = {r.label: r for r in runs if r.items}
    if not by_label:
        return ""
    labels = (
        ["before", "after"]
        if {"before", "after"} <= by_label.keys()
        else list(dict.fromkeys([next(iter(by_label)), list(by_label)[-1]]))
    )
    chosen = [by_label[label] for label in labels]
    answers = [{item.get("id"): item for item in run.items} for run in chosen]
    ids = [item.get("id") for item in chosen[0].items if all(item.get("id") in a for a in answers)]
    prompts = prompt_texts(chosen[0].data)
    out = []
    for item_id in ids[:ANSWERS_SHOWN]:
        prompt = prompts.get(str(item_id))
        head = (f"<b>{_e(prompt)}</b> " if prompt else "") + f"<code>{_e(item_id)}</code>"
        sides = []
        for run, by_id in zip(chosen, answers):
            item = by_id[item_id]
            verdict, body = _answer(item, dialectic=run.results.get("suite") == "dialectic")
            sides.append(f"<div><h4>{_e(run.label)}{verdict}</h4>{body}</div>")
        out.append(
            f'<div class="item"><div class="prompt">{head}</div>'
            f'<div class="pair">{"".join(sides)}</div></div>'
        )
    if not out:
        return ""
    key = (
        "".join(f'<mark class="{p}">{p}</mark>' for p in (*PARTS, "answer"))
        if chosen[0].results.get("suite") == "dialectic"
        else ""
    )
    return (
        f"<h3>Held-out answers, {_e(' and '.join(labels))}</h3>"
        f'<p class="legend-key">{key}</p>{"".join(out)}'
    )


def _eval_section(stages: list[Stage]) -> str:
    out = []
    for s in stages:
        runs = eval_runs(s)
        title = f"<h3>{_e(s.name)}</h3>" if len(stages) > 1 else ""
        if not runs:
            out.append(f'{title}<p class="note">no results.json under {_e(s.dir)}</p>')
            continue
        out.append(title + _eval_table(runs) + _answers(runs))
    return "<h2>Evaluation</h2>" + "".join(out) if out else ""


def render(run_dir: Path, stages: list[Stage]) -> str:
    """The whole page, one string."""

    def of(*kinds: str) -> list[Stage]:
        return [s for s in stages if s.record is not None and s.kind in kinds]

    total = sum(s.record.elapsed_s for s in stages if s.record)
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "".join(
        [
            _stages_section(stages),
            _train_section(of("train")),
            _curate_section(of("curate")),
            _eval_section(of("eval")),
        ]
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f'<meta name="generator" content="{GENERATOR} {_e(__version__)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Hegelion run {_e(run_dir.name)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>Hegelion run {_e(run_dir.name)}</h1>"
        f'<p class="meta"><code>{_e(run_dir)}</code>: {len(stages)} stages, '
        f"{_duration(total)} of stage time; report made {made} by hegelion {_e(__version__)}</p>"
        f"{body}</main></body></html>\n"
    )


def _ours(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return f'name="generator" content="{GENERATOR}'.encode() in fh.read(4096)
    except OSError:
        return False


def write_report(
    run_dir: Path, *, out: Path | None = None, order: Iterable[str] | None = None
) -> Path:
    """Write ``run_dir/report.html`` (or ``out``) atomically and return its path. ``order``:
    the pipeline's stage names, for the page's order (else the order they finished)."""
    run_dir = Path(run_dir).resolve()
    dest = Path(out) if out is not None else run_dir / REPORT
    if dest.exists() and (dest.is_dir() or not _ours(dest)):
        raise InputError(
            dest,
            None,
            "exists and is not a report Hegelion wrote; not replacing it",
            hint="move it away, or write the report elsewhere with --out PATH",
        )
    html = render(run_dir, load_stages(run_dir, list(order) if order is not None else None))
    with atomic_output(dest) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return dest
