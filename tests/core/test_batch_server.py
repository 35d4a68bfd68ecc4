"""The scripted batch service, driven only through the official SDKs' batch methods:
what R6's ``generate --batch`` tests rely on it to do as OpenAI and Anthropic do."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from hegelion_core.data.parsing import parse_trace
from hegelion_core.testing.batch_server import BatchScript, BatchServer
from hegelion_core.testing.scripted_server import RecordedRequest

KEY = "sk-batch-test-key"
QUESTION = "Is a hot dog a sandwich?"


def _client(server: BatchServer, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key=key, max_retries=0)


def _lines(ids: list[str], model: str = "gpt-test", **body: Any) -> bytes:
    rows = [
        {
            "custom_id": cid,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": model,
                "messages": [{"role": "user", "content": f"{QUESTION} ({cid})"}],
                **body,
            },
        }
        for cid in ids
    ]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _submit(client: openai.OpenAI, data: bytes) -> str:
    file = client.files.create(file=("requests.jsonl", data), purpose="batch")
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "validating"
    return batch.id


def _poll(client: openai.OpenAI, batch_id: str, limit: int = 20) -> list[str]:
    """Every status seen until the batch ends."""
    seen: list[str] = []
    for _ in range(limit):
        status = client.batches.retrieve(batch_id).status
        seen.append(status)
        if status in ("completed", "failed", "expired", "cancelled"):
            return seen
    raise AssertionError(f"batch {batch_id} still {seen[-1]} after {limit} polls")


def _jsonl(client: openai.OpenAI, file_id: str | None) -> dict[str, dict[str, Any]]:
    if file_id is None:
        return {}
    rows = [json.loads(x) for x in client.files.content(file_id).text.splitlines()]
    return {r["custom_id"]: r for r in rows}


# ----- OpenAI ------------------------------------------------------------------------


def test_openai_job_completes_with_output_and_error_files(tmp_path: Path) -> None:
    script = BatchScript(polls=3, fail={"p2"}, cut={"p3"})
    with BatchServer(script, state_dir=tmp_path, api_key=KEY) as server:
        client = _client(server)
        batch_id = _submit(client, _lines(["p1", "p2", "p3", "p4"]))
        assert _poll(client, batch_id) == ["in_progress", "in_progress", "finalizing", "completed"]
        batch = client.batches.retrieve(batch_id)
        assert batch.request_counts is not None
        assert (batch.request_counts.total, batch.request_counts.completed) == (4, 3)
        assert batch.request_counts.failed == 1
        assert batch.completed_at is not None and batch.usage is not None
        assert batch.usage.output_tokens > 0

        out = _jsonl(client, batch.output_file_id)
        err = _jsonl(client, batch.error_file_id)
        assert sorted(out) == ["p1", "p3", "p4"] and sorted(err) == ["p2"]
        for cid in ("p1", "p4"):
            body = openai.types.chat.ChatCompletion.model_validate(out[cid]["response"]["body"])
            assert out[cid]["response"]["status_code"] == 200 and out[cid]["error"] is None
            assert body.choices[0].finish_reason == "stop" and body.usage is not None
            trace = parse_trace(body.choices[0].message.content or "")
            assert not trace.missing and QUESTION in (trace.thesis or "")
            assert cid in (trace.thesis or "")
        cut = out["p3"]["response"]["body"]["choices"][0]
        assert cut["finish_reason"] == "length"
        assert err["p2"]["response"]["status_code"] == 500
        assert err["p2"]["response"]["body"]["error"]["type"] == "server_error"
        assert client.files.retrieve(batch.output_file_id or "").purpose == "batch_output"
        assert server.submission_counts("openai") == {"p1": 1, "p2": 1, "p3": 1, "p4": 1}


def test_openai_max_tokens_cuts_the_answer_as_the_live_endpoint_does(
    batch_server: BatchServer,
) -> None:
    client = _client(batch_server)
    batch_id = _submit(client, _lines(["short"], max_completion_tokens=5))
    _poll(client, batch_id)
    out = _jsonl(client, client.batches.retrieve(batch_id).output_file_id)
    choice = out["short"]["response"]["body"]["choices"][0]
    assert choice["finish_reason"] == "length"
    assert len(choice["message"]["content"].split()) == 5


def test_openai_expired_job_reports_unfinished_requests(batch_server: BatchServer) -> None:
    batch_server.script = BatchScript(polls=1, expire={"late1", "late2"})
    client = _client(batch_server)
    batch_id = _submit(client, _lines(["early", "late1", "late2"]))
    assert _poll(client, batch_id)[-1] == "expired"
    batch = client.batches.retrieve(batch_id)
    assert batch.expired_at is not None and batch.completed_at is None
    assert sorted(_jsonl(client, batch.output_file_id)) == ["early"]
    err = _jsonl(client, batch.error_file_id)
    assert sorted(err) == ["late1", "late2"]
    assert all(e["response"] is None for e in err.values())
    assert {e["error"]["code"] for e in err.values()} == {"batch_expired"}


def test_openai_cancel_keeps_what_was_done_and_cancels_the_rest(
    batch_server: BatchServer,
) -> None:
    batch_server.script = BatchScript(polls=3)
    client = _client(batch_server)
    batch_id = _submit(client, _lines(["c1", "c2", "c3", "c4"]))
    assert [client.batches.retrieve(batch_id).status for _ in range(2)] == ["in_progress"] * 2
    assert client.batches.cancel(batch_id).status == "cancelling"
    batch = client.batches.retrieve(batch_id)
    assert batch.status == "cancelled" and batch.cancelled_at is not None
    done, cancelled = _jsonl(client, batch.output_file_id), _jsonl(client, batch.error_file_id)
    assert sorted(done) == ["c1", "c2"]  # 2 polls of 3 + 1: half the requests done
    assert sorted(cancelled) == ["c3", "c4"]
    assert {e["error"]["code"] for e in cancelled.values()} == {"batch_cancelled"}
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch_id)


def test_openai_refuses_too_large_file_and_fails_too_many_requests(tmp_path: Path) -> None:
    with BatchServer(state_dir=tmp_path, max_requests=2, max_file_bytes=600) as server:
        client = _client(server)
        big = _lines([f"r{i}" for i in range(6)])
        assert len(big) > 600
        with pytest.raises(openai.BadRequestError) as refused:
            client.files.create(file=("big.jsonl", big), purpose="batch")
        assert refused.value.status_code == 400
        assert refused.value.body == {
            "message": "File is too large.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
        batch_id = _submit(client, _lines(["r1", "r2", "r3"]))
        assert _poll(client, batch_id) == ["failed"]
        batch = client.batches.retrieve(batch_id)
        assert batch.errors is not None and batch.errors.data is not None
        assert [e.code for e in batch.errors.data] == ["too_many_tasks"]
        assert batch.failed_at is not None and batch.output_file_id is None
        assert server.submissions() == []  # a batch that fails validation runs nothing


@pytest.mark.parametrize(
    ("data", "code", "line"),
    [
        (_lines(["same"]) + _lines(["same"]), "duplicate_custom_id", 2),
        (_lines(["a"]) + b"{not json\n", "invalid_json_line", 2),
        (_lines(["a"]) + _lines(["b"], model="other-model"), "model_mismatch", 2),
        (_lines(["a"]).replace(b"/v1/chat/completions", b"/v1/embeddings"), "url_mismatch", 1),
    ],
)
def test_openai_invalid_input_fails_validation_naming_the_line(
    batch_server: BatchServer, data: bytes, code: str, line: int
) -> None:
    client = _client(batch_server)
    batch_id = _submit(client, data)
    _poll(client, batch_id)
    errors = client.batches.retrieve(batch_id).errors
    assert errors is not None and errors.data is not None
    assert [(e.code, e.line) for e in errors.data] == [(code, line)]


def test_openai_wrong_key_gets_401(tmp_path: Path) -> None:
    with BatchServer(state_dir=tmp_path, api_key=KEY) as server:
        with pytest.raises(openai.AuthenticationError):
            _client(server, "sk-wrong").files.create(
                file=("x.jsonl", _lines(["a"])), purpose="batch"
            )
        with pytest.raises(openai.AuthenticationError):
            list(_client(server, "sk-wrong").batches.list())
        assert server.submissions() == []


def test_openai_list_pages_newest_first(batch_server: BatchServer) -> None:
    client = _client(batch_server)
    ids = [_submit(client, _lines([f"x{i}"])) for i in range(3)]
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[::-1][:2] and first.has_more
    assert [b.id for b in client.batches.list(limit=2)] == ids[::-1]  # auto-paging


def test_openai_failed_request_retried_in_a_later_batch_succeeds_and_is_logged_twice(
    batch_server: BatchServer,
) -> None:
    batch_server.script = BatchScript(polls=0, fail={"flaky"})
    client = _client(batch_server)
    first = _submit(client, _lines(["flaky", "fine"]))
    _poll(client, first)
    assert sorted(_jsonl(client, client.batches.retrieve(first).error_file_id)) == ["flaky"]
    second = _submit(client, _lines(["flaky"]))
    _poll(client, second)
    assert sorted(_jsonl(client, client.batches.retrieve(second).output_file_id)) == ["flaky"]
    assert batch_server.submission_counts() == {"flaky": 2, "fine": 1}
    assert [(s.batch_id, s.custom_id) for s in batch_server.submissions()] == [
        (first, "flaky"),
        (first, "fine"),
        (second, "flaky"),
    ]
    assert batch_server.state_dir is not None
    log = batch_server.state_dir / "submissions.jsonl"
    assert [json.loads(x)["custom_id"] for x in log.read_text().splitlines()] == [
        "flaky",
        "fine",
        "flaky",
    ]


def test_openai_job_in_progress_survives_a_restart_on_the_same_state_dir(
    tmp_path: Path,
) -> None:
    with BatchServer(BatchScript(polls=3), state_dir=tmp_path) as first:
        client = _client(first)
        batch_id = _submit(client, _lines(["s1", "s2"]))
        assert client.batches.retrieve(batch_id).status == "in_progress"
    with BatchServer(BatchScript(polls=50), state_dir=tmp_path) as second:  # the job's own
        client = _client(second)  # script holds: 2 more polls, not 50
        assert _poll(client, batch_id) == ["in_progress", "finalizing", "completed"]
        out = _jsonl(client, client.batches.retrieve(batch_id).output_file_id)
        assert sorted(out) == ["s1", "s2"]
        assert second.submission_counts() == {"s1": 1, "s2": 1}


def _start_process(
    state: Path, argv: list[str] | None = None, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """``python -m hegelion_core.testing.batch_server`` (default ``--polls 2``) and its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "hegelion_core.testing.batch_server", "--state-dir", str(state)]
        + (argv if argv is not None else ["--polls", "2"]),
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        cwd=Path(__file__).parents[2],
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("serving http://127.0.0.1:"), line
    return proc, line.split()[1]


