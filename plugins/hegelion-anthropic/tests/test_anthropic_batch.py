"""``hegelion generate --batch`` with the anthropic teacher, against the scripted batch
service (Anthropic's Message Batches through the official SDK): phased with a council
and a judge, killed during submission and during collection, partial failures, expiry,
status, idempotent collects, cancel, and the same records as a live run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hegelion_core.testing.batch_runs import (
    HoldingBatchServer,
    kill_when_held,
    run_cli,
    start_cli,
    thesis_custom_ids,
    varied_reply,
)
from hegelion_core.testing.batch_server import BatchScript

MODEL = "claude-haiku-4-5"  # in the price table as claude-haiku-4: $1 in, $5 out per million


@pytest.fixture
def service(tmp_path: Path) -> Iterator[HoldingBatchServer]:
    with HoldingBatchServer(state_dir=tmp_path / "state", reply=varied_reply) as server:
        yield server


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("".join(f"Should city number {i} plant more trees?\n" for i in range(12)))
    return path


def questions(prompts: Path) -> list[str]:
    return prompts.read_text().splitlines()


def generate_args(
    service: HoldingBatchServer, prompts: Path, out: Path, *extra: str, limit: int = 5
) -> list[str]:
    return [
        "generate",
        "--prompt-file",
        str(prompts),
        "-o",
        str(out),
        "--limit",
        str(limit),
        "--teacher",
        "anthropic",
        "--base-url",
        service.anthropic_base_url,
        "--model",
        MODEL,
        "--mode",
        "phased",
        "--council",
        "council",
        "--judge",
        "--batch",
        *extra,
    ]


def env(api_key: str) -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": api_key, "OMP_NUM_THREADS": "1"}


def collect(out: Path, api_key: str) -> Any:
    return run_cli(["batch", "collect", str(out), "--wait", "--poll-interval", "0"], env(api_key))


def store(out: Path) -> Path:
    return out.with_name(out.name + ".batch")


def records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def rejects(out: Path) -> list[dict[str, Any]]:
    path = out.with_name(out.name + ".rejects.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_killed_during_submission_and_collection_loses_nothing_and_submits_nothing_twice(
    service: HoldingBatchServer, prompts: Path, tmp_path: Path, api_key: str
) -> None:
    out = tmp_path / "out.jsonl"
    service.script = BatchScript(polls=1)
    service.hold_job = 2  # round 1 is three batches of two: killed once the second exists
    proc = start_cli(
        generate_args(service, prompts, out, "--batch-max-requests", "2"),
        env(api_key),
        tmp_path / "generate.log",
    )
    kill_when_held(service, proc)
    assert len(service.submissions("anthropic")) == 4  # two batches, the second unrecorded
    events = [json.loads(line)["event"] for line in (store(out) / "jobs.jsonl").open()]
    assert events == ["intent", "submitted", "intent"]

    service.hold_results = True  # the next collect is killed while downloading results
    proc = start_cli(
        ["batch", "collect", str(out), "--wait", "--poll-interval", "0"],
        env(api_key),
        tmp_path / "collect.log",
    )
    kill_when_held(service, proc)

    done = collect(out, api_key)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = records(out)  # every line parses
    assert len({r["prompt_id"] for r in rows}) == len(rows) == 5
    assert all(r["hegelion_trace"]["judge"] is not None for r in rows)
    assert all(len(r["hegelion_trace"]["critiques"]) == 3 for r in rows)
    counts = service.submission_counts("anthropic")
    assert len(counts) == 6 * 5 and max(counts.values()) == 1, counts.most_common(3)
    submitted = {
        e["job_id"]
        for e in map(json.loads, (store(out) / "jobs.jsonl").open())
        if e["event"] == "submitted"
    }
    assert submitted == {s.batch_id for s in service.submissions("anthropic")}
    assert rejects(out) == []


def test_live_and_batch_runs_write_the_same_records(
    service: HoldingBatchServer, prompts: Path, tmp_path: Path, api_key: str
) -> None:
    batch_out, live_out = tmp_path / "batch.jsonl", tmp_path / "live.jsonl"
    assert (
        run_cli(generate_args(service, prompts, batch_out, limit=3), env(api_key)).returncode == 0
    )
    assert collect(batch_out, api_key).returncode == 0
    live_args = [a for a in generate_args(service, prompts, live_out, limit=3) if a != "--batch"]
    assert run_cli(live_args, env(api_key)).returncode == 0
    keep = ("prompt_id", "instruction", "output", "system", "hegelion_trace", "usage", "model")
    batch = {r["prompt_id"]: {k: r[k] for k in keep} for r in records(batch_out)}
    live = {r["prompt_id"]: {k: r[k] for k in keep} for r in records(live_out)}
    assert len(batch) == 3
    assert batch == live


def test_status_collect_twice_and_cost(
    service: HoldingBatchServer, prompts: Path, tmp_path: Path, api_key: str
) -> None:
    out = tmp_path / "out.jsonl"
    service.script = BatchScript(polls=2)
    assert run_cli(generate_args(service, prompts, out, limit=3), env(api_key)).returncode == 0
    summary = json.loads(run_cli(["batch", "status", str(out), "--json"], env(api_key)).stdout)
    assert [(j["state"], j["requests"]) for j in summary["jobs"]] == [("in_progress", 3)]
    assert summary["expected_usd"] > 0 and summary["spent_usd"] == 0

    assert collect(out, api_key).returncode == 0
    before = out.read_bytes(), len(service.submissions())
    again = run_cli(["batch", "collect", str(out)], env(api_key))
    assert again.returncode == 0 and "3/3 records, done" in again.stdout
    assert (out.read_bytes(), len(service.submissions())) == before

    rows = records(out)
    used_in = sum(r["usage"]["prompt_tokens"] for r in rows)
    used_out = sum(r["usage"]["completion_tokens"] for r in rows)
    half = (used_in * 1.0 + used_out * 5.0) / 1e6 / 2
    summary = json.loads(run_cli(["batch", "status", str(out), "--json"], env(api_key)).stdout)
    assert summary["spent_usd"] == pytest.approx(half, abs=1e-5)
    status = json.loads(run_cli(["status", str(out), "--json"], env(api_key)).stdout)
    assert status["cost_usd"] == pytest.approx(half, abs=1e-4)


def test_partial_failures_are_retried_and_expiry_past_retries_stops_the_run(
    service: HoldingBatchServer, prompts: Path, tmp_path: Path, api_key: str
) -> None:
    out = tmp_path / "out.jsonl"
    qs = questions(prompts)
    service.script = BatchScript(polls=1, fail=thesis_custom_ids(qs[:2], 0), attempts=10)
    assert run_cli(generate_args(service, prompts, out, limit=4), env(api_key)).returncode == 0
    assert collect(out, api_key).returncode == 0
    assert len(records(out)) == 4 and rejects(out) == []
    counts = service.submission_counts()
    assert thesis_custom_ids(qs[:2], 1) <= set(counts) and max(counts.values()) == 1

    expired_out = tmp_path / "expired.jsonl"
    service.script = BatchScript(
        polls=1, expire=thesis_custom_ids(qs, 0) | thesis_custom_ids(qs, 1), attempts=10
    )
    args = generate_args(service, prompts, expired_out, "--max-retries", "1", limit=2)
    assert run_cli(args, env(api_key)).returncode == 0
    stopped = collect(expired_out, api_key)  # the service's fault: stopped, not rejected
    assert stopped.returncode == 5 and "stopped early" in stopped.stderr, stopped.stderr
    rows = rejects(expired_out)
    assert len(rows) == 2
    assert all("expired" in r["reason"] and r["blame"] == "service" for r in rows)
    service.script = BatchScript(polls=1)
    assert collect(expired_out, api_key).returncode == 0  # asked again: written
    assert len(records(expired_out)) == 2


def test_cancel_stops_the_run(
    service: HoldingBatchServer, prompts: Path, tmp_path: Path, api_key: str
) -> None:
    out = tmp_path / "out.jsonl"
    service.script = BatchScript(polls=100)
    assert run_cli(generate_args(service, prompts, out, limit=3), env(api_key)).returncode == 0
    cancelled = run_cli(["batch", "cancel", str(out)], env(api_key))
    assert cancelled.returncode == 0 and "cancelled 1 jobs" in cancelled.stdout
    (job_id,) = {s.batch_id for s in service.submissions()}
    before = len(service.submissions())
    done = collect(out, api_key)
    assert "done" in done.stdout, done.stdout + done.stderr
    assert service.job(job_id)["end"] == "cancelled"
    assert len(service.submissions()) == before
    printed = cancelled.stdout + cancelled.stderr + done.stdout + done.stderr
    assert api_key not in printed
    for path in store(out).iterdir():
        assert api_key.encode() not in path.read_bytes(), path
