"""Scripted OpenAI- and Anthropic-compatible HTTP servers for tests and benchmarks.

Teacher plugins must be tested against real HTTP (their SDKs are never mocked), and
the faults that matter (429 with ``Retry-After``, 5xx, a hung connection, a malformed
body, a stream cut mid-chunk) are exactly what a real provider will not produce on
demand. This server produces them from a script, answers everything else with a valid
dialectic trace, and records what it was sent::

    from hegelion_core.testing.scripted_server import ScriptedOpenAIServer

    with ScriptedOpenAIServer(script=[("status", 429, {"Retry-After": "1"})], latency=0.5) as srv:
        srv.base_url          # "http://127.0.0.1:PORT/v1"  (the OpenAI SDK's base_url)
        srv.enqueue(("hang",), ("ok",))
        srv.requests[-1].body["model"]

`ScriptedServer` is the server; its two subclasses differ only in ``base_url``, the one
their SDK takes: `ScriptedOpenAIServer` (``http://127.0.0.1:PORT/v1``) and
`ScriptedAnthropicServer` (``http://127.0.0.1:PORT``). Both serve both APIs.

It is one stdlib asyncio HTTP/1.1 server (keep-alive, chunked SSE) on 127.0.0.1 and
an ephemeral port, run on its own thread and event loop, so it serves hundreds of
concurrent connections with negligible overhead and never shares a loop with the
code under test. It stops, closing every connection (hung ones included), when the
``with`` block exits. Benchmarks can run it as a process instead::

    python -m hegelion_core.testing.scripted_server --port 8000 --latency 0.5

(``python -m hegelion_core.testing.openai_server``, its former name, still works.)

Routes: ``POST /v1/chat/completions`` (``stream`` true or false), ``GET /v1/models``
and ``POST /v1/messages`` (the Anthropic Messages API, streaming too).

Script actions, consumed one per completion request (``/v1/chat/completions`` or
``/v1/messages``); when the script is empty a request gets ``("ok",)``:

==================================  ================================================
``("ok",)``                         the reply function's text, after ``latency``
``("reply", text)``                 this text instead of the reply function's
``("delay", seconds)``              ``ok``, after ``seconds`` instead of ``latency``
``("status", code[, headers[, body]])``  an error status; the body defaults to the
                                    API's own error JSON for ``code``
``("hang",)``                       read the request, never answer (until stop)
``("malformed",)``                  200 with ``application/json`` that is not JSON
``("truncated_stream"[, "clean"])``  streams: some chunks, then the connection drops
                                    mid-chunk (``"clean"``: the body ends properly
                                    but with no finish reason and no ``[DONE]``);
                                    non-streaming requests get half a JSON body
``("stream_error"[, type])``       streams: some chunks, then an error event (Anthropic
                                    ``event: error``; OpenAI a ``data: {"error": ...}``
                                    chunk) of ``type`` (default ``overloaded_error``)
``("close",)``                      close the connection without answering
==================================  ================================================

Credentials are never stored: ``Authorization`` and ``x-api-key`` are recorded as
``"<redacted>"`` with a SHA-256 of the value in ``credential_sha256``, so a test can
check which key was sent (`RecordedRequest.sent_bearer`) without ever holding it.
``api_key="..."`` makes the server answer 401 to any completion request that does not
carry that key (no script action is used); ``echo_credentials=True`` makes every ``ok``
answer end with the ``Authorization`` header it got, as a misbehaving proxy might.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import re
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

__all__ = [
    "Action",
    "RecordedRequest",
    "ScriptedAnthropicServer",
    "ScriptedOpenAIServer",
    "ScriptedServer",
    "default_reply",
    "example_from_schema",
]

Action = tuple[Any, ...]
ReplyFn = Callable[["RecordedRequest"], str]

_ACTIONS = {
    "ok",
    "reply",
    "delay",
    "status",
    "hang",
    "malformed",
    "truncated_stream",
    "stream_error",
    "close",
}
_CREDENTIAL_HEADERS = ("authorization", "x-api-key")
_COMPLETION_PATHS = ("/v1/chat/completions", "/v1/messages")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    529: "Overloaded",
}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}


def _check_action(action: Action) -> Action:
    if not isinstance(action, tuple) or not action or action[0] not in _ACTIONS:
        raise ValueError(f"unknown script action {action!r}; known: {sorted(_ACTIONS)}")
    if action[0] == "status" and not (len(action) >= 2 and isinstance(action[1], int)):
        raise ValueError(f"{action!r}: expected ('status', code[, headers[, body]])")
    if action[0] in ("reply", "delay") and len(action) != 2:
        raise ValueError(f"{action!r}: expected ({action[0]!r}, value)")
    return action


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received, with credentials replaced by their hash."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    action: Action = ("ok",)
    credential_sha256: dict[str, str] = field(default_factory=dict)
    received_at: float = 0.0

    @property
    def api(self) -> str:
        """``"anthropic"`` for ``/v1/messages``, else ``"openai"``."""
        return "anthropic" if self.path.startswith("/v1/messages") else "openai"

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("stream"))

    def sent_credential(self, header: str, value: str) -> bool:
        """True when header ``header`` carried exactly ``value`` (compared by hash)."""
        digest = self.credential_sha256.get(header.lower())
        return digest is not None and digest == hashlib.sha256(value.encode()).hexdigest()

    def sent_bearer(self, key: str) -> bool:
        """True when ``Authorization`` was ``Bearer <key>``."""
        return self.sent_credential("authorization", f"Bearer {key}")


# ----- replies ---------------------------------------------------------------------


def _last_user_text(body: Any) -> str:
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):  # content parts / Anthropic blocks
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _requested_schema(body: Any) -> dict[str, Any] | None:
    """The JSON schema a request asks its answer to follow, if it asks for one."""
    if not isinstance(body, dict):
        return None
    fmt = body.get("response_format")
    if isinstance(fmt, dict):
        if fmt.get("type") == "json_schema":
            return dict((fmt.get("json_schema") or {}).get("schema") or {"type": "object"})
        if fmt.get("type") == "json_object":
            return dict(fmt.get("schema") or {"type": "object"})
    tool = _forced_tool(body)
    if tool is not None:
        return dict(tool.get("input_schema") or {"type": "object"})
    return None


def _forced_tool(body: Any) -> dict[str, Any] | None:
    choice = body.get("tool_choice") if isinstance(body, dict) else None
    if isinstance(choice, dict) and choice.get("type") == "tool":
        for tool in body.get("tools") or []:
            if isinstance(tool, dict) and tool.get("name") == choice.get("name"):
                return tool
    return None


def example_from_schema(
    schema: Mapping[str, Any], defs: Mapping[str, Any] | None = None, _depth: int = 0
) -> Any:
    """A small value valid for ``schema`` (the subset pydantic emits), for JSON replies."""
    defs = defs if defs is not None else schema.get("$defs", schema.get("definitions", {}))
    if _depth > 20:
        return None
    if "$ref" in schema:
        target = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
        return example_from_schema(target, defs, _depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key, []) if o.get("type") != "null"]
        if options:
            return example_from_schema(options[0], defs, _depth + 1)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: example_from_schema(sub, defs, _depth + 1) for name, sub in props.items()}
    if kind == "array":
        return [example_from_schema(schema.get("items", {"type": "string"}), defs, _depth + 1)]
    if kind in ("number", "integer"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        value = (low + high) / 2 if low is not None and high is not None else (low or high or 1)
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "example text"


def default_reply(request: RecordedRequest) -> str:
    """A valid trace in Hegelion's canonical format about the last user turn, or a JSON
    value that fits the schema when the request asks for structured output."""
    schema = _requested_schema(request.body)
    if schema is not None:
        return json.dumps(example_from_schema(schema))
    from hegelion_core.records import DialecticTrace, render_output

    question = " ".join(_last_user_text(request.body).split())[:200] or "the question"
    return render_output(
        DialecticTrace(
            thesis=f"The direct answer to {question!r} is the one most people give first.",
            antithesis="CONTRADICTION: Context\nEVIDENCE: The direct answer ignores the cases "
            "where its assumptions fail.",
            synthesis="Keep the direct answer where its assumptions hold, and say where they do not.",
        )
    )


_WORD = re.compile(r"\S+\s*")


def _cut_words(text: str, max_tokens: int | None) -> tuple[str, bool]:
    """``text`` cut to ``max_tokens`` words (one word, one token); True when cut."""
    if not max_tokens or max_tokens <= 0:
        return text, False
    words = _WORD.findall(text.lstrip())
    if len(words) <= max_tokens:
        return text, False
    return "".join(words[:max_tokens]).rstrip(), True


def _count_words(body: Any) -> int:
    if not isinstance(body, dict):
        return 1
    total = len(str(body.get("system") or "").split())
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            total += len(str(message.get("content") or "").split())
    return max(total, 1)


# ----- the server ------------------------------------------------------------------


class ScriptedServer:
    """An OpenAI- and Anthropic-compatible server that follows a fault script. Use a
    subclass, whose ``base_url`` is the one its SDK takes (`ScriptedOpenAIServer`,
    `ScriptedAnthropicServer`); this class has only ``root_url``.

    ``reply(request) -> str`` makes the text of every ``ok`` answer (default:
    `default_reply`). ``latency`` is waited before every completion answer, so a
    benchmark sees a provider's round trip without its variance. Replies longer than
    the request's ``max_tokens`` or ``max_completion_tokens`` (counted in words) are cut
    and finish with ``length``/``max_tokens``, as a real model's would. ``response_formats`` lists the
    ``response_format`` types accepted; others get the 400 a server without that
    feature sends, so fallbacks can be tested.
    """

    def __init__(
        self,
        script: Iterable[Action] = (),
        *,
        reply: ReplyFn | None = None,
        latency: float = 0.0,
        model: str = "scripted-model",
        host: str = "127.0.0.1",
        port: int = 0,
        response_formats: Iterable[str] = ("text", "json_object", "json_schema"),
        stream_chunks: int = 8,
        api_key: str | None = None,
        echo_credentials: bool = False,
    ) -> None:
        if host not in _LOOPBACK:
            raise ValueError(f"the scripted server binds loopback only, not {host!r}")
        self.reply: ReplyFn = reply or default_reply
        self.latency = float(latency)
        self.model = model
        self.host = host
        self.port = port
        self.response_formats = frozenset(response_formats)
        self.stream_chunks = max(1, stream_chunks)
        self.api_key = api_key
        self.echo_credentials = echo_credentials
        self._script: deque[Action] = deque(_check_action(a) for a in script)
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._stopping: asyncio.Event | None = None

    # ----- public API ------------------------------------------------------------

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT``: where both APIs' routes start."""
        if not self.port:
            raise RuntimeError("the server is not running; use it as a context manager")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The ``base_url`` an SDK takes: a subclass's (the APIs' SDKs differ)."""
        raise NotImplementedError(
            "use ScriptedOpenAIServer or ScriptedAnthropicServer, or root_url"
        )

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def completion_requests(self) -> list[RecordedRequest]:
        """Requests to ``/v1/chat/completions`` and ``/v1/messages`` only."""
        return [r for r in self.requests if r.path.startswith(_COMPLETION_PATHS)]

    def enqueue(self, *actions: Action) -> None:
        """Append actions to the script; each is used by one completion request."""
        checked = [_check_action(a) for a in actions]
        with self._lock:
            self._script.extend(checked)

    def reset(self) -> None:
        """Forget recorded requests and any unused script actions."""
        with self._lock:
            self._script.clear()
            self._requests.clear()

    @property
    def pending(self) -> int:
        """Script actions not used yet."""
        with self._lock:
            return len(self._script)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start serving on a background thread; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name="scripted-server", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), loop).result(timeout=10)

    def stop(self) -> None:
        """Close every connection (hung ones too) and the listening socket."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
            self._loop = self._thread = None

    async def serve(self, duration: float | None = None) -> None:
        """Serve on the running loop until cancelled or ``duration`` seconds pass."""
        await self._start()
        try:
            if duration is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(duration)
        finally:
            await self._stop()

    # ----- lifecycle -------------------------------------------------------------

    async def _start(self) -> None:
        self._stopping = asyncio.Event()
        self._server = await asyncio.start_server(
            self._handle,
            self.host,
            self.port,
            backlog=4096,
            limit=1 << 20,
            reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._server is not None:
            self._server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    # ----- HTTP/1.1 --------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head[:-4].decode("latin-1").split("\r\n")
                try:
                    method, target, version = lines[0].split(" ", 2)
                except ValueError:
                    return
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                try:
                    raw = await self._read_body(reader, headers)
                except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                    return
                keep_alive = (
                    version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
                )
                if not await self._dispatch(method, target, headers, raw, writer, keep_alive):
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if "content-length" in headers:
            return await reader.readexactly(int(headers["content-length"]))
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            for _ in range(1 << 20):  # bounded: a chunked body of at most ~1M chunks
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    return b"".join(parts)
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            raise ValueError("chunked body too long")
        return b""

    def _record(
        self, method: str, path: str, headers: dict[str, str], body: Any, completion: bool
    ) -> RecordedRequest:
        shown = dict(headers)
        digests = {}
        for name in _CREDENTIAL_HEADERS:
            if name in shown:
                digests[name] = hashlib.sha256(shown[name].encode()).hexdigest()
                shown[name] = "<redacted>"
        with self._lock:
            action: Action = ("ok",)
            if completion and self._script:
                action = self._script.popleft()
            request = RecordedRequest(method, path, shown, body, action, digests, time.time())
            self._requests.append(request)
        return request

    async def _dispatch(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        raw: bytes,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
    ) -> bool:
        path = target.split("?", 1)[0]
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        completion = path in _COMPLETION_PATHS
        refused = (
            completion
            and self.api_key is not None
            and self.api_key
            not in (
                headers.get("authorization", "").removeprefix("Bearer "),
                headers.get("x-api-key"),
            )
        )
        request = self._record(method, path, headers, body, completion and not refused)
        if refused:
            return await self._send_json(
                writer,
                401,
                _error_body(request.api, 401, "Incorrect API key provided"),
                keep_alive=keep_alive,
            )

        if path == "/v1/models" and method == "GET":
            models = {
                "object": "list",
                "data": [
                    {"id": self.model, "object": "model", "created": 0, "owned_by": "hegelion"}
                ],
            }
            return await self._send_json(writer, 200, models, keep_alive=keep_alive)
        if not completion:
            return await self._send_json(
                writer,
                404,
                _error_body(request.api, 404, f"no route {path}"),
                keep_alive=keep_alive,
            )
        if method != "POST":
            return await self._send_json(
                writer, 405, _error_body(request.api, 405, "use POST"), keep_alive=keep_alive
            )

        kind, *args = request.action
        if kind == "hang":
            assert self._stopping is not None
            await self._stopping.wait()
            return False
        if kind == "close":
            return False
        await asyncio.sleep(float(args[0]) if kind == "delay" else self.latency)
        if kind == "status":
            code = int(args[0])
            extra = dict(args[1]) if len(args) > 1 and args[1] else {}
            error = args[2] if len(args) > 2 else _error_body(request.api, code, f"scripted {code}")
            return await self._send_json(writer, code, error, extra, keep_alive=keep_alive)
        if kind == "malformed":
            bad = b'{"id": "chatcmpl-malformed", "choices": [{"message": {"content": "unterminated'
            return await self._send(writer, 200, "application/json", bad, keep_alive=keep_alive)
        if not isinstance(body, dict):
            return await self._send_json(
                writer,
                400,
                _error_body(request.api, 400, "body is not JSON"),
                keep_alive=keep_alive,
            )

        fmt = body.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") not in self.response_formats:
            message = f"response_format type {fmt.get('type')!r} is not supported by this server"
            error = _error_body("openai", 400, message)
            error["error"]["param"] = "response_format"
            return await self._send_json(writer, 400, error, keep_alive=keep_alive)

        text = str(args[0]) if kind == "reply" else self.reply(request)
        if self.echo_credentials:
            text += f"\n\n(debug: Authorization: {headers.get('authorization', '')})"
        text, cut = _cut_words(text, body.get("max_tokens") or body.get("max_completion_tokens"))
        usage = (_count_words(body), max(len(text.split()), 1))
        model = str(body.get("model") or self.model)
        truncated = kind == "truncated_stream"
        clean_cut = truncated and bool(args) and args[0] == "clean"
        if request.api == "anthropic":
            events, payload = _anthropic_answer(body, text, cut, usage, model)
        else:
            events, payload = _openai_answer(body, text, cut, usage, model, self.stream_chunks)
        if kind == "stream_error" and body.get("stream"):
            error_type = str(args[0]) if args else "overloaded_error"
            inner = {"type": error_type, "message": f"scripted {error_type}"}
            head = events[: max(1, len(events) // 2)]
            tail = (
                _sse({"type": "error", "error": inner}, "error")
                if request.api == "anthropic"
                else _sse({"error": inner})
            )
            return await self._send_stream(writer, head + [tail], False, False, keep_alive)
        if not body.get("stream"):
            data = json.dumps(payload).encode()
            if truncated:  # promise the whole body, send half, hang up
                writer.write(
                    _head(200, "application/json", {"Content-Length": str(len(data))}, keep_alive)
                    + data[: len(data) // 2]
                )
                await writer.drain()
                return False
            return await self._send(writer, 200, "application/json", data, keep_alive=keep_alive)
        return await self._send_stream(writer, events, truncated, clean_cut, keep_alive)

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        content_type: str,
        data: bytes,
        extra: Mapping[str, str] | None = None,
        *,
        keep_alive: bool,
    ) -> bool:
        headers = {"Content-Length": str(len(data)), **(extra or {})}
        writer.write(_head(status, content_type, headers, keep_alive) + data)
        await writer.drain()
        return keep_alive

    async def _send_json(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        payload: Any,
        extra: Mapping[str, str] | None = None,
        *,
        keep_alive: bool,
    ) -> bool:
        data = (
            payload
            if isinstance(payload, bytes)
            else (payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
        )
        return await self._send(
            writer, status, "application/json", data, extra, keep_alive=keep_alive
        )

    async def _send_stream(
        self,
        writer: asyncio.StreamWriter,
        events: list[bytes],
        truncated: bool,
        clean_cut: bool,
        keep_alive: bool,
    ) -> bool:
        writer.write(
            _head(
                200,
                "text/event-stream",
                {"Transfer-Encoding": "chunked", "Cache-Control": "no-cache"},
                keep_alive,
            )
        )
        if truncated:
            events = events[: max(1, len(events) // 2)]
        for event in events:
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
        if truncated and not clean_cut:  # announce a chunk, send half of it, hang up
            partial = b'data: {"id": "cut", "choices": [{"index": 0, "delta": {"content": "and th'
            writer.write(b"%x\r\n%s" % (len(partial) * 2, partial))
            await writer.drain()
            return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return keep_alive and not truncated


def _head(status: int, content_type: str, headers: Mapping[str, str], keep_alive: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
        f"Content-Type: {content_type}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        f"x-request-id: req_{uuid.uuid4().hex[:12]}",
    ]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _error_body(api: str, status: int, message: str) -> dict[str, Any]:
    if api == "anthropic":
        kind = _ANTHROPIC_ERROR_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind = _OPENAI_ERROR_TYPES.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _sse(data: Any, event: str | None = None) -> bytes:
    prefix = f"event: {event}\n" if event else ""
    body = data if isinstance(data, str) else json.dumps(data)
    return f"{prefix}data: {body}\n\n".encode()


def _pieces(text: str, n: int) -> list[str]:
    words = _WORD.findall(text) or [text]
    size = max(1, -(-len(words) // n))
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


def _openai_answer(
    body: dict[str, Any], text: str, cut: bool, usage: tuple[int, int], model: str, chunks: int
) -> tuple[list[bytes], dict[str, Any]]:
    cid, created = f"chatcmpl-{uuid.uuid4().hex[:16]}", int(time.time())
    finish = "length" if cut else "stop"
    usage_obj = {
        "prompt_tokens": usage[0],
        "completion_tokens": usage[1],
        "total_tokens": usage[0] + usage[1],
    }
    payload = {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": usage_obj,
    }
    if not body.get("stream"):
        return [], payload

    def chunk(delta: dict[str, Any], reason: str | None) -> bytes:
        return _sse(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
                ],
            }
        )

    events = [chunk({"role": "assistant", "content": ""}, None)]
    events += [chunk({"content": piece}, None) for piece in _pieces(text, chunks)]
    events.append(chunk({}, finish))
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append(
            _sse(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage_obj,
                }
            )
        )
    events.append(_sse("[DONE]"))
    return events, payload


def _anthropic_answer(
    body: dict[str, Any], text: str, cut: bool, usage: tuple[int, int], model: str
) -> tuple[list[bytes], dict[str, Any]]:
    mid = f"msg_{uuid.uuid4().hex[:20]}"
    tool = _forced_tool(body)
    block: dict[str, Any] = {"type": "text", "text": text}
    stop = "max_tokens" if cut else "end_turn"
    if tool is not None and not cut:
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, dict):
            block = {
                "type": "tool_use",
                "id": f"toolu_{uuid.uuid4().hex[:20]}",
                "name": tool["name"],
                "input": value,
            }
            stop = "tool_use"
    payload = {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [block],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
    }
    if not body.get("stream"):
        return [], payload
    start = dict(
        payload, content=[], stop_reason=None, usage={"input_tokens": usage[0], "output_tokens": 1}
    )
    events = [_sse({"type": "message_start", "message": start}, "message_start")]
    if block["type"] == "text":
        events.append(
            _sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            )
        )
        for piece in _pieces(text, 8):
            events.append(
                _sse(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                    "content_block_delta",
                )
            )
    else:
        events.append(
            _sse(
                {"type": "content_block_start", "index": 0, "content_block": dict(block, input={})},
                "content_block_start",
            )
        )
        events.append(
            _sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {
                        "type": "input_json_delta",
                        "partial_json": json.dumps(block["input"]),
                    },
                },
                "content_block_delta",
            )
        )
    events.append(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    events.append(
        _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": usage[1]},
            },
            "message_delta",
        )
    )
    events.append(_sse({"type": "message_stop"}, "message_stop"))
    return events, payload


class ScriptedOpenAIServer(ScriptedServer):
    """The scripted server for the OpenAI SDK: ``base_url`` is ``http://127.0.0.1:PORT/v1``."""

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"


class ScriptedAnthropicServer(ScriptedServer):
    """The scripted server for the Anthropic SDK: ``base_url`` is ``http://127.0.0.1:PORT``
    (the SDK adds ``/v1/messages`` itself)."""

    @property
    def base_url(self) -> str:
        return self.root_url


# ----- command line ----------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted (or ``--duration`` seconds), for benchmarks."""
    parser = argparse.ArgumentParser(
        prog="python -m hegelion_core.testing.scripted_server",
        description="A scripted OpenAI-/Anthropic-compatible server on loopback, for benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1", choices=_LOOPBACK)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--model", default="scripted-model")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    args = parser.parse_args(argv)
    server = ScriptedOpenAIServer(
        latency=args.latency, model=args.model, host=args.host, port=args.port
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await server._start()
        print(f"serving {server.base_url} (latency {args.latency:g}s)", flush=True)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.duration)
        finally:
            await server._stop()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
