"""Run a stage's independent commands at once, each pinned to its own CPU cores.

An eval stage runs one command per model. One after the other, each has the whole
machine; side by side, each gets a disjoint share of the cores (whole cores: a core's
hyperthreads stay together) through its CPU affinity, which llama.cpp's and torch's
default thread counts both follow (``OMP_NUM_THREADS`` is left out of its
environment). Each command's arithmetic is what it would be with
that many cores alone, and the machine's cores are all busy: on 2 cores, two single-
thread llama.cpp evals at once take about half the time of the two in turn.

Linux only (`os.sched_setaffinity`); elsewhere, or with fewer cores than commands, the
caller runs them in turn. Each command's output lines reach the terminal whole, behind
its label: ``[before] 3/10 answered``.
"""

from __future__ import annotations

import io
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pydantic import BaseModel, Field

#: Linux's CPU topology: cpuN/topology/{physical_package_id,core_id}.
CPU_TOPOLOGY = Path("/sys/devices/system/cpu")


def cpu_shares(
    n: int, *, cpus: Iterable[int] | None = None, topology: Path = CPU_TOPOLOGY
) -> list[list[int]] | None:
    """Up to ``n`` disjoint CPU sets of whole cores, as even as the cores allow; None
    where there is no affinity to set (macOS, Windows) or fewer than two cores.

    ``cpus``: the CPUs to share (default: those this process may use). A CPU whose
    topology cannot be read counts as a core of its own.
    """
    if cpus is None:
        try:
            cpus = os.sched_getaffinity(0)
        except AttributeError:  # macOS, Windows
            return None
    cores: dict[tuple[str, ...], list[int]] = {}
    for cpu in sorted(cpus):
        cores.setdefault(_core_of(cpu, topology), []).append(cpu)
    groups = list(cores.values())
    k = min(n, len(groups))
    if k < 2:
        return None
    # Contiguous runs of cores: neighbours share caches (and a socket) more often.
    bounds = [i * len(groups) // k for i in range(k + 1)]
    return [[c for g in groups[bounds[i] : bounds[i + 1]] for c in g] for i in range(k)]


def _core_of(cpu: int, topology: Path) -> tuple[str, ...]:
    where = topology / f"cpu{cpu}" / "topology"
    try:
        package = (where / "physical_package_id").read_text().strip()
        return (package, (where / "core_id").read_text().strip())
    except OSError:
        return (f"cpu{cpu}",)


@dataclass
class Job:
    """One command to run: its label, argv and extra environment."""

    label: str
    cmd: list[str]
    env: dict[str, str] | None = None


class Run(BaseModel):
    """One command of a stage as it went (``stage.json``'s ``runs``): its window in
    seconds from the stage's start, the CPUs it was pinned to (none: the whole machine)
    and its exit status."""

    label: str
    started_s: float
    elapsed_s: float
    cpus: list[int] = Field(default_factory=list)
    returncode: int = 0


def run_side_by_side(
    jobs: Sequence[Job], shares: Sequence[Sequence[int]], *, grace_s: float = 30.0
) -> list[Run]:
    """Run ``jobs``, as many at once as there are ``shares``, each pinned to a free one;
    return each job's `Run`, in the order of ``jobs``.

    One thread does it all (a selector over the children's pipes), so no other thread
    can hold a lock when a child forks. On Ctrl-C each child, which got the same
    signal, has ``grace_s`` to close its files before it is killed; then the
    KeyboardInterrupt goes on.
    """
    start = time.monotonic()
    pending = list(enumerate(jobs))
    free = [list(s) for s in shares]
    running: dict[subprocess.Popen[bytes], tuple[int, list[int], float]] = {}
    open_pipes: dict[subprocess.Popen[bytes], int] = {}
    outcomes: dict[int, Run] = {}
    selector = selectors.DefaultSelector()
    try:
        while pending or running:
            while pending and free:
                index, job = pending.pop(0)
                cpus = free.pop(0)
                proc = subprocess.Popen(
                    job.cmd,
                    env=_share_env(job.env),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    preexec_fn=_pin(cpus),  # noqa: PLW1509 - one thread: see the docstring
                )
                running[proc] = (index, cpus, time.monotonic() - start)
                open_pipes[proc] = 2
                prefix = f"  [{job.label}] ".encode()
                for pipe, sink in ((proc.stdout, sys.stdout), (proc.stderr, sys.stderr)):
                    assert pipe is not None
                    os.set_blocking(pipe.fileno(), False)
                    selector.register(pipe, selectors.EVENT_READ, (proc, prefix, sink, [b""]))
            for key, _ in selector.select(timeout=0.5):
                proc, prefix, sink, partial = key.data
                readable = key.fileobj
                assert isinstance(readable, io.BufferedReader)
                if not _forward(readable, prefix, sink, partial):
                    selector.unregister(readable)
                    readable.close()
                    open_pipes[proc] -= 1
            for proc in [p for p in running if open_pipes[p] == 0 and p.poll() is not None]:
                index, cpus, started = running.pop(proc)
                assert proc.returncode is not None
                elapsed = time.monotonic() - start - started
                outcomes[index] = Run(
                    label=jobs[index].label,
                    started_s=started,
                    elapsed_s=elapsed,
                    cpus=cpus,
                    returncode=proc.returncode,
                )
                free.append(cpus)
    except KeyboardInterrupt:
        _stop(list(running), grace_s)
        raise
    finally:
        for key in list(selector.get_map().values()):  # pipes of children still running
            if isinstance(key.fileobj, io.BufferedReader):
                key.fileobj.close()
        selector.close()
    return [outcomes[i] for i in range(len(jobs))]


def _share_env(extra: dict[str, str] | None) -> dict[str, str]:
    """The child's environment: thread counts follow the share (torch's and llama.cpp's
    defaults read the affinity), so an ``OMP_NUM_THREADS`` meant for the whole machine
    is left out."""
    env = os.environ | (extra or {})
    env.pop("OMP_NUM_THREADS", None)
    return env


def _pin(cpus: list[int]) -> Callable[[], None]:
    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


def _forward(pipe: IO[bytes], prefix: bytes, sink: IO[str], partial: list[bytes]) -> bool:
    """Write the whole lines now readable from ``pipe`` behind ``prefix``; False at EOF."""
    try:
        data = os.read(pipe.fileno(), 65536)
    except BlockingIOError:
        return True
    if not data:
        if partial[0]:
            _write(sink, prefix + partial[0] + b"\n")
        return False
    *lines, partial[0] = (partial[0] + data).split(b"\n")
    if lines:
        _write(sink, b"".join(prefix + line + b"\n" for line in lines))
    return True


def _write(sink: IO[str], data: bytes) -> None:
    sink.write(data.decode(errors="replace"))
    sink.flush()


def _stop(procs: list[subprocess.Popen[bytes]], grace_s: float) -> None:
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