def test_openai_job_survives_kill_9_of_the_server_process(tmp_path: Path) -> None:
    proc, root = _start_process(tmp_path)
    try:
        client = openai.OpenAI(base_url=f"{root}/v1", api_key=KEY, max_retries=0)
        batch_id = _submit(client, _lines(["k1", "k2", "k3"]))
        assert client.batches.retrieve(batch_id).status == "in_progress"
        claude = anthropic.Anthropic(base_url=root, api_key=KEY, max_retries=0)
        message_batch = claude.messages.batches.create(requests=_requests(["m1"])).id
        assert claude.messages.batches.retrieve(message_batch).processing_status == "in_progress"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    proc, root = _start_process(tmp_path)
    try:
        client = openai.OpenAI(base_url=f"{root}/v1", api_key=KEY, max_retries=0)
        assert _poll(client, batch_id) == ["finalizing", "completed"]
        out = _jsonl(client, client.batches.retrieve(batch_id).output_file_id)
        assert sorted(out) == ["k1", "k2", "k3"]
        claude = anthropic.Anthropic(base_url=root, api_key=KEY, max_retries=0)
        assert _wait(claude, message_batch) == ["in_progress", "ended"]
        assert _results(claude, message_batch)["m1"].type == "succeeded"
        log = (tmp_path / "submissions.jsonl").read_text().splitlines()
        assert sorted(json.loads(x)["custom_id"] for x in log) == ["k1", "k2", "k3", "m1"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


# ----- Anthropic ---------------------------------------------------------------------


def _anthropic(server: BatchServer, key: str = KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.anthropic_base_url, api_key=key, max_retries=0)


def _requests(ids: list[str], max_tokens: int = 1024) -> list[Any]:
    """Message batch requests (``list[Any]``: the SDK takes TypedDicts, these are edited)."""
    return [
        {
            "custom_id": cid,
            "params": {
                "model": "claude-test",
                "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": f"{QUESTION} ({cid})"}],
            },
        }
        for cid in ids
    ]


