"""A real headless Chromium, driven over the DevTools protocol, for the HTML the tests check.

`load_page` opens a local file and returns what a person's browser would show and
complain about: the console errors and uncaught exceptions, every request the page made,
values read from the rendered DOM, and a screenshot. It talks to Chromium through
``--remote-debugging-pipe`` (NUL-separated JSON on file descriptors 3 and 4), so it needs
no websocket client and no port.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INSTALL = "apt-get install -y chromium"


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageLoad:
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    values: Any = None  # the `evaluate` expression's result
    screenshot: bytes = b""


class _Pipe:
    """One CDP connection: requests by id, the events seen meanwhile kept in order."""

    def __init__(self, proc: subprocess.Popen[bytes], send_fd: int, recv_fd: int) -> None:
        self.proc, self.send_fd, self.recv_fd = proc, send_fd, recv_fd
        self.buffer = b""
        self.events: list[dict[str, Any]] = []
        self.next_id = 0

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.recv_fd], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.recv_fd, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium closed the pipe (exit status {self.proc.poll()})")
            self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(message)

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        self.next_id += 1
        request: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            request["sessionId"] = session
        os.write(self.send_fd, json.dumps(request).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        seen = next((e for e in self.events if e.get("method") == method), None)
        deadline = time.monotonic() + timeout
        while seen is None:
            message = self._read_message(deadline)
            self.events.append(message)
            seen = message if message.get("method") == method else None
        return seen


def _errors(events: list[dict[str, Any]]) -> list[str]:
    """What the DevTools console would show in red."""
    out = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            out.append(details.get("exception", {}).get("description") or details.get("text", ""))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append(
                " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            )
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            out.append(f"{params['entry'].get('text')} {params['entry'].get('url', '')}".strip())
    return out


def _high_fd(fd: int) -> int:
    """``fd`` moved to 10 or above, so putting the child's ends on 3 and 4 clobbers neither."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


def load_page(
    path: Path, evaluate: str = "null", *, width: int = 1200, timeout: float = 60.0
) -> PageLoad:
    """Open ``path`` in headless Chromium; return its errors, requests, ``evaluate``'s value
    (a JavaScript expression run once the page loaded) and a full-page PNG."""
    chromium = chromium_path()
    if chromium is None:
        raise FileNotFoundError(f"chromium is not installed: {INSTALL}")
    to_child_r, to_child_w = (_high_fd(fd) for fd in os.pipe())
    from_child_r, from_child_w = (_high_fd(fd) for fd in os.pipe())

    def child_fds() -> None:  # runs in the child before exec: Chromium reads 3, writes 4
        os.dup2(to_child_r, 3)
        os.dup2(from_child_w, 4)

    with tempfile.TemporaryDirectory(prefix="hegelion-chromium-") as profile:
        proc = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                f"--window-size={width},900",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,
            preexec_fn=child_fds,  # fds 3 and 4 must stay open in the child
        )
        os.close(to_child_r)
        os.close(from_child_w)
        pipe = _Pipe(proc, to_child_w, from_child_r)
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"}, timeout=timeout)
            session = pipe.call(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
            )["sessionId"]
            for domain in ("Runtime", "Log", "Page", "Network"):
                pipe.call(f"{domain}.enable", session=session)
            pipe.call("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
            pipe.wait_for("Page.loadEventFired", timeout)
            value = pipe.call(
                "Runtime.evaluate", {"expression": evaluate, "returnByValue": True}, session=session
            )
            size = pipe.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
            shot = pipe.call(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1},
                },
                session=session,
            )
            pipe.call("Runtime.evaluate", {"expression": "null"}, session=session)  # late events
            page = path.resolve().as_uri()
            return PageLoad(
                errors=_errors(pipe.events),
                requests=[
                    e["params"]["request"]["url"]
                    for e in pipe.events
                    if e.get("method") == "Network.requestWillBeSent"
                    and e["params"]["request"]["url"] != page
                ],
                values=value["result"].get("value"),
                screenshot=base64.b64decode(shot["data"]),
            )
        finally:
            try:
                pipe.call("Browser.close", timeout=5)
            except (OSError, RuntimeError, TimeoutError):
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(to_child_w)
            os.close(from_child_r)
