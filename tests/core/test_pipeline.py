"""`hegelion run`: stages in order, skipped when unchanged, resumed when interrupted,
and errors that name the file, the line and the key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hegelion_core.errors import InputError
from hegelion_core.pipeline import load_pipeline
from tests.conftest import hegelion, hegelion_env

PROMPTS = [f"Question number {i}: is it so?" for i in range(12)]


def write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    path = tmp_path / "pipe.yaml"
    path.write_text(body)
    return path


PIPE = """\
name: demo
workdir: {workdir}
stages:
  generate:
    teacher: echo
    mode: single
    prompt_file: prompts.txt
    limit: {limit}
    teacher_option: {{delay: {delay}}}
  format:
    format: {fmt}
"""


def pipe(tmp_path: Path, *, limit: int = 4, fmt: str = "sft", delay: float = 0.0) -> Path:
    return write(tmp_path, PIPE.format(workdir=tmp_path / "w", limit=limit, fmt=fmt, delay=delay))


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_runs_every_stage_then_skips_what_is_unchanged(plugin_site: Path, tmp_path: Path) -> None:
    config = pipe(tmp_path)
    first = hegelion(plugin_site, "run", config)
    assert first.returncode == 0, first.stderr
    w = tmp_path / "w"
    assert len(lines(w / "generate" / "traces.jsonl")) == 4
    assert len(lines(w / "format" / "sft.jsonl")) == 4
    record = json.loads((w / "format" / "stage.json").read_text())
    assert record["kind"] == "format" and record["inputs"][0]["path"].endswith("traces.jsonl")
    assert record["figures"]["rows_train"] == 4
    assert "hegelion-core" in record["versions"]
    assert "sft.jsonl" in first.stdout  # the summary names the outputs

    again = hegelion(plugin_site, "run", config)
    assert again.returncode == 0, again.stderr
    assert "generate: unchanged, skipped" in again.stderr
    assert "format: unchanged, skipped" in again.stderr

    # A changed format option reruns format alone; the traces stay as they were.
    traces_before = (w / "generate" / "traces.jsonl").read_bytes()
    changed = hegelion(plugin_site, "run", pipe(tmp_path, fmt="chat"))
    assert changed.returncode == 0, changed.stderr
    assert "generate: unchanged, skipped" in changed.stderr and "format: running" in changed.stderr
    assert (w / "generate" / "traces.jsonl").read_bytes() == traces_before
    assert (w / "format" / "chat.jsonl").is_file() and not (w / "format" / "sft.jsonl").exists()

    # --stage runs that stage even when unchanged; --all runs every one.
    one = hegelion(plugin_site, "run", config, "--stage", "format")
    assert "format: running" in one.stderr and "generate" not in one.stderr.split("format")[0]
    everything = hegelion(plugin_site, "run", config, "--all")
    assert "generate: running" in everything.stderr and "format: running" in everything.stderr


def test_more_records_resume_generation_instead_of_starting_over(
    plugin_site: Path, tmp_path: Path
) -> None:
    assert hegelion(plugin_site, "run", pipe(tmp_path, limit=3)).returncode == 0
    traces = tmp_path / "w" / "generate" / "traces.jsonl"
    first = traces.read_bytes()
    more = hegelion(plugin_site, "run", pipe(tmp_path, limit=6))
    assert more.returncode == 0, more.stderr
    assert traces.read_bytes().startswith(first)  # appended to, not rewritten
    assert len({r["prompt_id"] for r in lines(traces)}) == 6


def test_kill_9_mid_generate_then_rerun_resumes(plugin_site: Path, tmp_path: Path) -> None:
    config = pipe(tmp_path, limit=12, delay=0.3)
    cmd = [sys.executable, "-m", "hegelion_core", "run", str(config)]
    proc = subprocess.Popen(
        cmd,
        env=hegelion_env(plugin_site),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    traces = tmp_path / "w" / "generate" / "traces.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (traces.exists() and len(lines(traces)) >= 2):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the pipeline and its stage process, at once
    proc.wait()
    partial = len(lines(traces))
    assert 2 <= partial < 12
    assert not (tmp_path / "w" / "generate" / "stage.json").exists()

    rerun = hegelion(plugin_site, "run", pipe(tmp_path, limit=12, delay=0.0))
    assert rerun.returncode == 0, rerun.stderr
    ids = [r["prompt_id"] for r in lines(traces)]
    assert len(ids) == len(set(ids)) == 12
    assert len(lines(tmp_path / "w" / "format" / "sft.jsonl")) == 12


def test_errors_name_the_file_the_line_and_the_key(plugin_site: Path, tmp_path: Path) -> None:
    config = write(tmp_path, "name: demo\nstages:\n  generate:\n    teacher: echo\n    limt: 3\n")
    bad = hegelion(plugin_site, "run", config)
    assert bad.returncode == 1
    assert f"{config}:5: field 'stages.generate.limt': unknown option" in bad.stderr
    assert "known:" in bad.stderr and "limit" in bad.stderr

    kinds = write(tmp_path, "name: demo\nstages:\n  cook:\n    teacher: echo\n")
    with pytest.raises(InputError, match=r"pipe.yaml:3.*unknown kind 'cook'"):
        load_pipeline(kinds)

    wired = write(tmp_path, "name: demo\nstages:\n  generate:\n    output: x.jsonl\n")
    out = hegelion(plugin_site, "run", wired)
    assert "pipe.yaml:4" in out.stderr and "set by the pipeline" in out.stderr

    typed = write(tmp_path, "name: demo\nstages:\n  generate:\n    limit: lots\n")
    out = hegelion(plugin_site, "run", typed)
    assert "pipe.yaml:4" in out.stderr and "'lots' is not a valid integer" in out.stderr

    orphan = write(tmp_path, "name: demo\nstages:\n  format:\n    format: sft\n")
    out = hegelion(plugin_site, "run", orphan)
    assert "no earlier generate or curate stage" in out.stderr and "input: PATH" in out.stderr


def test_overrides_from_the_command_line(tmp_path: Path) -> None:
    config = load_pipeline(pipe(tmp_path), {"stages.generate.limit": 9, "name": "other"})
    assert config.stages["generate"].options["limit"] == 9 and config.name == "other"


def test_keys_written_in_the_file_stay_out_of_logs_and_records(
    plugin_site: Path, tmp_path: Path
) -> None:
    config = write(
        tmp_path,
        f"""\
