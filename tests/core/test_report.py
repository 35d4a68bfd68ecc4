"""`hegelion report RUN_DIR`: one self-contained page of a pipeline run, checked as a
person sees it, in a real headless Chromium (Debian's package)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from hegelion_core.data.curate import CurateJob, curate
from hegelion_core.data.prompt_sources import prompt_key
from hegelion_core.errors import InputError
from hegelion_core.evaluation.results import EvalResult, ItemRecord
from hegelion_core.pipeline.report import highlight, loss_svg, write_report
from hegelion_core.pipeline.runner import StageRecord
from hegelion_core.records import DialecticTrace, render_output
from hegelion_core.testing import sample_records
from tests.core.browser import INSTALL, chromium_path, load_page

PROMPTS = [
    "Should a city fund transit or roads?",
    "Is it right to break a promise?",
    "Does <b>markup</b> & such survive?",
    "Is free will real?",
]
TRACE = DialecticTrace(
    thesis="Transit moves more people per lane.",
    antithesis="Roads serve freight and the places buses do not reach.",
    synthesis="Fund transit on dense corridors, roads where density is low.",
    answer="Both, by density.",
)
HOSTILE = 'THESIS: <script>alert("x")</script><img src=x onerror=alert(1)>\nANTITHESIS: no'


def pid(text: str) -> str:
    return f"{prompt_key(text):016x}"


def record(
    run: Path,
    name: str,
    kind: str,
    *,
    figures: dict,
    commands: list[list[str]],
    artifact: dict[str, str],
    elapsed_s: float,
) -> None:
    (run / name).mkdir(parents=True, exist_ok=True)
    rec = StageRecord(
        stage=name,
        kind=kind,
        fingerprint="f" * 64,
        commands=commands,
        artifact=artifact,
        figures=figures,
        elapsed_s=elapsed_s,
    )
    (run / name / "stage.json").write_text(rec.model_dump_json())


def eval_dir(
    run: Path,
    label: str,
    metrics: dict[str, float | None],
    answers: list[tuple[str, str, str | None]],
    suite: str = "dialectic",
) -> None:
    out = run / "eval" / label
    out.mkdir(parents=True)
    items = [
        ItemRecord(
            id=pid(p),
            suite=suite,
            response=r,
            error=e,
            format_ok=not e and "SYNTHESIS" in r if suite == "dialectic" else None,
        )
        for p, r, e in answers
    ]
    result = EvalResult(
        suite=suite,
        model=f"/models/{label}.gguf",
        teacher="llama-cpp",
        data=str(run / "eval_prompts.txt"),
        counts={"items": len(items)},
        metrics=metrics,
        files={"items": "items.jsonl"},
    )
    (out / "results.json").write_text(result.model_dump_json(indent=2))
    (out / "items.jsonl").write_text("".join(i.model_dump_json() + "\n" for i in items))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run directory as `hegelion run` leaves it, written with the real models."""
    run = tmp_path / "runs" / "demo"
    run.mkdir(parents=True)
    prompts = run / "eval_prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    record(
        run,
        "generate",
        "generate",
        figures={"records": 8, "rejected": 1},
        elapsed_s=12.4,
        commands=[["generate", "--teacher", "llama-cpp", "--api-key", "***"]],
        artifact={"traces": str(run / "generate" / "traces.jsonl")},
    )
    record(
        run,
        "train",
        "train",
        figures={"train_loss": 1.2345, "steps": 12},
        elapsed_s=75.0,
        commands=[["train", "--data", "x"]],
        artifact={"adapter": str(run / "train" / "adapter")},
    )
    rows = [{"step": s, "loss": 2.0 - s / 10, "lr": 0.003} for s in range(1, 13)]
    rows += [{"step": 6, "eval_loss": 1.8}, {"step": 12, "eval_loss": 1.5}]
    (run / "train" / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows) + '{"step": 13, "lo'
    )  # a torn last line
    cmd = ["eval", "--suite", "dialectic", "--data", str(prompts)]
    record(
        run,
        "eval",
        "eval",
        elapsed_s=9.5,
        artifact={"results": str(run / "eval")},
        commands=[
            [*cmd[:1], "--out", str(run / "eval" / lb), *cmd[1:]] for lb in ("before", "after")
        ],
        figures={"before": {"format_compliance": 0.25}, "after": {"format_compliance": 0.75}},
    )
    eval_dir(
        run,
        "before",
        {"format_compliance": 0.25, "thesis_rate": 0.5, "judge_mean": None},
        [
            (PROMPTS[0], "Transit, probably.", None),
            (PROMPTS[1], "", "teacher timed out"),
            (PROMPTS[2], HOSTILE, None),
            (PROMPTS[3], "No idea.", None),
        ],
    )
    eval_dir(
        run,
        "after",
        {"format_compliance": 0.75, "thesis_rate": 0.8125, "judge_mean": None},
        [
            (PROMPTS[0], render_output(TRACE), None),
            (PROMPTS[1], "THESIS: keep it", None),
            (PROMPTS[2], HOSTILE, None),
            (PROMPTS[3], render_output(TRACE), None),
        ],
    )
    return run