def _wait(client: anthropic.Anthropic, batch_id: str, limit: int = 20) -> list[str]:
    seen: list[str] = []
    for _ in range(limit):
        seen.append(client.messages.batches.retrieve(batch_id).processing_status)
        if seen[-1] == "ended":
            return seen
    raise AssertionError(f"message batch {batch_id} still {seen[-1]} after {limit} polls")


def _results(client: anthropic.Anthropic, batch_id: str) -> dict[str, Any]:
    return {r.custom_id: r.result for r in client.messages.batches.results(batch_id)}


def test_anthropic_job_ends_with_results_the_sdk_parses(tmp_path: Path) -> None:
    script = BatchScript(polls=2, fail={"a2"}, cut={"a3"})
    with BatchServer(script, state_dir=tmp_path, api_key=KEY) as server:
        client = _anthropic(server)
        batch = client.messages.batches.create(requests=_requests(["a1", "a2", "a3", "a4"]))
        assert batch.processing_status == "in_progress" and batch.results_url is None
        assert batch.request_counts.processing == 4
        assert _wait(client, batch.id) == ["in_progress", "in_progress", "ended"]
        ended = client.messages.batches.retrieve(batch.id)
        assert ended.ended_at is not None and ended.results_url is not None
        counts = ended.request_counts
        assert (counts.processing, counts.succeeded, counts.errored) == (0, 3, 1)
        results = _results(client, batch.id)
        assert sorted(results) == ["a1", "a2", "a3", "a4"]
        for cid in ("a1", "a4"):
            result = results[cid]
            assert result.type == "succeeded"
            assert result.message.stop_reason == "end_turn" and result.message.usage.output_tokens
            block = result.message.content[0]
            assert block.type == "text"
            trace = parse_trace(block.text)
            assert not trace.missing and cid in (trace.thesis or "")
        assert results["a3"].type == "succeeded"
        assert results["a3"].message.stop_reason == "max_tokens"
        assert results["a2"].type == "errored"
        assert results["a2"].error.error.type == "api_error"
        assert server.submission_counts("anthropic") == {"a1": 1, "a2": 1, "a3": 1, "a4": 1}