name: demo
workdir: {tmp_path / "w"}
stages:
  generate:
    teacher: echo
    mode: single
    prompt_file: prompts.txt
    limit: 1
    teacher_option: {{prefix: hello, api_key: sk-very-secret-1234}}
""",
    )
    out = hegelion(plugin_site, "run", config)
    # The echo teacher refuses an unknown option, but only after the command was logged.
    assert "sk-very-secret-1234" not in out.stderr + out.stdout
    assert "api_key=***" in out.stderr


def test_a_curate_stage_reports_rows_in_out_and_drops_by_reason(
    plugin_site: Path, tmp_path: Path
) -> None:
    (tmp_path / "held_out.txt").write_text(PROMPTS[0] + "\n")
    config = write(
        tmp_path,
        f"""\
name: demo
workdir: {tmp_path / "w"}
stages:
  generate: {{teacher: echo, mode: single, prompt_file: prompts.txt, limit: 4}}
  curate: {{decontaminate: [held_out.txt], no_dedupe: true}}
  format: {{format: sft}}
  raw: {{uses: format, from: generate, format: sft}}
""",
    )
    done = hegelion(plugin_site, "run", config)
    assert done.returncode == 0, done.stderr
    w = tmp_path / "w"
    record = json.loads((w / "curate" / "stage.json").read_text())
    assert record["figures"] == {
        "rows_in": 4,
        "rows_out": 3,
        "dropped": 1,
        "dropped_by": {"overlaps a held-out prompt": 1},
    }
    assert record["artifact"] == {"traces": str(w / "curate" / "curated.jsonl")}
    assert "dropped_by: overlaps a held-out prompt 1" in done.stdout  # the summary
    # format reads the nearest curate stage; `from: generate` reads the uncurated traces.
    assert len(lines(w / "format" / "sft.jsonl")) == 3
    assert len(lines(w / "raw" / "sft.jsonl")) == 4
