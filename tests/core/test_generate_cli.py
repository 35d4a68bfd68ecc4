"""`hegelion generate`, `status`, `dialectic` and `agent` end to end, in subprocesses,
with the pip-installed example teacher; four generators on one file, killed with -9."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from tests.conftest import EXAMPLES, hegelion, hegelion_env, left_out_message


def ids(path: Path) -> list[str]:
    return [orjson.loads(line)["prompt_id"] for line in path.read_bytes().splitlines()]


def test_generate_then_rerun_resumes_and_status_reports(plugin_site, tmp_path) -> None:
    out = tmp_path / "traces.jsonl"
    args = [
        "generate",
        "--prompt-file",
        EXAMPLES / "prompts.txt",
        "-o",
        out,
        "--limit",
        "5",
        "--teacher",
        "echo",
        "--mode",
        "single",
        "--quiet",
    ]
    proc = hegelion(plugin_site, *args)
    assert proc.returncode == 0, proc.stderr
    assert f"{out}: 5 records (5 new), 0 rejected" in proc.stdout
    first = out.read_bytes()
    again = hegelion(plugin_site, *args)
    assert "5 records (0 new)" in again.stdout and out.read_bytes() == first

    prices = tmp_path / "prices.toml"
    prices.write_text("[echo]\ninput = 1000.0\noutput = 2000.0\n")
    status = json.loads(hegelion(plugin_site, "status", out, "--json", "--prices", prices).stdout)
    assert status["written"] == 5 and status["limit"] == 5 and status["rejected_prompts"] == 0
    usage = status["by_model"]["echo"]
    assert usage["cost_usd"] == round(
        usage["prompt_tokens"] * 1000 / 1e6 + usage["completion_tokens"] * 2000 / 1e6, 4
    )
    text = hegelion(plugin_site, "status", out, "--prices", prices).stdout
    assert "5 of 5 written" in text and "total cost: $" in text

    formatted = hegelion(plugin_site, "dataset", out, tmp_path / "sft.jsonl", "--format", "sft")
    assert "5 records used, 0 skipped" in formatted.stdout


def test_four_generators_share_one_file_survive_kill_9_and_resume(plugin_site, tmp_path) -> None:
    out = tmp_path / "shared.jsonl"
    args = [
        sys.executable,
        "-m",
        "hegelion_core",
        "generate",
        "--prompt-file",
        str(EXAMPLES / "prompts.txt"),
        "-o",
        str(out),
        "--limit",
        "16",
        "--teacher",
        "echo",
        "-t",
        "delay=0.9",
        "--mode",
        "single",
        "--concurrency",
        "2",
        "--quiet",
    ]
    env = hegelion_env(plugin_site)
    procs = [
        subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    deadline = time.monotonic() + 120
    while (
        not out.exists() or len(out.read_bytes().splitlines()) < 4
    ) and time.monotonic() < deadline:
        time.sleep(0.05)
    for p in procs[:2]:
        p.send_signal(signal.SIGKILL)  # mid-flight: their claims die with them
    for p in procs:
        p.wait(timeout=120)
    assert [p.returncode for p in procs[2:]] == [0, 0], [p.stderr.read() for p in procs[2:]]

    resumed = hegelion(plugin_site, *args[3:])
    assert resumed.returncode == 0, resumed.stderr
    rows = ids(out)
    assert len(rows) == 16 and len(set(rows)) == 16  # exactly --limit, no duplicates
    assert all(line.endswith(b"}") for line in out.read_bytes().splitlines())


def test_dialectic_command(plugin_site) -> None:
    proc = hegelion(
        plugin_site,
        "dialectic",
        "Is water wet?",
        "--teacher",
        "echo",
        "--mode",
        "single",
        "--format",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["query"] == "Is water wet?"
    assert result["trace"]["thesis"].startswith("You asked: Is water wet?")
    summary = hegelion(
        plugin_site, "dialectic", "Is water wet?", "--teacher", "echo", "--mode", "single"
    ).stdout
    assert "== THESIS ==" in summary and "== SYNTHESIS ==" in summary


def test_dialectic_failure_is_a_clear_error(plugin_site) -> None:
    proc = hegelion(
        plugin_site, "dialectic", "Q?", "--teacher", "echo", "-t", "style=plain", "--mode", "single"
    )
    assert proc.returncode != 0
    assert "the dialectic failed in the single phase: unparseable trace after repair" in proc.stderr


def test_agent_logs_a_record_that_dataset_reads(plugin_site, tmp_path) -> None:
    log = tmp_path / "agent.jsonl"
    for obs in ("tests fail on import", "the build is slow"):
        proc = hegelion(
            plugin_site,
            "agent",
            obs,
            "--goal",
            "ship it",
            "--coding",
            "--log-file",
            log,
            "--teacher",
            "echo",
            "--mode",
            "single",
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("Action: ")
    rows = [orjson.loads(x) for x in log.read_bytes().splitlines()]
    assert [r["observation"] for r in rows] == ["tests fail on import", "the build is slow"]
    assert rows[0]["instruction"].startswith("Goal: ship it\n\nObservation: tests fail on import")
    formatted = hegelion(plugin_site, "dataset", log, tmp_path / "dpo.jsonl", "--format", "dpo")
    assert "2 records used" in formatted.stdout


def test_hegelion_agent_alias(plugin_site, tmp_path) -> None:
    exe = Path(sys.executable).with_name("hegelion-agent")
    proc = subprocess.run(
        [exe, "obs", "--teacher", "echo", "--mode", "single"],
        capture_output=True,
        text=True,
        env=hegelion_env(plugin_site),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Action: ")


def test_missing_teacher_plugin_names_the_install(plugin_site, tmp_path) -> None:
    # Left out by HEGELION_PLUGINS where hegelion-kimi is installed, so the command must
    # fail either way, before any call, saying why.
    proc = hegelion(
        plugin_site,
        "generate",
        "--prompt-file",
        EXAMPLES / "prompts.txt",
        "-o",
        tmp_path / "o.jsonl",
        "--teacher",
        "kimi-cli",
        HEGELION_PLUGINS="hegelion-echo",
    )
    assert proc.returncode != 0
    assert left_out_message("teacher", "kimi-cli", "hegelion-kimi") in proc.stderr