def test_anthropic_invalid_params_come_back_errored(batch_server: BatchServer) -> None:
    batch_server.script = BatchScript(polls=0)
    client = _anthropic(batch_server)
    requests = _requests(["ok", "bad"])
    del requests[1]["params"]["max_tokens"]
    batch = client.messages.batches.create(requests=requests)
    _wait(client, batch.id)
    results = _results(client, batch.id)
    assert results["ok"].type == "succeeded"
    assert results["bad"].type == "errored"
    assert results["bad"].error.error.type == "invalid_request_error"
    assert "max_tokens" in results["bad"].error.error.message


def test_anthropic_expired_and_cancelled(batch_server: BatchServer) -> None:
    batch_server.script = BatchScript(polls=1, expire={"gone"})
    client = _anthropic(batch_server)
    expiring = client.messages.batches.create(requests=_requests(["kept", "gone"]))
    _wait(client, expiring.id)
    assert client.messages.batches.retrieve(expiring.id).request_counts.expired == 1
    results = _results(client, expiring.id)
    assert (results["kept"].type, results["gone"].type) == ("succeeded", "expired")

    batch_server.script = BatchScript(polls=3)
    batch = client.messages.batches.create(requests=_requests(["c1", "c2", "c3", "c4"]))
    assert [client.messages.batches.retrieve(batch.id).processing_status for _ in range(2)] == [
        "in_progress",
        "in_progress",
    ]
    canceling = client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert (ended.request_counts.succeeded, ended.request_counts.canceled) == (2, 2)
    results = _results(client, batch.id)
    assert [results[c].type for c in ("c1", "c2", "c3", "c4")] == ["succeeded"] * 2 + [
        "canceled"
    ] * 2
    with pytest.raises(anthropic.ConflictError):
        client.messages.batches.cancel(batch.id)


