"""``hegelion generate --batch`` with the openai teacher, against the scripted batch
service (OpenAI's Files and Batches endpoints through the official SDK): phased with a
council and a judge, killed during submission and during collection, partial failures,
expiry, cut answers, splitting, status, idempotent collects, cancel, and the same
records as a live run."""

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

MODEL = "gpt-4o-mini"  # in the price table: $0.15 in, $0.60 out per million


@pytest.fixture
def service(tmp_path: Path) -> Iterator[HoldingBatchServer]:
    with HoldingBatchServer(state_dir=tmp_path / "state", reply=varied_reply) as server:
        yield server


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("".join(f"Is claim number {i} about rivers true?\n" for i in range(12)))
    return path


def thesis_ids(prompts: Path, attempt: int, first: int = 0, last: int = 3) -> frozenset[str]:
    questions = prompts.read_text().splitlines()[first:last]
    return thesis_custom_ids(questions, attempt, max_tokens=(None, 64))


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
        "openai",
        "--base-url",
        service.openai_base_url,
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
    return {"OPENAI_API_KEY": api_key, "OMP_NUM_THREADS": "1"}


def collect(out: Path, api_key: str, *extra: str) -> Any:
    return run_cli(
        ["batch", "collect", str(out), "--wait", "--poll-interval", "0", *extra], env(api_key)
    )


def jobs_file(out: Path) -> Path:
    return out.with_name(out.name + ".batch") / "jobs.jsonl"


def records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()]


def rejects(out: Path) -> list[dict[str, Any]]:
    path = out.with_name(out.name + ".rejects.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_killed_during_submission_and_collection_loses_nothing_and_submits_nothing_twice(
    service: HoldingBatchServer, prompts: Path, tmp_path: Path, api_key: str
) -> None:
    out = tmp_path / "out.jsonl"
    service.script = BatchScript(polls=1)
    service.hold_job = 2  # round 1 is three jobs of two: killed once the second exists
    proc = start_cli(
        generate_args(service, prompts, out, "--batch-max-requests", "2"),
        env(api_key),
        tmp_path / "generate.log",
    )
    kill_when_held(service, proc)
    assert len(service.submissions("openai")) == 4  # two jobs created, the second unrecorded
    events = [json.loads(line)["event"] for line in jobs_file(out).read_text().splitlines()]
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
    counts = service.submission_counts("openai")
    assert counts and max(counts.values()) == 1, counts.most_common(3)
    # thesis, 3 critics, synthesis, judge: six requests per prompt, each submitted once
    assert len(counts) == 6 * 5
    assert rejects(out) == []
    intents = [e for e in map(json.loads, jobs_file(out).read_text().splitlines())]
    submitted = {e["job_id"] for e in intents if e["event"] == "submitted"}
    assert submitted == {s.batch_id for s in service.submissions("openai")}


def test_live_and_batch_runs_write_the_same_records(
    service: HoldingBatchServer, prompts: Path, tmp_path: Path, api_key: str
) -> None:
    batch_out, live_out = tmp_path / "batch.jsonl", tmp_path / "live.jsonl"
    started = run_cli(generate_args(service, prompts, batch_out, limit=3), env(api_key))
    assert started.returncode == 0, started.stderr
    assert collect(batch_out, api_key).returncode == 0
    live_args = [a for a in generate_args(service, prompts, live_out, limit=3) if a != "--batch"]
    assert run_cli(live_args, env(api_key)).returncode == 0
    keep = ("prompt_id", "instruction", "output", "system", "hegelion_trace", "usage", "model")
    batch = {r["prompt_id"]: {k: r[k] for k in keep} for r in records(batch_out)}
    live = {r["prompt_id"]: {k: r[k] for k in keep} for r in records(live_out)}
    assert len(batch) == 3
    assert batch == live


