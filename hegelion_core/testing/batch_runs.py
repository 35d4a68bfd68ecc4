"""Driving ``hegelion generate --batch`` in tests: answers that pass the quality checks,
a batch service that holds still at chosen moments (so a ``kill -9`` lands exactly
there), and the command run in a child process.

    srv = HoldingBatchServer(state_dir=..., reply=varied_reply)
    srv.hold_job = 2            # the second job created: the service holds its answer
    proc = start_cli([...])     # hegelion generate ... --batch
    srv.held.wait(30); kill(proc)   # the job exists, the client never heard its id
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hegelion_core.testing.batch_server import BatchServer
from hegelion_core.testing.scripted_server import RecordedRequest, default_reply

_WORDS = (
    "river lantern copper meadow signal harbor quartz ember willow canyon orbit velvet "
    "thunder pebble falcon marble cedar prism tundra violet glacier saffron beacon ripple "
    "summit cobalt nectar basalt comet meadowlark tangent fossil harvest lagoon ivory "
    "zephyr granite orchid vector plume aurora delta mosaic kernel lumen spiral fjord "
    "amber cipher dune echo fable garnet helix iris jasper kelp lotus mirth nova onyx "
    "pulse quill raven sable topaz umber vortex wren yarrow zenith acorn birch clover"
).split()


def varied_reply(request: RecordedRequest) -> str:
    """An answer of distinct words seeded by the request itself: deterministic (a live
    and a batch run get the same answer to the same request), different for every
    phase and critic (so a council's merged critiques do not repeat), and JSON where a
    schema is asked for (the judge)."""
    body = request.body if isinstance(request.body, dict) else {}
    plain = default_reply(request)
    if plain.lstrip().startswith("{"):
        return plain  # a JSON value fitting the requested schema
    seed = hashlib.sha256(
        json.dumps([body.get("system"), body.get("messages")], sort_keys=True).encode()
    ).digest()
    rng = random.Random(seed)
    words = rng.sample(_WORDS, 24)
    first, second = " ".join(words[:12]), " ".join(words[12:])
    system = json.dumps(body.get("system") or body.get("messages", [{}])[0])
    if "ANTITHESIS step" in system:
        return f"CONTRADICTION: {first}.\nEVIDENCE: {second}."
    return f"{first.capitalize()}. {second}."


class HoldingBatchServer(BatchServer):
    """A `BatchServer` that holds still, once, at a moment a test names:

    * ``hold_job = n``: the n-th job created (either API) is created and logged, then
      the service waits ``hold_s`` before answering: a client killed meanwhile never
      learns the job's id;
    * ``hold_results = True``: the first download of a job's results (OpenAI's file
      content, Anthropic's results) waits ``hold_s`` first.

    ``held`` is set when it holds; ``release`` (set by `kill_when_held` once the client
    is dead) ends the hold early."""

    def __init__(self, *args: Any, hold_s: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hold_job: int | None = None
        self.hold_results = False
        self.hold_s = hold_s
        self.held = threading.Event()
        self.release = threading.Event()
        self._created = 0

    def _new_job(self, api: str, batch_id: str, requests: list[dict[str, Any]]) -> dict[str, Any]:
        job = super()._new_job(api, batch_id, requests)
        self._created += 1
        if self.hold_job is not None and self._created == self.hold_job:
            self.hold_job = None
            self.held.set()
            self.release.wait(self.hold_s)  # blocks the service: the client waits for its answer
            self.release.clear()
        return job

    async def _dispatch(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        raw: bytes,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
    ) -> bool:
        path = target.partition("?")[0]
        if self.hold_results and method == "GET" and path.endswith(("/content", "/results")):
            self.hold_results = False
            self.held.set()
            await asyncio.to_thread(self.release.wait, self.hold_s)
            self.release.clear()
        return await super()._dispatch(method, target, headers, raw, writer, keep_alive)


def thesis_custom_ids(
    questions: Sequence[str], attempt: int, max_tokens: Sequence[int | None] = (None,)
) -> frozenset[str]:
    """The custom_ids ``generate --batch`` gives the thesis requests of ``questions`` (the
    first request each prompt sends) at ``attempt``, to script faults on exactly them."""
    from hegelion_core.generation.batch.replay import custom_id, request_key
    from hegelion_core.generation.dialectic import THESIS_SYSTEM
    from hegelion_core.records import Prompt

    return frozenset(
        custom_id(
            request_key(
                Prompt(text=q).id,
                0,
                {
                    "messages": [
                        {"role": "system", "content": THESIS_SYSTEM},
                        {"role": "user", "content": q},
                    ],
                    "max_tokens": budget,
                    "temperature": None,
                    "json_schema": None,
                },
            ),
            attempt,
        )
        for q in questions
        for budget in max_tokens
    )


def hegelion_argv(*args: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-m", "hegelion_core", *map(str, args)]


def run_cli(
    args: Sequence[str | os.PathLike[str]], env: Mapping[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``hegelion ARGS`` in a child process, its output captured."""
    return subprocess.run(
        hegelion_argv(*args),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(
    args: Sequence[str | os.PathLike[str]], env: Mapping[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """``hegelion ARGS`` started in a child process, its output in ``log``."""
    out = log.open("wb")
    try:
        return subprocess.Popen(
            hegelion_argv(*args), env={**os.environ, **env}, stdout=out, stderr=out
        )
    finally:
        out.close()


def kill_when_held(
    server: HoldingBatchServer, proc: subprocess.Popen[bytes], timeout: float = 120
) -> None:
    """``kill -9`` the child once the service holds (raises if it never does)."""
    deadline = time.monotonic() + timeout
    while not server.held.wait(0.05):
        if proc.poll() is not None:
            raise AssertionError(f"the command ended ({proc.returncode}) before the hold")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the service never held")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    server.held.clear()
    server.release.set()
