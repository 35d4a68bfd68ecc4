"""The job store: what a batch run asked for and got, in ``OUTPUT.batch/`` beside the output.

* ``run.json``: the run's settings (teacher and source with their options, redacted;
  the dialectic; the limits), written once;
* ``prompts.jsonl``: each prompt taken into the run, then a ``closed`` line once its
  reject is written (a record needs no line: the ledger knows it);
* ``requests.jsonl``: each request, by ``custom_id``, with its prompt and phase,
  written before the intent that submits it;
* ``jobs.jsonl``: the events of each provider job: ``intent`` (tag, custom_ids and
  their digest) before anything is uploaded, ``submitted`` (the job id) after,
  ``collected`` once its results are stored, ``cancelled`` for the whole run, and
  ``stopped`` when failures not the prompts' own persisted (the run stopped early as
  live generation does; failures from before it count no more, so the next step asks
  those requests again);
* ``results.jsonl``: every downloaded result, stored before any record is written, so
  a crash while collecting re-reads them instead of fetching them again;
* ``lock``: held by the one process that moves the run on (collect, cancel).

Every file is appended with whole lines (`append_lines`), so a killed writer leaves
at most a torn last line, which readers skip and the next append cuts off.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, Field

from hegelion_core.contracts import BatchRequest, BatchResult
from hegelion_core.data.jsonl import append_lines, atomic_output, dumps
from hegelion_core.errors import HegelionError


def store_dir(output: Path) -> Path:
    """Where the batch run writing ``output`` keeps its state."""
    return output.with_name(output.name + ".batch")


class RunSettings(BaseModel):
    """``run.json``: enough to rebuild the run in another process (keys never stored)."""

    teacher: str
    teacher_options: dict[str, Any]
    source: str
    source_options: dict[str, Any]
    job: dict[str, Any]  # GenerateJob, as JSON
    max_requests: int | None = None  # per job, below the provider's own limit
    max_bytes: int | None = None
    created_at: float = Field(default_factory=time.time)


class Intent(BaseModel):
    """A job about to be submitted, and what became of it."""

    tag: str
    round: int
    custom_ids: list[str]
    digest: str
    t: float
    job_id: str | None = None
    collected: bool = False
    current: bool = True  # submitted since the run last stopped (read, never written)


class Asked(BaseModel):
    """A request as stored: its prompt and phase beside what was sent."""

    prompt_id: str
    phase: str
    request: BatchRequest


def digest(custom_ids: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(custom_ids).encode()).hexdigest()[:32]


class JobStore:
    def __init__(self, output: Path) -> None:
        self.output = Path(output)
        self.dir = store_dir(self.output)
        self.run_path = self.dir / "run.json"
        self.prompts_path = self.dir / "prompts.jsonl"
        self.requests_path = self.dir / "requests.jsonl"
        self.jobs_path = self.dir / "jobs.jsonl"
        self.results_path = self.dir / "results.jsonl"
        self.lock_path = self.dir / "lock"

    # ----- the run's settings ----------------------------------------------------------

    @property
    def exists(self) -> bool:
        return self.run_path.is_file()

    def settings(self) -> RunSettings:
        if not self.exists:
            raise HegelionError(
                f"{self.output}: no batch run here ({self.run_path} is missing); start one "
                "with `hegelion generate ... --batch -o OUTPUT`"
            )
        try:
            return RunSettings.model_validate_json(self.run_path.read_bytes())
        except ValueError as exc:
            first = str(exc).splitlines()[0]
            raise HegelionError(f"{self.run_path}: not a batch run's settings ({first})") from None

    def create(self, settings: RunSettings) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_output(self.run_path) as tmp:
            tmp.write_bytes(dumps(settings.model_dump(mode="json")))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One process at a time moves the run on; another waits for it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # ----- appending -------------------------------------------------------------------

    def _append(self, path: Path, rows: Iterable[dict[str, Any]]) -> None:
        data = b"".join(dumps(row) + b"\n" for row in rows)
        if data:
            append_lines(path, data, fsync=True)

    def add_prompts(self, prompts: Iterable[dict[str, Any]]) -> None:
        self._append(self.prompts_path, prompts)

    def close_prompts(self, prompt_ids: Iterable[str]) -> None:
        self._append(self.prompts_path, ({"closed": p} for p in prompt_ids))

    def add_requests(self, asked: Iterable[Asked]) -> None:
        self._append(self.requests_path, (a.model_dump(mode="json") for a in asked))

    def intend(self, intent: Intent) -> None:
        row = {
            "event": "intent",
            **intent.model_dump(mode="json", exclude={"job_id", "collected", "current"}),
        }
        self._append(self.jobs_path, [row])

    def submitted(self, tag: str, job_id: str) -> None:
        self._append(self.jobs_path, [{"event": "submitted", "tag": tag, "job_id": job_id}])

    def collected(self, tag: str) -> None:
        self._append(self.jobs_path, [{"event": "collected", "tag": tag}])

    def cancelled(self) -> None:
        self._append(self.jobs_path, [{"event": "cancelled", "t": time.time()}])

    def stopped(self, reason: str) -> None:
        self._append(self.jobs_path, [{"event": "stopped", "reason": reason, "t": time.time()}])

    def add_results(self, job_id: str, results: Iterable[BatchResult]) -> None:
        self._append(
            self.results_path,
            ({"job_id": job_id, **r.model_dump(mode="json", exclude_none=True)} for r in results),
        )

    # ----- reading ---------------------------------------------------------------------

    def prompts(self) -> tuple[dict[str, dict[str, Any]], set[str]]:
        """The prompts taken (by id, in order) and those closed."""
        taken: dict[str, dict[str, Any]] = {}
        closed: set[str] = set()
        for row in _rows(self.prompts_path):
            if "closed" in row:
                closed.add(row["closed"])
            else:
                taken.setdefault(row["prompt_id"], row)
        return taken, closed

    def requests(self) -> dict[str, Asked]:
        return {
            row["request"]["custom_id"]: Asked.model_validate(row)
            for row in _rows(self.requests_path)
        }

    def jobs(self) -> tuple[list[Intent], bool]:
        """Every intent with its job id and whether it is collected; and whether the run
        was cancelled."""
        intents: dict[str, Intent] = {}
        cancelled = False
        for row in _rows(self.jobs_path):
            event = row.get("event")
            if event == "intent":
                intents[row["tag"]] = Intent.model_validate(
                    {k: v for k, v in row.items() if k != "event"}
                )
            elif event == "submitted" and row["tag"] in intents:
                intents[row["tag"]].job_id = row["job_id"]
            elif event == "collected" and row["tag"] in intents:
                intents[row["tag"]].collected = True
            elif event == "cancelled":
                cancelled = True
            elif event == "stopped":
                for intent in intents.values():
                    intent.current = False
        return list(intents.values()), cancelled

    def written_rejects(self, rejects: Path) -> set[str]:
        """The ``batch_key`` of every reject line a batch step wrote to ``rejects``: a
        step killed after writing a reject but before closing its prompt finds it here
        and does not write it again (as the ledger finds a record in the output)."""
        keys: set[str] = set()
        for row in _rows(rejects):
            key = row.get("batch_key")
            if isinstance(key, str):
                keys.add(key)
        return keys

    def results(self) -> dict[str, BatchResult]:
        """The stored results by ``custom_id`` (the first one kept: a result is final)."""
        out: dict[str, BatchResult] = {}
        for row in _rows(self.results_path):
            row.pop("job_id", None)
            out.setdefault(row["custom_id"], BatchResult.model_validate(row))
        return out


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    """Complete lines only: a torn last line (a killed writer's) is not yet a fact."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    end = data.rfind(b"\n") + 1
    for line in data[:end].splitlines():
        if line.strip():
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a line torn by a crash and then appended to: skipped
