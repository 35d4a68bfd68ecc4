"""A minimal OpenAI-compatible server that answers every chat completion after a fixed
latency, and a raw load client that measures how many requests per second it serves.

    python benchmarks/latency_server.py serve --port 8000 --latency 0.5
    python benchmarks/latency_server.py ceiling [--latency 0.5] [--concurrency 256] [--requests 4096]

`generate_throughput.py` runs ``serve`` as its own process. The server must never be
what limits a generator benchmark, so it does as little as a server can: one
``asyncio.Protocol`` per connection, a precomputed response (a valid Hegelion trace
in the canonical format), a ``call_later`` timer per request, no task, no JSON
parsing. ``ceiling`` starts one and drives it with keep-alive connections from a
client that is just as lean (prebuilt request bytes), so the figure printed is what
this server and loopback TCP can do on this machine, with no SDK in the way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time

TRACE = """<thought>
THESIS:
The direct answer is the one most people give first, and it is usually right.

ANTITHESIS:
CONTRADICTION: Context
EVIDENCE: The direct answer ignores the cases where its assumptions fail.

SYNTHESIS:
Keep the direct answer where its assumptions hold, and say where they do not.
RESEARCH_PROPOSAL: List the assumptions and test each against counterexamples.
TESTABLE_PREDICTION: Where an assumption fails, the direct answer gives the wrong result.
</thought>
Keep the direct answer where its assumptions hold, and say where they do not."""


def _completion(model: str) -> bytes:
    body = json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": TRACE},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 120, "completion_tokens": 90, "total_tokens": 210},
        }
    ).encode()
    return _response(body)


def _response(body: bytes, status: str = "200 OK") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: keep-alive\r\n\r\n"
    ).encode() + body


class _Conn(asyncio.Protocol):
    """One keep-alive connection; requests are answered in order, each after ``latency``."""

    def __init__(self, server: LatencyServer) -> None:
        self.server = server
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            if len(self.buf) < end + 4 + length:
                return
            del self.buf[: end + 4 + length]
            server = self.server
            if head.startswith(b"post") and b"/chat/completions" in head[:64]:
                server.served += 1
                server.loop.call_later(server.latency, self._send, server.answer)
            elif head.startswith(b"get") and b"/models" in head[:64]:
                self._send(server.models)
            else:
                self._send(_response(b'{"error": {"message": "no such route"}}', "404 Not Found"))

    def _send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


class LatencyServer:
    def __init__(self, latency: float, model: str = "bench") -> None:
        self.latency = latency
        self.answer = _completion(model)
        self.models = _response(
            json.dumps(
                {
                    "object": "list",
                    "data": [{"id": model, "object": "model", "created": 0, "owned_by": "bench"}],
                }
            ).encode()
        )
        self.served = 0
        self.loop = asyncio.get_event_loop_policy().get_event_loop()

    async def serve(self, port: int, ready: asyncio.Event | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        server = await self.loop.create_server(
            lambda: _Conn(self), "127.0.0.1", port, backlog=4096, reuse_address=True
        )
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(sig, stop.set)
        print(f"serving http://127.0.0.1:{port}/v1 (latency {self.latency:g}s)", flush=True)
        async with server:
            await stop.wait()
        print(json.dumps({"served": self.served}), flush=True)


# ----- the raw load client ----------------------------------------------------------------


class _Load(asyncio.Protocol):
    """Sends a prebuilt request, waits for the whole response, repeats."""

    def __init__(
        self, request: bytes, budget: list[int], done: asyncio.Future[None], counts: list[int]
    ) -> None:
        self.request, self.budget, self.done, self.counts = request, budget, done, counts
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._next()

    def _next(self) -> None:
        if self.budget[0] <= 0:
            self.transport.close()  # type: ignore[union-attr]
            return
        self.budget[0] -= 1
        self.transport.write(self.request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        at = head.find(b"content-length:")
        length = int(
            head[at + 15 : head.find(b"\r\n", at) if head.find(b"\r\n", at) >= 0 else len(head)]
        )
        if len(self.buf) < end + 4 + length:
            return
        del self.buf[: end + 4 + length]
        self.counts[0] += 1
        if self.counts[0] == self.counts[1] and not self.done.done():
            self.done.set_result(None)
        self._next()


async def load(port: int, concurrency: int, requests: int) -> float:
    """Seconds for ``requests`` completions with ``concurrency`` keep-alive connections."""
    body = json.dumps(
        {"model": "bench", "messages": [{"role": "user", "content": "Is this a good idea?"}]}
    ).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    budget, counts = [requests], [0, requests]
    start = time.perf_counter()
    conns = [
        await loop.create_connection(
            lambda: _Load(request, budget, done, counts), "127.0.0.1", port
        )
        for _ in range(concurrency)
    ]
    await done
    elapsed = time.perf_counter() - start
    for transport, _ in conns:
        transport.close()
    return elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(latency: float) -> tuple[subprocess.Popen[bytes], int]:
    """This server as its own process; returns it and its port once it accepts."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            os.path.abspath(__file__),
            "serve",
            "--port",
            str(port),
            "--latency",
            str(latency),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the latency server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--latency", type=float, default=0.5)
    ceiling = sub.add_parser("ceiling")
    ceiling.add_argument("--latency", type=float, default=0.5)
    ceiling.add_argument("--concurrency", type=int, default=256)
    ceiling.add_argument("--requests", type=int, default=4096)
    args = parser.parse_args()
    if args.cmd == "serve":
        asyncio.run(LatencyServer(args.latency).serve(args.port))
        return
    for latency in (args.latency, 0.0):
        proc, port = start(latency)
        try:
            seconds = asyncio.run(load(port, args.concurrency, args.requests))
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait()
        rate = args.requests / seconds
        limit = (
            f", {rate / (args.concurrency / latency):.1%} of the {args.concurrency / latency:.0f}/s limit"
            if latency
            else ""
        )
        print(
            f"latency {latency:g}s, {args.concurrency} in flight, raw client: {args.requests} requests in "
            f"{seconds:.2f}s = {rate:,.0f}/s{limit}"
        )


if __name__ == "__main__":
    main()