def test_status_shows_states_counts_and_cost_at_batch_prices(
    service: HoldingBatchServer, prompts: Path, tmp_path: Path, api_key: str
) -> None:
    out = tmp_path / "out.jsonl"
    service.script = BatchScript(polls=3)
    assert (
        run_cli(
            generate_args(service, prompts, out, "--batch-max-requests", "3"), env(api_key)
        ).returncode
        == 0
    )
    shown = run_cli(["batch", "status", str(out), "--json"], env(api_key))
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    assert [j["requests"] for j in summary["jobs"]] == [3, 2]
    assert {j["state"] for j in summary["jobs"]} <= {"in_progress", "validating", "finalizing"}
    store = out.with_name(out.name + ".batch")
    asked = [
        json.loads(line)["request"] for line in (store / "requests.jsonl").read_text().splitlines()
    ]
    prompt_tokens = sum(sum(len(m["content"]) for m in r["messages"]) // 4 for r in asked)
    out_tokens = 512 * len(asked)  # no --max-tokens: the assumed budget per answer
    half = (prompt_tokens * 0.15 + out_tokens * 0.60) / 1e6 / 2
    assert summary["expected_usd"] == pytest.approx(half, abs=2e-4)
    assert summary["spent_usd"] == 0
    text = run_cli(["batch", "status", str(out)], env(api_key)).stdout
    assert "round 1" in text and "3 requests" in text and "at batch prices" in text

    assert collect(out, api_key).returncode == 0
    summary = json.loads(run_cli(["batch", "status", str(out), "--json"], env(api_key)).stdout)
    assert {j["state"] for j in summary["jobs"]} == {"collected"}
    rows = records(out)
    used_in = sum(r["usage"]["prompt_tokens"] for r in rows)
    used_out = sum(r["usage"]["completion_tokens"] for r in rows)
    half = (used_in * 0.15 + used_out * 0.60) / 1e6 / 2
    assert summary["spent_usd"] == pytest.approx(half, abs=1e-4)
    status = json.loads(run_cli(["status", str(out), "--json"], env(api_key)).stdout)
    assert status["by_model"][MODEL]["batch_records"] == 5
    assert status["cost_usd"] == pytest.approx(half, abs=1e-4)


def test_collecting_again_changes_nothing(
    service: HoldingBatchServer, prompts: Path, tmp_path: Path, api_key: str
) -> None:
    out = tmp_path / "out.jsonl"
    assert run_cli(generate_args(service, prompts, out, limit=2), env(api_key)).returncode == 0
    assert collect(out, api_key).returncode == 0
    before = out.read_bytes(), len(service.submissions())
    again = run_cli(["batch", "collect", str(out)], env(api_key))
    rerun = run_cli(generate_args(service, prompts, out, limit=2), env(api_key))
    assert again.returncode == rerun.returncode == 0, again.stderr + rerun.stderr
    assert "2/2 records, done" in again.stdout
    assert (out.read_bytes(), len(service.submissions())) == before


def test_a_rerun_with_another_dialectic_is_refused(
    service: HoldingBatchServer, prompts: Path, tmp_path: Path, api_key: str
) -> None:
    out = tmp_path / "out.jsonl"
    assert run_cli(generate_args(service, prompts, out, limit=2), env(api_key)).returncode == 0
    other = [
        a if a != "phased" else "single" for a in generate_args(service, prompts, out, limit=2)
    ]
    refused = run_cli(other, env(api_key))
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "other settings (dialectic)" in refused.stderr and "batch collect" in refused.stderr
    assert len(service.submissions()) == 2  # nothing more went out


def test_partial_failures_are_retried_in_the_next_round(
    service: HoldingBatchServer, prompts: Path, tmp_path: Path, api_key: str
) -> None:
    out = tmp_path / "out.jsonl"
    failing = thesis_ids(prompts, 0, 0, 2)  # two prompts' theses fail the first time
    service.script = BatchScript(polls=1, fail=failing, attempts=10)
    assert run_cli(generate_args(service, prompts, out, limit=4), env(api_key)).returncode == 0
    first = service.submissions()
    assert collect(out, api_key).returncode == 0
    assert len(records(out)) == 4 and rejects(out) == []
    counts = service.submission_counts()
    sent = {c for c in failing if c in counts}
    assert len(sent) == 2 and {s.custom_id for s in first} >= sent
    retried = {c.removesuffix("-0") + "-1" for c in sent}
    assert retried <= set(counts)  # asked again in round 2, as attempt 1
    assert max(counts.values()) == 1


def test_service_failures_past_max_retries_stop_the_run_and_cost_the_prompts_nothing(
    service: HoldingBatchServer, prompts: Path, tmp_path: Path, api_key: str
) -> None:
    """Every request fails (HTTP 500) at both attempts --max-retries 1 allows: as live,
    the prompts are not rejected for it (the failures are written, not counted), the run
    stops early (exit 5), and once the service is well the next collect asks again."""
    out = tmp_path / "out.jsonl"
    service.script = BatchScript(polls=1, fail_fraction=1.0, attempts=10)
    args = generate_args(service, prompts, out, "--max-retries", "1", limit=2)
    assert run_cli(args, env(api_key)).returncode == 0
    stopped = collect(out, api_key)
    assert stopped.returncode == 5, stopped.stdout + stopped.stderr
    assert "stopped early" in stopped.stderr and "batch collect" in stopped.stderr
    assert "Traceback" not in stopped.stderr and "not counted" in stopped.stdout
    assert not out.exists() or records(out) == []
    rows = rejects(out)
    assert len(rows) == 2 and all(r["phase"] == "thesis" for r in rows)
    assert all(r["blame"] == "service" and "HTTP 500" in r["reason"] for r in rows)
    assert all("after 2 attempts" in r["reason"] for r in rows)
    store = out.with_name(out.name + ".batch")
    assert "closed" not in (store / "prompts.jsonl").read_text()  # both prompts stay open
    again = run_cli(["batch", "collect", str(out)], env(api_key))  # the service still fails:
    assert again.returncode == 0, again.stdout + again.stderr  # asked again, not stopped
    assert len(rejects(out)) == 2  # each failure written once

    service.script = BatchScript(polls=1)  # the service is well again
    done = collect(out, api_key)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(records(out)) == 2 and len(rejects(out)) == 2
    counts = service.submission_counts()
    assert max(counts.values()) == 1  # every attempt a new custom_id, each sent once


@pytest.mark.parametrize(("expiring", "written"), [((0,), 3), ((0, 1), 0)])
def test_expired_requests_are_retried_or_stop_the_run_with_the_reason(
    service: HoldingBatchServer,
    prompts: Path,
    tmp_path: Path,
    api_key: str,
    expiring: tuple[int, ...],
    written: int,
) -> None:
    """Every thesis expires at the attempts in ``expiring``: once, the retry is written;
    at both attempts --max-retries 1 allows, the run stops (exit 5) with the prompts
    open, their expiries written as not counted."""
    out = tmp_path / "out.jsonl"
    ids = frozenset().union(*(thesis_ids(prompts, a, 0, 12) for a in expiring))
    service.script = BatchScript(polls=1, expire=ids, attempts=10)
    args = generate_args(service, prompts, out, "--max-retries", "1", limit=3)
    assert run_cli(args, env(api_key)).returncode == 0
    done = collect(out, api_key)
    assert done.returncode == (0 if written else 5), done.stdout + done.stderr
    assert (len(records(out)) if out.exists() else 0) == written
    if not written:
        rows = rejects(out)
        assert len(rows) == 3 and all("expired" in r["reason"] for r in rows), rows
        assert {r["blame"] for r in rows} == {"service"}


@pytest.mark.parametrize(("breaker", "at_stop"), [("1", 0), ("0", 2)])
def test_a_held_prompt_trips_the_breaker_or_waits_for_the_rest(
    service: HoldingBatchServer,
    prompts: Path,
    tmp_path: Path,
    api_key: str,
    breaker: str,
    at_stop: int,
) -> None:
    """One prompt's thesis fails (500) at both attempts --max-retries 1 allows. With
    --stop-after-failures 1 the run stops as soon as it is held; with 0 (no breaker) the
    other prompts finish first, and the run stops once nothing else moves. Either way the
    next collect asks it again and writes it."""
    out = tmp_path / "out.jsonl"
    failing = thesis_ids(prompts, 0, 0, 1) | thesis_ids(prompts, 1, 0, 1)
    service.script = BatchScript(polls=1, fail=failing, attempts=10)
    args = generate_args(
        service, prompts, out, "--max-retries", "1", "--stop-after-failures", breaker, limit=3
    )
    assert run_cli(args, env(api_key)).returncode == 0
    stopped = collect(out, api_key)
    assert stopped.returncode == 5, stopped.stdout + stopped.stderr
    assert (len(records(out)) if out.exists() else 0) == at_stop
    assert [r["blame"] for r in rejects(out)] == ["service"]
    done = collect(out, api_key)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(records(out)) == 3 and max(service.submission_counts().values()) == 1


def test_a_refused_key_stops_at_once_and_costs_no_attempt(
    prompts: Path, tmp_path: Path, api_key: str
) -> None:
    out = tmp_path / "out.jsonl"
    with HoldingBatchServer(
        state_dir=tmp_path / "state", reply=varied_reply, api_key=api_key
    ) as service:
        refused = run_cli(generate_args(service, prompts, out, limit=2), env("sk-wrong-0000"))
        assert refused.returncode == 5, refused.stdout + refused.stderr
        assert "refused the credentials" in refused.stderr and "batch collect" in refused.stderr
        assert "Traceback" not in refused.stderr and "sk-wrong-0000" not in refused.stderr
        assert service.submissions() == [] and rejects(out) == []
        done = collect(out, api_key)  # the right key: the same requests go out, once
        assert done.returncode == 0, done.stdout + done.stderr
        assert len(records(out)) == 2 and rejects(out) == []
        assert max(service.submission_counts().values()) == 1


def test_a_reject_is_written_once_after_a_kill_before_its_prompt_was_closed(
    service: HoldingBatchServer, prompts: Path, tmp_path: Path, api_key: str
) -> None:
    """The store as ``kill -9`` leaves it between writing rejects and closing their
    prompts (no ``closed`` lines): the next collect closes them and writes nothing twice."""
    out = tmp_path / "out.jsonl"
    service.script = BatchScript(polls=1, cut=thesis_ids(prompts, 0, 0, 12), attempts=10)
    args = generate_args(
        service, prompts, out, "--max-tokens", "64", "--on-truncation", "reject", limit=2
    )
    assert run_cli(args, env(api_key)).returncode == 0
    assert collect(out, api_key).returncode == 4
    before = rejects(out)
    assert len(before) == 12 and len({r["prompt_id"] for r in before}) == 12
    taken = out.with_name(out.name + ".batch") / "prompts.jsonl"
    lines = taken.read_text().splitlines(keepends=True)
    taken.write_text("".join(line for line in lines if '"closed"' not in line))
    again = run_cli(["batch", "collect", str(out)], env(api_key))
    assert again.returncode == 4, again.stdout + again.stderr
    assert rejects(out) == before
    assert taken.read_text().count('"closed"') == 12


def test_cut_answers_follow_on_truncation(
    service: HoldingBatchServer, prompts: Path, tmp_path: Path, api_key: str
) -> None:
    retry_out, reject_out = tmp_path / "retry.jsonl", tmp_path / "reject.jsonl"
    service.script = BatchScript(polls=1, cut=thesis_ids(prompts, 0, 0, 12), attempts=10)
    args = generate_args(service, prompts, retry_out, "--max-tokens", "64", limit=2)
    assert run_cli(args, env(api_key)).returncode == 0
    assert collect(retry_out, api_key).returncode == 0
    assert len(records(retry_out)) == 2  # each cut answer asked again with 128 tokens
    store = retry_out.with_name(retry_out.name + ".batch")
    budgets = {
        json.loads(line)["request"]["max_tokens"]
        for line in (store / "requests.jsonl").read_text().splitlines()
    }
    assert budgets == {64, 128}

    args = generate_args(
        service, prompts, reject_out, "--max-tokens", "64", "--on-truncation", "reject", limit=2
    )
    assert run_cli(args, env(api_key)).returncode == 0
    assert collect(reject_out, api_key).returncode == 4
    assert all(r["reason"].startswith("truncated") for r in rejects(reject_out))


def test_jobs_are_split_below_the_byte_limit(
    service: HoldingBatchServer, prompts: Path, tmp_path: Path, api_key: str
) -> None:
    out = tmp_path / "out.jsonl"
    args = generate_args(service, prompts, out, "--batch-max-bytes", "1500", limit=6)
    assert run_cli(args, env(api_key)).returncode == 0
    store = out.with_name(out.name + ".batch")
    intents = [
        json.loads(line)
        for line in (store / "jobs.jsonl").read_text().splitlines()
        if json.loads(line)["event"] == "intent"
    ]
    assert len(intents) > 1 and sum(len(i["custom_ids"]) for i in intents) == 6
    for job_id in {s.batch_id for s in service.submissions()}:
        info = service.job(job_id)
        size = len(service._store.contents[info["input_file_id"]])
        assert size <= 1500


def test_cancel_stops_the_run_and_collect_keeps_what_finished(
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
    assert service.job(job_id)["end"] == "cancelled"
    assert len(service.submissions()) == before  # no next round after a cancel
    assert "done" in done.stdout
    summary = json.loads(run_cli(["batch", "status", str(out), "--json"], env(api_key)).stdout)
    assert summary["cancelled"] is True


def test_no_key_in_the_store_the_output_or_what_the_commands_print(
    service: HoldingBatchServer, prompts: Path, tmp_path: Path, api_key: str
) -> None:
    out = tmp_path / "out.jsonl"
    started = run_cli(generate_args(service, prompts, out, limit=2), env(api_key))
    done = collect(out, api_key)
    printed = started.stdout + started.stderr + done.stdout + done.stderr
    assert api_key not in printed
    for path in [out, *out.with_name(out.name + ".batch").iterdir()]:
        if path.is_file():
            assert api_key.encode() not in path.read_bytes(), path