def test_anthropic_refuses_too_large_and_bad_custom_ids(tmp_path: Path) -> None:
    with BatchServer(state_dir=tmp_path, max_requests=3, max_body_bytes=2000) as server:
        client = _anthropic(server)
        huge = _requests(["huge"])
        huge[0]["params"]["messages"][0]["content"] = "x" * 2000
        with pytest.raises(anthropic.APIStatusError) as too_big:
            client.messages.batches.create(requests=huge)
        assert too_big.value.status_code == 413
        assert isinstance(too_big.value.body, dict)
        assert too_big.value.body["error"]["type"] == "request_too_large"
        with pytest.raises(anthropic.BadRequestError, match="at most 3 requests"):
            client.messages.batches.create(requests=_requests(["q1", "q2", "q3", "q4"]))
        with pytest.raises(anthropic.BadRequestError, match=r"requests\.0\.custom_id"):
            client.messages.batches.create(requests=_requests(["has space"]))
        with pytest.raises(anthropic.BadRequestError, match="duplicate"):
            client.messages.batches.create(requests=_requests(["d", "d"]))
        assert server.submissions() == []


def test_anthropic_wrong_key_gets_401(tmp_path: Path) -> None:
    with BatchServer(state_dir=tmp_path, api_key=KEY) as server:
        with pytest.raises(anthropic.AuthenticationError) as refused:
            _anthropic(server, "sk-ant-wrong").messages.batches.create(requests=_requests(["a"]))
        assert isinstance(refused.value.body, dict)
        assert refused.value.body["error"]["type"] == "authentication_error"
        assert server.submissions() == []


def test_anthropic_list_pages_newest_first(batch_server: BatchServer) -> None:
    client = _anthropic(batch_server)
    ids = [client.messages.batches.create(requests=_requests([f"l{i}"])).id for i in range(3)]
    first = client.messages.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[::-1][:2] and first.has_more
    assert [b.id for b in client.messages.batches.list(limit=2)] == ids[::-1]
    older = client.messages.batches.list(limit=5, before_id=ids[0])
    assert [b.id for b in older.data] == ids[::-1][:2]


