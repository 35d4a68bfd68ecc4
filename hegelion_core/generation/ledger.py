"""Which prompts are done, rejected or taken, shared by every process on one output.

Resume and deduplication key on ``prompt_id``. All state lives in files beside the
output, so any number of processes (on one machine or a shared filesystem with
working ``flock``) can append to one output:

* ``OUT``: trace records; a prompt is done once its line is here;
* ``OUT.rejects.jsonl`` (or ``--rejects``): one line per failed attempt, with reason
  and ``blame``; only the prompt's own failures (``blame`` ``prompt``, or none, as
  older files have it) count toward ``max_attempts``: an outage or a bad key is
  recorded but never uses a prompt up;
* ``OUT.claims``: a prompt someone is working on (pid, host, time);
* ``OUT.index``: ids written so far and the output offset after each, to resume fast;
* ``OUT.lock``: the lock every read-check-append holds.

A claim by a process that died (its pid is gone on this host, or its lease expired)
is taken over, so ``kill -9`` loses only the requests in flight. The final check
happens under the lock when a record is committed, so two processes can never
both write a prompt, and the output never exceeds the limit.

Claims and commits come in batches (`claim_many`, `commit_many`): one lock, one
refresh and one ``write`` per file for many prompts, which is what lets one process
keep hundreds of requests in flight. A batch is still appended with a single
``write`` of complete lines, so a killed writer leaves at most a torn last line,
which the next appender cuts off.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import re
import socket
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from hegelion_core.data.jsonl import append_jsonl_line, append_lines, dumps, pid_alive

_ID = re.compile(rb'"prompt_id":"([0-9a-f]{1,32})"')
#: A reject line blamed on something other than the prompt (orjson writes no spaces, and
#: a quote inside a string is escaped, so this matches the field and nothing else).
_NOT_COUNTED = re.compile(rb'"blame":"(?!prompt")')
_INDEX_ALPHABET = b"0123456789abcdef \n"


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
            if os.stat(self.path).st_size <= self.offset:
                return  # nothing new: one stat, not an open and a read
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

    def counted_ids(self) -> list[bytes]:
        """The prompt ids of new reject lines that count against their prompt."""
        ids: list[bytes] = []
        for chunk in self.chunks():
            if b'"blame":"' not in chunk:
                ids += _ID.findall(chunk)
                continue
            for line in chunk.splitlines():
                if not _NOT_COUNTED.search(line) and (m := _ID.search(line)):
                    ids.append(m.group(1))
        return ids


def counts_against_prompt(row: dict[str, Any]) -> bool:
    """Whether a reject row uses up one of its prompt's attempts (`TeacherError.blame`)."""
    return row.get("blame", "prompt") == "prompt"


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
        self.rejects_path = (
            Path(rejects) if rejects else self.output.with_name(self.output.name + ".rejects.jsonl")
        )
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
        self._mine: set[int] = set()  # taken by this ledger: never taken twice in one run
        self._tails = {
            name: _Tail(p)
            for name, p in (
                ("out", self.output),
                ("rej", self.rejects_path),
                ("claims", self.claims_path),
            )
        }
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.output.parent.mkdir(parents=True, exist_ok=True)

    # ----- reading ------------------------------------------------------------------

    def refresh(self) -> None:
        """Catch up with lines other processes appended since the last call."""
        if not self._started:
            self._load_index()
        self.done.update(int(m, 16) for m in self._tails["out"].ids())
        self.attempts.update(int(m, 16) for m in self._tails["rej"].counted_ids())
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
        covered, keys = 0, []
        for chunk in _Tail(self.index_path).chunks():
            parsed = _index_chunk(chunk)
            if parsed is None:
                return  # damaged: fall back to scanning the output itself
            ids, covered = parsed
            keys.append(ids)
        size = self.output.stat().st_size if self.output.exists() else 0
        if covered > size:
            return
        for ids in keys:
            self.done.update(map(int, ids, itertools.repeat(16)))
        self._tails["out"].offset = covered

    @property
    def full(self) -> bool:
        return self.limit is not None and len(self.done) >= self.limit

    def settled(self, prompt_id: str) -> bool:
        """Done, or rejected (for its own fault) as often as allowed: never worth
        another try."""
        key = _key(prompt_id)
        return key in self.done or self.attempts.get(key, 0) >= self.max_attempts

    def _claimed_by_other(self, key: int) -> bool:
        claim = self.claims.get(key)
        if claim is None:
            return False
        pid, host, t = claim
        if (pid, host) == (self.pid, self.host):
            return False
        if time.time() - t > self.lease_s:
            return False  # lease expired: the claimer is gone or stuck
        return not (host == self.host and not pid_alive(pid))

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
        return bool(self.claim_many([prompt_id]))

    def claim_many(self, prompt_ids: Iterable[str]) -> list[str]:
        """Take the prompts that are free, under one lock; returns those taken, in order.
        A prompt this ledger already took (a repeat in the source) is not taken again."""
        with self._locked():
            taken: list[str] = []
            for prompt_id in prompt_ids:
                key = _key(prompt_id)
                if (
                    self.full
                    or key in self._mine
                    or self.settled(prompt_id)
                    or self._claimed_by_other(key)
                ):
                    continue
                self._mine.add(key)
                taken.append(prompt_id)
            if taken:
                t = time.time()
                data = b"".join(
                    orjson.dumps({"prompt_id": p, "pid": self.pid, "host": self.host, "t": t})
                    + b"\n"
                    for p in taken
                )
                self._append("claims", data, fsync=False)
                for prompt_id in taken:
                    self.claims[_key(prompt_id)] = (self.pid, self.host, t)
            return taken

    def commit(self, record: dict[str, Any]) -> bool:
        """Append a finished record unless another process already wrote its prompt
        or the limit is reached. True when this call wrote it."""
        return self.commit_many([record])[0]

    def commit_many(
        self,
        records: Sequence[dict[str, Any]],
        rejects: Sequence[dict[str, Any]] = (),
        *,
        fsync: bool = True,
    ) -> list[bool]:
        """Append finished records (one write) and reject rows, under one lock.

        A record is skipped when its prompt is already written (here, by another
        process, or earlier in the batch) or the limit is reached. Returns, per record,
        whether this call wrote it. The index gets one line per written record.
        ``fsync=False`` leaves flushing to the disk to a later `sync`: the lines are
        safe from a killed process at once, from a power cut only after the sync."""
        with self._locked():
            written: list[bool] = []
            keys: set[int] = set()
            lines: list[tuple[str, bytes]] = []
            for record in records:
                key = _key(record["prompt_id"])
                if (
                    key in self.done
                    or key in keys
                    or (self.limit is not None and len(self.done) + len(keys) >= self.limit)
                ):
                    written.append(False)
                    continue
                written.append(True)
                keys.add(key)
                lines.append((record["prompt_id"], dumps(record) + b"\n"))
            if lines:
                end, _ = self._append("out", b"".join(line for _, line in lines), fsync=fsync)
                self.done.update(keys)
                index = self._unindexed(end)
                for prompt_id, line in lines:
                    end += len(line)
                    index.append(f"{prompt_id} {end}\n".encode())
                append_jsonl_line(self.index_path, b"".join(index))
            if rejects:
                data = b"".join(dumps(row) + b"\n" for row in rejects)
                if self._append("rej", data, fsync=fsync)[1]:
                    self.attempts.update(
                        _key(row["prompt_id"]) for row in rejects if counts_against_prompt(row)
                    )
            return written

    def _unindexed(self, start: int) -> list[bytes]:
        """Index lines for the records before ``start`` that the index does not list: a
        writer killed between its record and its index line leaves them, and our index
        line, covering everything before it, would hide them from a resumed run."""
        covered = _index_end(self.index_path)
        if covered is None or covered >= start:
            return []  # no gap (or a damaged index, which readers ignore anyway)
        with self.output.open("rb") as fp:
            fp.seek(covered)
            gap = fp.read(start - covered)
        lines, end = [], covered
        for line in gap.splitlines(keepends=True):
            end += len(line)
            if line.endswith(b"\n") and (m := _ID.search(line)):
                lines.append(m.group(1) + b" %d\n" % end)
        return lines

    def reject(self, row: dict[str, Any]) -> None:
        self.commit_many([], [row])

    def sync(self) -> None:
        """fsync the output and the rejects file (after ``commit_many(fsync=False)``)."""
        for path in (self.output, self.rejects_path):
            with contextlib.suppress(FileNotFoundError):
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def _append(self, tail: str, data: bytes, *, fsync: bool) -> tuple[int, bool]:
        """Append under the lock; returns the offset our lines start at, and whether
        the tail skipped them. It does when nothing unread lay before them (we already
        know what they say); otherwise the next refresh reads them like anyone else's."""
        reader = self._tails[tail]
        start = append_lines(reader.path, data, fsync=fsync)
        if reader.offset != start:
            return start, False
        reader.offset = start + len(data)
        return start, True


def _index_end(index: Path) -> int | None:
    """The output offset the index covers (its last complete line's), 0 with no index,
    None when that line is not an index line."""
    try:
        size = os.stat(index).st_size
    except FileNotFoundError:
        return 0
    with index.open("rb") as fp:
        fp.seek(max(0, size - 256))
        tail = fp.read()
    tail = tail[: tail.rfind(b"\n") + 1]  # a torn last line is cut by the next append
    if not tail:
        return 0 if size < 256 else None
    parts = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1].split()
    return int(parts[1]) if len(parts) == 2 and parts[1].isdigit() else None


def _index_chunk(chunk: bytes) -> tuple[list[bytes], int] | None:
    """The ids and the last covered offset of complete index lines (``<hex id> <offset>``),
    or None when the chunk is not such lines. Checked with whole-chunk byte operations:
    a per-line regex made reading a million-line index take a second."""
    lines = chunk.count(b"\n")
    parts = chunk.split()
    if (
        chunk.translate(None, _INDEX_ALPHABET)
        or chunk.count(b" ") != lines
        or len(parts) != 2 * lines
        or not lines
    ):
        return None
    try:
        return parts[0::2], int(parts[-1], 10)
    except ValueError:
        return None