def curate_stage(run: Path) -> None:
    """A curate stage, its manifest written by `hegelion curate` itself (one duplicate)."""
    traces = run / "generate" / "traces.jsonl"
    records = sample_records()
    traces.write_text("".join(r.model_dump_json() + "\n" for r in [*records, records[0]]))
    out = run / "curate" / "curated.jsonl"
    curate(CurateJob(inputs=[traces], output=out))
    record(
        run,
        "curate",
        "curate",
        figures={"rows_out": 3},
        elapsed_s=1.5,
        commands=[["curate", str(traces), "--output", str(out)]],
        artifact={"data": str(out)},
    )


# ----- the page's content -------------------------------------------------------------


def test_every_stage_with_its_time_and_figures(run_dir: Path) -> None:
    page = write_report(run_dir).read_text()
    assert (run_dir / "report.html").is_file()
    for stage in ("generate", "train", "eval"):
        assert f'data-stage="{stage}"' in page
    assert "12 s" in page and "1 min 15 s" in page and "rejected" in page
    assert "--api-key ***" in page  # the commands as recorded: secrets already hidden
    assert "Curation" not in page  # no curate stage: no section, no error


def test_the_loss_curve_is_inline_svg_of_every_logged_step(run_dir: Path) -> None:
    page = write_report(run_dir).read_text()
    svg = page[page.index("<svg") : page.index("</svg>")]
    loss, validation = svg.split("<polyline")[1:3]
    assert loss.count(",") == 12 and validation.count(",") == 2  # the torn line left out
    assert "12 logged steps; loss 1.9 at step 1, 0.8 at step 12" in page


def test_a_long_run_draws_every_kth_step_and_the_last() -> None:
    svg = loss_svg({"loss": [(s, 1 / s) for s in range(1, 50_001)]})
    coords = svg.split('points="')[1].split('"')[0].split()
    assert 900 < len(coords) <= 1001 and "<circle" not in svg
    assert coords[-1].startswith("704.0,")  # step 50000, at the axis' right end (720 - 16)


def test_eval_table_and_answers_side_by_side(run_dir: Path) -> None:
    page = write_report(run_dir).read_text()
    assert '<td class="num" data-label="before">0.2500</td>' in page
    assert '<td class="num" data-label="after">0.8125</td>' in page
    assert "+0.5000" in page and "n/a" in page  # the change; a figure the suite could not make
    assert page.count('<div class="item">') == 3
    assert PROMPTS[0] in page and "teacher timed out" in page
    for part in ("thesis", "antithesis", "synthesis", "answer"):
        assert f'<mark class="{part}" title="{part}">' in page


def test_model_answers_are_escaped(run_dir: Path) -> None:
    page = write_report(run_dir).read_text()
    assert "<script" not in page and "<img" not in page and "<b>markup" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "Does &lt;b&gt;markup&lt;/b&gt; &amp; such survive?" in page


def test_highlight_marks_each_section_in_place_and_falls_back_to_the_text() -> None:
    text = render_output(TRACE)
    marked = highlight(text)
    assert f'<mark class="thesis" title="thesis">{TRACE.thesis}</mark>' in marked
    assert f'<mark class="synthesis" title="synthesis">{TRACE.synthesis}</mark>' in marked
    assert "THESIS:\n<mark" in marked  # the labels stay as written, outside the marks
    plain = highlight("Just prose, no sections.")
    assert (
        "<mark" not in plain and "Just prose, no sections." in plain and "shown as written" in plain
    )
    partial = highlight("**Thesis:** only this")
    assert '<mark class="thesis"' in partial and "no ANTITHESIS section found" in partial


def test_answers_of_other_suites_are_shown_as_written(tmp_path: Path) -> None:
    record(
        tmp_path,
        "eval",
        "eval",
        figures={},
        elapsed_s=1.0,
        artifact={},
        commands=[["eval", "--out", str(tmp_path / "eval" / "trained")]],
    )
    eval_dir(
        tmp_path,
        "trained",
        {"ece": 0.125},
        [(PROMPTS[0], "Answer: yes. Confidence: 0.9", None)],
        suite="calibration",
    )
    page = write_report(tmp_path).read_text()
    assert '<pre class="answer">Answer: yes. Confidence: 0.9</pre>' in page
    assert "shown as written" not in page and "<mark" not in page and "0.1250" in page


def test_curate_counts_when_the_stage_is_there(run_dir: Path) -> None:
    curate_stage(run_dir)
    page = write_report(run_dir, order=["generate", "curate", "train", "eval"]).read_text()
    assert page.index('data-stage="curate"') < page.index('data-stage="train"')
    row = page[page.index('<tr data-filter="duplicates">') :]
    row = row[: row.index("</tr>")]
    assert '<td class="num">4</td><td class="num">1</td><td>exact duplicate prompt 1' in row
    assert '<td class="num">3</td>' in row and "traces.jsonl:4: prompt_id" in row  # the example
    for name in ("read", "truncated", "degenerate"):
        assert f'<tr data-filter="{name}">' in page