def test_anthropic_job_in_progress_survives_a_restart(tmp_path: Path) -> None:
    with BatchServer(BatchScript(polls=2), state_dir=tmp_path) as first:
        client = _anthropic(first)
        batch = client.messages.batches.create(requests=_requests(["s1", "s2"]))
        assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    with BatchServer(state_dir=tmp_path) as second:
        client = _anthropic(second)
        assert _wait(client, batch.id) == ["in_progress", "ended"]
        results = _results(client, batch.id)  # results_url names the new server's port
        assert {r.type for r in results.values()} == {"succeeded"} and len(results) == 2
        assert second.submission_counts("anthropic") == {"s1": 1, "s2": 1}


# ----- script controls ---------------------------------------------------------------


def test_seconds_end_a_job_by_the_clock(batch_server: BatchServer) -> None:
    batch_server.script = BatchScript(polls=1000, seconds=0.3)
    client = _client(batch_server)
    batch_id = _submit(client, _lines(["t1"]))
    assert client.batches.retrieve(batch_id).status == "in_progress"
    time.sleep(0.35)
    assert client.batches.retrieve(batch_id).status == "completed"


def test_fractions_choose_stable_ids_and_attempts_bound_the_faults(
    batch_server: BatchServer,
) -> None:
    ids = [f"f{i}" for i in range(200)]
    script = BatchScript(polls=0, fail_fraction=0.25, attempts=2)
    failing = {cid for cid in ids if script.fault(cid, 0) == "fail"}
    assert 25 < len(failing) < 75  # about a quarter
    assert failing == {cid for cid in ids if BatchScript(fail_fraction=0.25).fault(cid, 0)}
    batch_server.script = script
    client = _client(batch_server)
    errored = []
    for _ in range(3):  # the same ids, three submissions: faulted on the first two only
        batch_id = _submit(client, _lines(ids))
        _poll(client, batch_id)
        errored.append(set(_jsonl(client, client.batches.retrieve(batch_id).error_file_id)))
    assert errored == [failing, failing, set()]
    assert set(batch_server.submission_counts().values()) == {3}


def test_results_come_back_in_another_order_than_the_input(batch_server: BatchServer) -> None:
    ids = [f"o{i}" for i in range(8)]
    batch_server.script = BatchScript(polls=0)
    client = _client(batch_server)
    batch_id = _submit(client, _lines(ids))
    _poll(client, batch_id)
    out = list(_jsonl(client, client.batches.retrieve(batch_id).output_file_id))
    assert sorted(out) == ids and out != ids  # clients must match on custom_id
    batch = _anthropic(batch_server).messages.batches.create(requests=_requests(ids))
    _wait(_anthropic(batch_server), batch.id)
    assert list(_results(_anthropic(batch_server), batch.id)) == out


def test_structured_requests_get_answers_that_fit_their_schema(
    batch_server: BatchServer,
) -> None:
    schema = {
        "type": "object",
        "properties": {"score": {"type": "integer", "minimum": 0, "maximum": 10}},
        "required": ["score"],
    }
    batch_server.script = BatchScript(polls=0)
    client = _client(batch_server)
    fmt = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema}}
    batch_id = _submit(client, _lines(["judge"], response_format=fmt))
    _poll(client, batch_id)
    out = _jsonl(client, client.batches.retrieve(batch_id).output_file_id)
    content = out["judge"]["response"]["body"]["choices"][0]["message"]["content"]
    assert json.loads(content) == {"score": 5}

    requests = _requests(["judge"])
    requests[0]["params"]["tools"] = [{"name": "verdict", "input_schema": schema}]
    requests[0]["params"]["tool_choice"] = {"type": "tool", "name": "verdict"}
    claude = _anthropic(batch_server)
    batch = claude.messages.batches.create(requests=requests)
    _wait(claude, batch.id)
    result = _results(claude, batch.id)["judge"]
    assert result.type == "succeeded" and result.message.stop_reason == "tool_use"
    block = result.message.content[0]
    assert block.type == "tool_use" and block.input == {"score": 5}


def _system_echo(request: RecordedRequest) -> str:
    """A reply function that answers with the request's system prompt (either API's)."""
    body = request.body
    system = body.get("system") or body["messages"][0]["content"]
    return f"{request.path} {system}"


