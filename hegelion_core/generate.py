"""``hegelion generate``: prompts in, trace records out, at scale and resumable.

An asyncio loop keeps up to ``concurrency`` dialectics in flight under
requests-per-minute and tokens-per-minute budgets. Each teacher call has a
timeout and is retried with backoff (honouring ``Retry-After``) when the failure
is retryable. A prompt whose dialectic fails goes to the rejects file with its
reason, never to the output. The `Ledger` makes reruns resume and lets several
processes share one output without duplicates.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hegelion_core import hooks
from hegelion_core._version import __version__
from hegelion_core.contracts import Completion, PromptSource, Teacher, TeacherError
from hegelion_core.dialectic import DialecticConfig, DialecticEngine, PhaseFailed
from hegelion_core.jsonl import atomic_output, dumps
from hegelion_core.ledger import Ledger
from hegelion_core.limits import RateLimiter, backoff, estimate_tokens
from hegelion_core.records import DEFAULT_SYSTEM, Message, Prompt, StageManifest, TraceRecord, Usage
from hegelion_core.secrets import scrub


class GenerateJob(BaseModel):
    """Everything `hegelion generate` was asked to do, validated."""

    model_config = ConfigDict(extra="forbid")

    output: Path
    rejects: Path | None = None
    limit: int | None = Field(None, ge=1)  # total records wanted in the output
    dialectic: DialecticConfig = Field(default_factory=DialecticConfig)
    system: str = DEFAULT_SYSTEM
    concurrency: int = Field(8, ge=1)
    rpm: float | None = Field(None, gt=0)
    tpm: float | None = Field(None, gt=0)
    max_retries: int = Field(3, ge=0)
    timeout: float = Field(300.0, gt=0)
    backoff_base: float = Field(1.0, ge=0)
    lease_s: float | None = None  # claims older than this are taken over

    @property
    def rejects_path(self) -> Path:
        return self.rejects or self.output.with_name(self.output.name + ".rejects.jsonl")


class GenerateStats(BaseModel):
    written: int = 0
    rejected: int = 0
    retried: int = 0
    skipped: int = 0  # already done, settled or taken by another process
    duplicates: int = 0  # finished here but another process had written it first
    in_flight: int = 0
    usage: Usage = Field(default_factory=Usage)
    reasons: dict[str, int] = Field(default_factory=dict)
    elapsed_s: float = 0.0
    already_done: int = 0


class Generator:
    def __init__(self, job: GenerateJob, teacher: Teacher, source: PromptSource,
                 progress: Progress | None = None) -> None:
        self.job = job
        self.teacher = teacher
        self.source = source
        self.stats = GenerateStats()
        self.reasons: Counter[str] = Counter()
        self.limiter = RateLimiter(job.rpm, job.tpm)
        self.engine = DialecticEngine(teacher, job.dialectic, call=self._call)
        lease = job.lease_s or job.timeout * (job.max_retries + 1) * 4 + 60
        self.ledger = Ledger(job.output, job.rejects_path, max_attempts=max(job.max_retries, 1),
                             lease_s=lease, limit=job.limit)
        self.progress = progress
        self.model = getattr(teacher.options, "model", None)
        self.started = time.monotonic()

    # ----- one teacher call: timeout, rate limits, retries -----------------------------

    async def _call(self, messages: list[Message], *, phase: str, **kwargs: Any) -> Completion:
        job = self.job
        size = estimate_tokens(sum(len(m.content) for m in messages), kwargs.get("max_tokens"))
        for attempt in range(job.max_retries + 1):
            await self.limiter.acquire(size)
            try:
                completion = await asyncio.wait_for(self.teacher.complete(messages, **kwargs), job.timeout)
            except asyncio.TimeoutError:
                error = TeacherError(f"no answer within {job.timeout:g}s", retryable=True)
            except TeacherError as exc:
                error = exc
            else:
                self.limiter.settle(size, completion.usage.total_tokens)
                self.stats.usage = self.stats.usage + completion.usage
                self.model = completion.model or self.model
                return completion
            if not error.retryable or attempt == job.max_retries:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise PhaseFailed(phase, f"teacher error{tries}: {scrub(str(error))}")
            self.stats.retried += 1
            if error.retry_after:
                self.limiter.pause(error.retry_after)
            await asyncio.sleep(max(error.retry_after or 0.0, backoff(attempt, job.backoff_base)))
        raise AssertionError("unreachable")  # pragma: no cover

    # ----- one prompt -------------------------------------------------------------

    async def _one(self, prompt: Prompt) -> None:
        try:
            result = await self.engine.run(prompt.text)
        except PhaseFailed as failed:
            self._reject(prompt, failed.phase, failed.reason)
            return
        record = TraceRecord.build(
            prompt.text, result.trace, system=prompt.system or self.job.system,
            source=prompt.source, teacher=self.teacher.name, model=self.model,
            timings={k: round(v, 3) for k, v in result.timings.items()}, usage=result.usage,
        )
        record = hooks.transform_record(record)
        if not hooks.accept_record(record):
            self._reject(prompt, "filter", "rejected by plugin")
            return
        if await asyncio.to_thread(self.ledger.commit, record.model_dump(mode="json")):
            self.stats.written += 1
            hooks.record_written(record, self.job.output)
        else:
            self.stats.duplicates += 1

    def _reject(self, prompt: Prompt, phase: str, reason: str) -> None:
        self.stats.rejected += 1
        label = f"{phase}: {reason.split(':')[0]}"
        self.reasons[label] += 1
        self.ledger.reject({
            "prompt_id": prompt.id, "instruction": prompt.text, "source": prompt.source,
            "phase": phase, "reason": reason, "teacher": self.teacher.name, "model": self.model,
            "created_at": datetime.now(timezone.utc).isoformat(), "hegelion_version": __version__,
        })

    # ----- the loop ------------------------------------------------------------------

    async def run(self) -> GenerateStats:
        self.started = time.monotonic()
        self.ledger.refresh()
        self.stats.already_done = len(self.ledger.done)
        prompts = self._todo()
        tasks: set[asyncio.Task[None]] = set()
        exhausted = False
        ticker = asyncio.create_task(self._tick()) if self.progress else None
        try:
            while True:
                while not exhausted and len(tasks) < self.job.concurrency and not self._enough(len(tasks)):
                    prompt = next(prompts, None)
                    if prompt is None:
                        exhausted = True
                    else:
                        tasks.add(asyncio.create_task(self._one(prompt)))
                self.stats.in_flight = len(tasks)
                if not tasks:
                    break
                finished, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    task.result()  # surface bugs; expected failures were already rejects
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            if ticker:
                ticker.cancel()
            await self.teacher.aclose()
            self.stats.in_flight = 0
            self.stats.reasons = dict(self.reasons)
            self.stats.elapsed_s = time.monotonic() - self.started
            if self.progress:
                self.progress.render(self, final=True)
        return self.stats

    def _enough(self, in_flight: int) -> bool:
        """Whether the records written plus those in flight already reach the limit."""
        return self.job.limit is not None and len(self.ledger.done) + in_flight >= self.job.limit

    def _todo(self) -> Iterator[Prompt]:
        """Prompts not yet done anywhere, each claimed for this process."""
        for prompt in self.source.iter_prompts():
            if self.ledger.full:
                return
            if self.ledger.settled(prompt.id) or not self.ledger.claim(prompt.id):
                self.stats.skipped += 1
                continue
            yield prompt

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.progress.interval if self.progress else 1.0)
            if self.progress:
                self.progress.render(self)


class Progress:
    """One status line: done, rejected, retried, rate, ETA and tokens.

    Redrawn in place on a terminal; printed every ``interval`` seconds otherwise.
    """

    def __init__(self, stream: Any = None, interval: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval or (0.5 if self.tty else 10.0)

    def render(self, gen: Generator, final: bool = False) -> None:
        s, job = gen.stats, gen.job
        elapsed = max(time.monotonic() - gen.started, 1e-9)
        rate = s.written / elapsed
        total = s.already_done + s.written
        eta = ""
        if job.limit and rate > 0 and not final:
            eta = f" eta {_duration((job.limit - total) / rate)}"
        target = f"/{job.limit}" if job.limit else ""
        line = (f"{total}{target} done (+{s.written} now), {s.rejected} rejected, {s.retried} retried, "
                f"{s.in_flight} in flight, {rate * 60:.1f}/min{eta}, {s.usage.total_tokens} tokens")
        if self.tty and not final:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(("\r\033[K" if self.tty else "") + line + "\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def write_manifest(job: GenerateJob, teacher: Teacher, source: PromptSource, stats: GenerateStats | None) -> Path:
    """The run's config beside the output: `hegelion status` reads the limit and model."""
    path = job.output.with_name(job.output.name + ".manifest.json")
    manifest = StageManifest(
        stage="generate",
        outputs=[str(job.output), str(job.rejects_path)],
        config={
            "job": job.model_dump(mode="json"),
            "teacher": teacher.name,
            "teacher_options": _public(teacher.options.model_dump(mode="json")),
            "source": source.name,
            "source_options": source.options.model_dump(mode="json"),
        },
        counts=({"written": stats.written, "rejected": stats.rejected, "retried": stats.retried,
                 "already_done": stats.already_done} if stats else {}),
        versions={"hegelion-core": __version__},
    )
    with atomic_output(path) as tmp:
        tmp.write_bytes(dumps(manifest.model_dump(mode="json")))
    return path


def _public(options: dict[str, Any]) -> dict[str, Any]:
    """Options minus anything that looks like a credential, scrubbed besides."""
    return {k: ("***" if any(h in k.lower() for h in ("key", "token", "secret")) and "env" not in k.lower()
                else scrub(v) if isinstance(v, str) else v) for k, v in options.items()}


def run_generate(job: GenerateJob, teacher: Teacher, source: PromptSource, *, progress: bool = True) -> GenerateStats:
    """Run a generation job to the end (or Ctrl-C), writing the manifest around it."""
    write_manifest(job, teacher, source, None)
    hooks.run_started("generate", {"job": job.model_dump(mode="json"), "teacher": teacher.name, "pid": os.getpid()})
    gen = Generator(job, teacher, source, Progress() if progress else None)
    error = None
    try:
        return asyncio.run(gen.run())
    except BaseException as exc:
        error = str(exc) or type(exc).__name__
        raise
    finally:
        write_manifest(job, teacher, source, gen.stats)
        hooks.run_finished("generate", gen.stats.model_dump(mode="json"), error)