def test_unfinished_and_unreadable_stages_are_notes(run_dir: Path) -> None:
    (run_dir / "export").mkdir()
    (run_dir / "export" / ".started").write_text("x")
    (run_dir / "train" / "stage.json").write_text('{"stage": "tr')
    shutil.copytree(run_dir / "eval", run_dir / "eval.prev-20260101-120000")  # kept by a rerun
    shutil.copytree(run_dir / "generate", run_dir / "generate-copy")  # its record says generate
    page = write_report(run_dir).read_text()
    assert "did not finish" in page and "stage.json unreadable" in page
    assert (
        "prev-" not in page
        and "generate-copy" not in page
        and page.count('<table class="eval"') == 1
    )
    assert "Training loss" not in page and "0.8125" in page


def test_no_stage_is_a_clear_error(tmp_path: Path, run_cli) -> None:
    with pytest.raises(InputError, match="no pipeline stage here"):
        write_report(tmp_path)
    result = run_cli("report", tmp_path / "nowhere", ok=False)
    assert result.exit_code == 1 and "no such run directory" in result.output
    assert "Traceback" not in result.output


def test_replaces_its_own_report_never_another_file(run_dir: Path, tmp_path: Path, run_cli) -> None:
    first = write_report(run_dir)
    assert write_report(run_dir) == first  # a rerun replaces the page Hegelion wrote
    mine = tmp_path / "report.html"
    mine.write_text("<html>my notes</html>")
    with pytest.raises(InputError, match="not a report Hegelion wrote"):
        write_report(run_dir, out=mine)
    assert mine.read_text() == "<html>my notes</html>"
    result = run_cli("report", run_dir, "--out", tmp_path / "elsewhere.html")
    assert f"report: {tmp_path / 'elsewhere.html'}" in result.output
    assert (tmp_path / "elsewhere.html").read_text().startswith("<!doctype html>")


def test_hegelion_run_writes_the_report_last(plugin_site: Path, tmp_path: Path) -> None:
    from tests.conftest import hegelion

    (tmp_path / "prompts.txt").write_text("Is it so?\nIs it not?\n")
    (tmp_path / "pipe.yaml").write_text(
        f"name: demo\nworkdir: {tmp_path / 'w'}\nstages:\n"
        "  generate: {teacher: echo, mode: single, prompt_file: prompts.txt, limit: 2}\n"
        "  format: {format: sft}\n"
    )
    out = hegelion(plugin_site, "run", tmp_path / "pipe.yaml")
    assert out.returncode == 0, out.stderr
    assert f"report: {tmp_path / 'w' / 'report.html'}" in out.stdout
    page = (tmp_path / "w" / "report.html").read_text()
    assert page.index('data-stage="generate"') < page.index('data-stage="format"')
    again = hegelion(plugin_site, "report", tmp_path / "pipe.yaml")  # found from the file
    assert again.stdout == f"report: {tmp_path / 'w' / 'report.html'}\n", again.stderr


# ----- in a real browser --------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> None:
    if chromium_path() is None:
        message = f"chromium is not installed; install it with: {INSTALL}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " (CI must run the browser tests)")
        pytest.skip(message)


TABLE = """[...document.querySelectorAll('table.eval tr[data-metric]')].map(tr => [
  tr.dataset.metric, ...[...tr.querySelectorAll('td[data-label]')].map(
    td => [td.dataset.label, td.innerText, getComputedStyle(td).display])])"""


def test_the_page_in_chromium(browser: None, run_dir: Path, tmp_path: Path) -> None:
    curate_stage(run_dir)
    page = load_page(write_report(run_dir), TABLE)
    assert page.errors == []  # no console error, no exception, no failed load
    assert page.requests == []  # self-contained: nothing fetched
    shown = {
        metric: {label: text for label, text, display in cells if display != "none"}
        for metric, *cells in page.values
    }
    for label in ("before", "after"):
        results = json.loads((run_dir / "eval" / label / "results.json").read_text())
        for metric, value in results["metrics"].items():
            assert shown[metric][label] == ("n/a" if value is None else f"{value:.4f}")
    assert page.screenshot.startswith(b"\x89PNG")
    (tmp_path / "report.png").write_bytes(page.screenshot)  # kept when the test fails


def test_the_browser_check_catches_a_broken_page(browser: None, tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text(
        '<!doctype html><img src="missing.png">'
        '<script>console.error("logged"); undefinedFunction();</script>'
    )
    page = load_page(broken)
    assert any("logged" in e for e in page.errors)
    assert any("undefinedFunction is not defined" in e for e in page.errors)
    assert any("ERR_FILE_NOT_FOUND" in e for e in page.errors)
    assert page.requests == [(tmp_path / "missing.png").as_uri()]