def test_the_reply_function_sees_each_request_as_the_live_endpoint_would(
    tmp_path: Path,
) -> None:
    with BatchServer(BatchScript(polls=0), state_dir=tmp_path, reply=_system_echo) as server:
        requests = _requests(["sys"])
        requests[0]["params"]["system"] = "You are the thesis."
        claude = _anthropic(server)
        batch = claude.messages.batches.create(requests=requests)
        _wait(claude, batch.id)
        result = _results(claude, batch.id)["sys"]
        assert result.type == "succeeded"
        block = result.message.content[0]
        assert block.type == "text" and block.text == "/v1/messages You are the thesis."


def test_process_takes_faults_a_key_from_the_environment_and_a_reply(tmp_path: Path) -> None:
    (tmp_path / "echo_reply.py").write_text(
        "def reply(request):\n    return request.path + ' ' + request.body['messages'][0]['content']\n"
    )
    argv = ["--fail", "bad", "--polls", "0", "--api-key-env", "BATCH_TEST_KEY"]
    argv += ["--reply", "echo_reply:reply"]
    env = {"BATCH_TEST_KEY": KEY, "PYTHONPATH": str(tmp_path)}
    proc, root = _start_process(tmp_path / "state", argv, env)
    try:
        client = openai.OpenAI(base_url=f"{root}/v1", api_key=KEY, max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{root}/v1", api_key="sk-no", max_retries=0).batches.list()
        batch_id = _submit(client, _lines(["bad", "good"]))
        _poll(client, batch_id)
        batch = client.batches.retrieve(batch_id)
        assert list(_jsonl(client, batch.error_file_id)) == ["bad"]
        good = _jsonl(client, batch.output_file_id)["good"]["response"]["body"]
        assert good["choices"][0]["message"]["content"].startswith("/v1/chat/completions ")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert KEY not in " ".join(argv)


def test_openai_files_list_by_purpose_delete_and_survive_a_restart(tmp_path: Path) -> None:
    with BatchServer(BatchScript(polls=0), state_dir=tmp_path) as server:
        client = _client(server)
        uploads = [
            client.files.create(file=(f"in{i}.jsonl", _lines([f"u{i}"])), purpose="batch").id
            for i in range(3)
        ]
        batch_id = client.batches.create(
            input_file_id=uploads[0], endpoint="/v1/chat/completions", completion_window="24h"
        ).id
        _poll(client, batch_id)
        output = client.batches.retrieve(batch_id).output_file_id
        assert [f.id for f in client.files.list(purpose="batch")] == uploads[::-1]
        assert [f.id for f in client.files.list(purpose="batch_output")] == [output]
        assert [f.id for f in client.files.list(purpose="batch", order="asc", limit=1)] == uploads
        assert client.files.delete(uploads[1]).deleted
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(uploads[1])
    with BatchServer(state_dir=tmp_path) as again:
        client = _client(again)
        listed = [f.id for f in client.files.list(order="asc")]  # the upload order holds
        assert listed == [uploads[0], uploads[2], output]
        assert client.files.content(uploads[2]).read() == _lines(["u2"])


def test_openai_upload_is_byte_exact_and_windows_are_configurable(tmp_path: Path) -> None:
    data = _lines(["w1"]).replace(b"\n", b"\r\n") + "café ✓\n".encode() + bytes(range(256))
    with BatchServer(state_dir=tmp_path, completion_windows=("24h", "7d")) as server:
        client = _client(server)
        file = client.files.create(file=("odd.jsonl", data), purpose="batch")
        assert file.bytes == len(data) and client.files.content(file.id).read() == data
        good = client.files.create(file=("ok.jsonl", _lines(["w1"])), purpose="batch")
        week = client.batches.create(
            input_file_id=good.id,
            endpoint="/v1/chat/completions",
            completion_window="7d",  # type: ignore[arg-type]  # the SDK's Literal is OpenAI's
        )
        assert week.expires_at == week.created_at + 7 * 24 * 3600
        with pytest.raises(openai.BadRequestError, match="completion_window"):
            client.batches.create(
                input_file_id=good.id,
                endpoint="/v1/chat/completions",
                completion_window="1h",  # type: ignore[arg-type]  # refused, as OpenAI does
            )


def test_every_object_validates_against_the_sdks_own_types(batch_server: BatchServer) -> None:
    """The SDKs build their objects without validating; here each answer is validated
    (pydantic, strict about required fields and literals) by the SDKs' own types."""
    from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse
    from openai.types import Batch, FileObject

    batch_server.script = BatchScript(polls=2, fail={"v2"}, expire={"v3"})
    client = _client(batch_server)
    raw = client.files.with_raw_response.create(
        file=("v.jsonl", _lines(["v1", "v2", "v3"])), purpose="batch"
    )
    file_id = FileObject.model_validate(raw.http_response.json()).id
    created = client.batches.with_raw_response.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    batch = Batch.model_validate(created.http_response.json())
    for _ in range(3):
        answer = client.batches.with_raw_response.retrieve(batch.id).http_response.json()
        batch = Batch.model_validate(answer)
    assert batch.status == "expired"
    for file in (batch.output_file_id, batch.error_file_id):
        FileObject.model_validate(
            client.files.with_raw_response.retrieve(file or "").http_response.json()
        )

    claude = _anthropic(batch_server)
    made = claude.messages.batches.with_raw_response.create(requests=_requests(["v1", "v2", "v3"]))
    message_batch = MessageBatch.model_validate(made.http_response.json())
    for _ in range(3):
        answer = claude.messages.batches.with_raw_response.retrieve(message_batch.id)
        message_batch = MessageBatch.model_validate(answer.http_response.json())
    assert message_batch.processing_status == "ended" and message_batch.results_url
    lines = claude.messages.batches.with_raw_response.results(message_batch.id)
    kinds: dict[str, str] = {}
    for text in lines.http_response.read().decode().splitlines():
        row = MessageBatchIndividualResponse.model_validate(json.loads(text))
        kinds[row.custom_id] = row.result.type
    assert kinds == {"v1": "succeeded", "v2": "errored", "v3": "expired"}


def test_concurrent_clients_each_get_their_own_job_and_log_lines(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with BatchServer(BatchScript(polls=0), state_dir=tmp_path) as server:

        def one(n: int) -> str:
            client = _client(server)
            if n % 2:
                claude = _anthropic(server)
                return claude.messages.batches.create(requests=_requests([f"t{n}a", f"t{n}b"])).id
            return _submit(client, _lines([f"t{n}a", f"t{n}b"]))

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(one, range(16)))
        assert len(set(ids)) == 16
        assert server.submission_counts() == {f"t{n}{x}": 1 for n in range(16) for x in "ab"}
        assert {s.batch_id for s in server.submissions()} == set(ids)
        posted = [r for r in server.requests if r.path == "/v1/batches" and r.method == "POST"]
        assert len(posted) == 8 and all(r.body["completion_window"] == "24h" for r in posted)
    with BatchServer(state_dir=tmp_path) as again:  # every job and log line on disk
        assert {s.batch_id for s in again.submissions()} == set(ids)
        assert {again.job(i)["id"] for i in ids} == set(ids)


def _broken_reply(request: RecordedRequest) -> str:
    raise RuntimeError("this reply function is broken")


def test_a_broken_reply_function_is_reported_not_a_dropped_connection(tmp_path: Path) -> None:
    with BatchServer(BatchScript(polls=0), state_dir=tmp_path, reply=_broken_reply) as server:
        client = _client(server)
        batch_id = _submit(client, _lines(["r"]))
        with pytest.raises(openai.InternalServerError, match="this reply function is broken"):
            client.batches.retrieve(batch_id)
