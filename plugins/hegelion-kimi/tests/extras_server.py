"""Replies the shared `hegelion_core.testing.openai_server` cannot script yet.

That server answers with text only. Kimi's thinking models also send
``reasoning_content``, and a hostile or confused endpoint can send ``tool_calls``;
both need a real HTTP answer to test. This server gives exactly those, streamed or
not, on 127.0.0.1, and records request bodies. Everything else (faults, auth
checks, plain replies) uses the shared server.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    text: str = ""
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = "stop"


@dataclass
class ExtrasServer:
    answer: Answer
    base_url: str = ""
    bodies: list[Any] = field(default_factory=list)


@contextmanager
def extras_server(answer: Answer) -> Iterator[ExtrasServer]:
    """Serve ``answer`` to every chat completion until the block exits."""
    state = ExtrasServer(answer)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.loads(raw or b"null")
            with lock:
                state.bodies.append(body)
            if body.get("stream"):
                self._stream(body)
            else:
                message: dict[str, Any] = {"role": "assistant", "content": answer.text}
                if answer.reasoning is not None:
                    message["reasoning_content"] = answer.reasoning
                if answer.tool_calls:
                    message["tool_calls"] = answer.tool_calls
                self._send(
                    json.dumps(
                        {
                            "id": "chatcmpl-extras",
                            "object": "chat.completion",
                            "created": int(time.time()),
                            "model": body.get("model", "m"),
                            "choices": [
                                {
                                    "index": 0,
                                    "message": message,
                                    "finish_reason": answer.finish_reason,
                                }
                            ],
                            "usage": {
                                "prompt_tokens": 5,
                                "completion_tokens": 7,
                                "total_tokens": 12,
                            },
                        }
                    ).encode(),
                    "application/json",
                )

        def _send(self, data: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, body: dict[str, Any]) -> None:
            def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
                return (
                    b"data: "
                    + json.dumps(
                        {
                            "id": "chatcmpl-extras",
                            "object": "chat.completion.chunk",
                            "created": int(time.time()),
                            "model": body.get("model", "m"),
                            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                        }
                    ).encode()
                    + b"\n\n"
                )

            events = [event({"role": "assistant", "content": ""})]
            if answer.reasoning is not None:
                events.append(event({"reasoning_content": answer.reasoning}))
            if answer.text:
                events.append(event({"content": answer.text}))
            for i, call in enumerate(answer.tool_calls):
                events.append(event({"tool_calls": [{"index": i, **call}]}))
            events.append(event({}, answer.finish_reason))
            events.append(b"data: [DONE]\n\n")
            self._send(b"".join(events), "text/event-stream")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
