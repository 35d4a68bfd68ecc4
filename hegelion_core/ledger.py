"""Which prompts are done, rejected or taken, shared by every process on one output.

Resume and deduplication key on ``prompt_id``. All state lives in files beside the
output, so any number of processes (on one machine or a shared filesystem with
working ``flock``) can append to one output:

* ``OUT``: trace records; a prompt is done once its line is here;
* ``OUT.rejects.jsonl`` (or ``--rejects``): one line per failed attempt, with reason;
* ``OUT.claims``: a prompt someone is working on (pid, host, time);
* ``OUT.index``: ids written so far and the output offset after each, to resume fast;
* ``OUT.lock``: the lock every read-check-append holds.

A claim by a process that died (its pid is gone on this host, or its lease expired)
is taken over, so ``kill -9`` loses only the requests in flight. The final check
happens under the lock when a record is committed, so two processes can never
both write a prompt, and the output never exceeds the limit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from hegelion_core.jsonl import append_jsonl, append_jsonl_line

_ID = re.compile(rb'"prompt_id":"([0-9a-f]{1,32})"')
_INDEX_LINE = re.compile(rb"[0-9a-f]{1,32} [0-9]+")


def _key(prompt_id: str) -> int:
    return int(prompt_id, 16)


class _Tail:
    """Reads only the complete lines appended to a file since the last read."""

    CHUNK = 64 << 20

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def chunks(self) -> Iterator[bytes]:
        """New complete lines, in chunks of about 64 MB (a huge file never sits in memory)."""
        try:
            fp = self.path.open("rb")
        except FileNotFoundError:
            return
        with fp:
            fp.seek(self.offset)
            carry = b""
            while block := fp.read(self.CHUNK):
                data = carry + block
                end = data.rfind(b"\n") + 1  # a torn or in-progress last line waits
                carry = data[end:]
                self.offset += end
                if end:
                    yield data[:end]

    def ids(self) -> list[bytes]:
        return [m for chunk in self.chunks() for m in _ID.findall(chunk)]


class Ledger:
    def __init__(
        self,
        output: Path,
        rejects: Path | None = None,
        *,
        max_attempts: int = 3,
        lease_s: float = 3600.0,
        limit: int | None = None,
    ) -> None:
        self.output = Path(output)
        self.rejects_path = Path(rejects) if rejects else self.output.with_name(self.output.name + ".rejects.jsonl")
        self.claims_path = self.output.with_name(self.output.name + ".claims")
        self.lock_path = self.output.with_name(self.output.name + ".lock")
        self.index_path = self.output.with_name(self.output.name + ".index")
        self._started = False
        self.max_attempts = max_attempts
        self.lease_s = lease_s
        self.limit = limit
        self.done: set[int] = set()
        self.attempts: Counter[int] = Counter()
        self.claims: dict[int, tuple[int, str, float]] = {}
        self._tails = {name: _Tail(p) for name, p in
                       (("out", self.output), ("rej", self.rejects_path), ("claims", self.claims_path))}
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.output.parent.mkdir(parents=True, exist_ok=True)

    # ----- reading ------------------------------------------------------------------

    def refresh(self) -> None:
        """Catch up with lines other processes appended since the last call."""
        if not self._started:
            self._load_index()
        self.done.update(int(m, 16) for m in self._tails["out"].ids())
        self.attempts.update(int(m, 16) for m in self._tails["rej"].ids())
        for chunk in self._tails["claims"].chunks():
            for line in chunk.splitlines():
                claim = orjson.loads(line)
                self.claims[_key(claim["prompt_id"])] = (claim["pid"], claim["host"], claim["t"])

    def _load_index(self) -> None:
        """Start from ``OUT.index`` (ids and the output offset they cover) so resuming on
        a million records reads megabytes, not gigabytes. The output stays the truth:
        whatever lies past the covered offset is scanned, and an index that does not
        fit the output (edited or truncated by hand) is ignored."""
        self._started = True
        covered, ids = 0, []
        tail = _Tail(self.index_path)
        for chunk in tail.chunks():
            for line in chunk.splitlines():
                if not _INDEX_LINE.fullmatch(line):
                    return  # damaged: fall back to scanning the output itself
                pid_hex, _, offset = line.partition(b" ")
                ids.append(pid_hex)
                covered = int(offset)
        size = self.output.stat().st_size if self.output.exists() else 0
        if covered > size:
            return
        self.done.update(int(x, 16) for x in ids)
        self._tails["out"].offset = covered

    @property
    def full(self) -> bool:
        return self.limit is not None and len(self.done) >= self.limit

    def settled(self, prompt_id: str) -> bool:
        """Done, or rejected as often as allowed: never worth another try."""
        key = _key(prompt_id)
        return key in self.done or self.attempts[key] >= self.max_attempts

    def _claimed_by_other(self, key: int) -> bool:
        claim = self.claims.get(key)
        if claim is None:
            return False
        pid, host, t = claim
        if (pid, host) == (self.pid, self.host):
            return False
        if time.time() - t > self.lease_s:
            return False  # lease expired: the claimer is gone or stuck
        return not (host == self.host and not _alive(pid))

    # ----- writing (each under the lock) ---------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.refresh()
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def claim(self, prompt_id: str) -> bool:
        """Take a prompt for this process; False if done, settled or taken."""
        key = _key(prompt_id)
        with self._locked():
            if self.full or self.settled(prompt_id) or self._claimed_by_other(key):
                return False
            t = time.time()
            append_jsonl(self.claims_path, [{"prompt_id": prompt_id, "pid": self.pid, "host": self.host, "t": t}],
                         fsync=False)
            self.claims[key] = (self.pid, self.host, t)
            return True

    def commit(self, record: dict[str, Any]) -> bool:
        """Append a finished record unless another process already wrote its prompt
        or the limit is reached. True when this call wrote it."""
        key = _key(record["prompt_id"])
        with self._locked():
            if key in self.done or self.full:
                return False
            append_jsonl(self.output, [record])
            self.done.add(key)
            end = self.output.stat().st_size  # we hold the lock: nobody else appended
            self._tails["out"].offset = end
            append_jsonl_line(self.index_path, f"{record['prompt_id']} {end}\n".encode())
            return True

    def reject(self, row: dict[str, Any]) -> None:
        with self._locked():
            append_jsonl(self.rejects_path, [row])
            self.attempts[_key(row["prompt_id"])] += 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed process whose parent died too stays a zombie where nothing reaps orphans
    # (containers without an init): it still answers signal 0, but it holds no claim.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"
