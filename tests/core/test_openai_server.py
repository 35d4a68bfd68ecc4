"""The scripted OpenAI-/Anthropic-compatible server that teacher plugins and the
generation benchmark test against: routes, replies, faults, recording, concurrency and
its command line. Plain stdlib HTTP here; the plugins drive it with the real SDKs."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from hegelion_core.data.parsing import parse_trace
from hegelion_core.records import JudgeVerdict
from hegelion_core.testing.openai_server import (
    ScriptedAnthropicServer,
    ScriptedOpenAIServer,
    example_from_schema,
)

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Is water wet?"}]}


def call(
    server: ScriptedOpenAIServer,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(
            method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})}
        )
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def sse_data(raw: bytes) -> list[str]:
    return [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]


@pytest.fixture
def server():
    with ScriptedOpenAIServer() as srv:
        yield srv


def test_urls_and_models(server: ScriptedOpenAIServer) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert server.root_url == f"http://127.0.0.1:{server.port}"
    status, _, body = call(server, "GET", "/v1/models")
    assert status == 200 and json.loads(body)["data"][0]["id"] == "scripted-model"


def test_unknown_route_and_method(server: ScriptedOpenAIServer) -> None:
    assert call(server, "GET", "/v2/nothing")[0] == 404
    assert call(server, "GET", "/v1/chat/completions")[0] == 405


def test_default_reply_is_a_canonical_trace(server: ScriptedOpenAIServer) -> None:
    status, headers, raw = call(server, "POST", "/v1/chat/completions", CHAT)
    body = json.loads(raw)
    assert status == 200 and headers["content-type"] == "application/json"
    choice = body["choices"][0]
    trace = parse_trace(choice["message"]["content"])
    assert "Is water wet?" in trace.thesis and trace.antithesis and trace.synthesis
    assert choice["finish_reason"] == "stop" and body["model"] == "gpt-4o"
    assert body["usage"]["prompt_tokens"] == 3
    assert body["usage"]["completion_tokens"] == len(choice["message"]["content"].split())


def test_custom_reply_function_and_max_tokens_cut() -> None:
    with ScriptedOpenAIServer(reply=lambda req: "one two three four five") as srv:
        _, _, raw = call(srv, "POST", "/v1/chat/completions", {**CHAT, "max_tokens": 2})
    choice = json.loads(raw)["choices"][0]
    assert choice["message"]["content"] == "one two" and choice["finish_reason"] == "length"


def test_stream_matches_the_plain_answer(server: ScriptedOpenAIServer) -> None:
    plain = json.loads(call(server, "POST", "/v1/chat/completions", CHAT)[2])
    status, headers, raw = call(
        server,
        "POST",
        "/v1/chat/completions",
        {**CHAT, "stream": True, "stream_options": {"include_usage": True}},
    )
    assert status == 200 and headers["content-type"] == "text/event-stream"
    events = sse_data(raw)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == plain["choices"][0]["message"]["content"]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["usage"] == plain["usage"]


def test_requests_are_recorded_without_credentials(server: ScriptedOpenAIServer) -> None:
    call(server, "POST", "/v1/chat/completions", CHAT, {"Authorization": "Bearer sk-secret-123"})
    call(server, "GET", "/v1/models")
    first, second = server.requests
    assert first.path == "/v1/chat/completions" and first.body == CHAT and first.action == ("ok",)
    assert first.headers["authorization"] == "<redacted>"
    assert "sk-secret-123" not in repr(first)
    assert first.sent_bearer("sk-secret-123") and not first.sent_bearer("sk-other")
    assert (
        first.credential_sha256["authorization"]
        == hashlib.sha256(b"Bearer sk-secret-123").hexdigest()
    )
    assert second.path == "/v1/models" and server.completion_requests == [first]


def test_script_is_consumed_in_order_then_ok(server: ScriptedOpenAIServer) -> None:
    server.enqueue(("status", 429, {"Retry-After": "1"}), ("status", 500), ("reply", "fine"))
    assert server.pending == 3
    status, headers, raw = call(server, "POST", "/v1/chat/completions", CHAT)
    assert status == 429 and headers["retry-after"] == "1"
    assert json.loads(raw)["error"]["type"] == "rate_limit_exceeded"
    call(server, "GET", "/v1/models")  # not a completion: uses no action
    assert call(server, "POST", "/v1/chat/completions", CHAT)[0] == 500
    assert (
        json.loads(call(server, "POST", "/v1/chat/completions", CHAT)[2])["choices"][0]["message"][
            "content"
        ]
        == "fine"
    )
    assert call(server, "POST", "/v1/chat/completions", CHAT)[0] == 200
    assert [r.action[0] for r in server.completion_requests] == ["status", "status", "reply", "ok"]
    assert server.pending == 0


def test_unknown_actions_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown script action"):
        ScriptedOpenAIServer(script=[("explode",)])
    with pytest.raises(ValueError, match="status"):
        ScriptedOpenAIServer(script=[("status",)])


def test_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        ScriptedOpenAIServer(host="0.0.0.0")


def test_malformed_body(server: ScriptedOpenAIServer) -> None:
    server.enqueue(("malformed",))
    status, headers, raw = call(server, "POST", "/v1/chat/completions", CHAT)
    assert status == 200 and headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)


def test_truncated_stream_stops_mid_chunk(server: ScriptedOpenAIServer) -> None:
    server.enqueue(("truncated_stream",))
    with pytest.raises(http.client.IncompleteRead) as info:
        call(server, "POST", "/v1/chat/completions", {**CHAT, "stream": True})
    assert b"[DONE]" not in info.value.partial


def test_clean_truncated_stream_has_no_finish_and_no_done(server: ScriptedOpenAIServer) -> None:
    server.enqueue(("truncated_stream", "clean"))
    events = sse_data(call(server, "POST", "/v1/chat/completions", {**CHAT, "stream": True})[2])
    assert events and "[DONE]" not in events
    assert all(json.loads(e)["choices"][0]["finish_reason"] is None for e in events)


def test_hang_never_answers_and_stop_is_prompt() -> None:
    srv = ScriptedOpenAIServer(script=[("hang",)])
    srv.start()
    try:
        with pytest.raises(TimeoutError):
            call(srv, "POST", "/v1/chat/completions", CHAT, timeout=0.3)
    finally:
        start = time.monotonic()
        srv.stop()
    assert time.monotonic() - start < 2
    with pytest.raises(OSError):  # nothing listens any more
        socket.create_connection(("127.0.0.1", srv.port), timeout=0.5).close()


def test_unsupported_response_format_is_a_400() -> None:
    with ScriptedOpenAIServer(response_formats=("text",)) as srv:
        fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
        status, _, raw = call(srv, "POST", "/v1/chat/completions", {**CHAT, "response_format": fmt})
    assert status == 400 and json.loads(raw)["error"]["param"] == "response_format"


def test_structured_requests_get_json_that_fits() -> None:
    schema = JudgeVerdict.model_json_schema()
    fmt = {"type": "json_schema", "json_schema": {"name": "v", "schema": schema}}
    with ScriptedOpenAIServer() as srv:
        raw = call(srv, "POST", "/v1/chat/completions", {**CHAT, "response_format": fmt})[2]
    verdict = JudgeVerdict.model_validate_json(json.loads(raw)["choices"][0]["message"]["content"])
    assert 0 <= verdict.score <= 10
    assert example_from_schema({"type": "array", "items": {"type": "integer", "minimum": 3}}) == [3]


def test_anthropic_messages_and_errors() -> None:
    with ScriptedAnthropicServer(script=[("status", 529)]) as srv:
        assert srv.base_url == srv.root_url
        status, _, raw = call(srv, "POST", "/v1/messages", {**CHAT, "max_tokens": 100})
        assert status == 529 and json.loads(raw) == {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "scripted 529"},
        }
        body = json.loads(
            call(srv, "POST", "/v1/messages", {**CHAT, "max_tokens": 100, "system": "Be brief."})[2]
        )
        assert body["type"] == "message" and body["stop_reason"] == "end_turn"
        assert parse_trace(body["content"][0]["text"]).thesis
        assert body["usage"]["input_tokens"] == 5
        events = call(srv, "POST", "/v1/messages", {**CHAT, "max_tokens": 100, "stream": True})[
            2
        ].decode()
        assert events.count("event: content_block_delta") >= 1 and events.rstrip().endswith(
            'data: {"type": "message_stop"}'
        )


def test_256_concurrent_connections_are_served_in_one_latency() -> None:
    body = json.dumps(CHAT).encode()
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"

    async def one(port: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        writer.close()
        return status

    async def many(port: int) -> list[int]:
        return await asyncio.gather(*[one(port) for _ in range(256)])

    with ScriptedOpenAIServer(latency=0.5) as srv:
        start = time.perf_counter()
        statuses = asyncio.run(many(srv.port))
        elapsed = time.perf_counter() - start
    assert statuses == [200] * 256
    assert 0.5 <= elapsed < 2.5, elapsed  # served together, not one after another
    assert len(srv.requests) == 256


def test_keep_alive_serves_several_requests_on_one_connection(server: ScriptedOpenAIServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        for _ in range(3):
            conn.request(
                "POST",
                "/v1/chat/completions",
                body=json.dumps(CHAT),
                headers={"Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            assert resp.status == 200 and json.loads(resp.read())["choices"]
    finally:
        conn.close()
    assert len(server.requests) == 3


def test_command_line_serves_then_stops_by_itself() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hegelion_core.testing.openai_server",
            "--port",
            str(port),
            "--latency",
            "0.1",
            "--duration",
            "4",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"serving http://127.0.0.1:{port}/v1")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        start = time.perf_counter()
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=json.dumps(CHAT),
            headers={"Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        assert resp.status == 200 and time.perf_counter() - start >= 0.1
        conn.close()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_serve_runs_on_the_callers_loop_for_a_bounded_time() -> None:
    server = ScriptedOpenAIServer(latency=0.05)

    async def go() -> int:
        task = asyncio.create_task(server.serve(duration=2))
        for _ in range(200):  # bounded wait for the port
            if server.port:
                break
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        status = int((await reader.readline()).split()[1])
        writer.close()
        await task
        return status

    assert asyncio.run(go()) == 200
