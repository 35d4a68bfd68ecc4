"""``hegelion generate``: prompts in, trace records out, at scale and resumable.

An asyncio loop keeps up to ``concurrency`` dialectics in flight under
requests-per-minute and tokens-per-minute budgets. Each teacher call has a
timeout and is retried with backoff (honouring ``Retry-After``) when the failure
is retryable. A prompt whose dialectic fails goes to the rejects file with its
reason and whose fault it was (``blame``), never to the output; only the prompt's own
failures count against its attempts. A bad key, ``--stop-after-failures`` prompts in a
row failing for the service's sake, or a ``Retry-After`` past ``--max-retry-wait``
stop the run early (exit status 5), keeping everything written. Every answer is
scrubbed of the keys in use as it arrives. The `Ledger` makes reruns resume and lets
several processes share one output without duplicates.

Hot-path choices (``benchmarks/generate_throughput.py`` keeps them honest): prompts
are claimed in batches of up to ``min(concurrency, 64)`` under one lock; finished
records and rejects are group-committed (one lock and one append per batch, fsynced
about once a second); each slot starts its next prompt itself; a `StartPacer`
breaks up waves; the garbage collector is tuned for the run (`collector_tuned`);
and on resume, sources that can (`iter_unsettled`) hash raw prompt text and skip
what is done without building a pydantic `Prompt` for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import IntEnum
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hegelion_core import hooks
from hegelion_core._version import __version__
from hegelion_core.contracts import Blame, Completion, PromptSource, Teacher, TeacherError
from hegelion_core.data.jsonl import atomic_output, dumps
from hegelion_core.generation.dialectic import DialecticConfig, DialecticEngine, PhaseFailed
from hegelion_core.generation.ledger import Ledger
from hegelion_core.generation.limits import RateLimiter, StartPacer, backoff, estimate_tokens
from hegelion_core.generation.reasons import reject_label
from hegelion_core.records import DEFAULT_SYSTEM, Message, Prompt, StageManifest, TraceRecord, Usage
from hegelion_core.secrets import learn, redact, scrub, scrub_counted


def reject_row(
    prompt: Prompt,
    phase: str,
    reason: str,
    blame: str,
    teacher: str,
    model: str | None,
    **extra: Any,
) -> dict[str, Any]:
    """One line of the rejects file, live or batch: which prompt, where it failed, why,
    and whose fault (only ``blame: prompt`` uses up its attempts)."""
    return {
        "prompt_id": prompt.id,
        "instruction": prompt.text,
        "source": prompt.source,
        "phase": phase,
        "reason": reason,
        "blame": blame,
        "teacher": teacher,
        "model": model,
        **extra,
        "created_at": datetime.now(UTC).isoformat(),
        "hegelion_version": __version__,
    }


class ExitCode(IntEnum):
    """``hegelion generate``'s exit status; scripts (and ``hegelion run``) rely on it."""

    OK = 0  #: everything asked for is written, or nothing was left to do
    SOME_REJECTED = 3  #: records written, and some prompts rejected
    ALL_REJECTED = 4  #: nothing usable written in this run: every prompt was rejected
    STOPPED = 5  #: stopped early: a bad key, the failure breaker, a Retry-After past the cap
    INTERRUPTED = 130  #: Ctrl-C (SIGINT)
    TERMINATED = 143  #: SIGTERM


class Terminated(Exception):
    """The run got SIGTERM; what finished is written."""


class TeacherFailed(PhaseFailed):
    """A phase failed because its teacher call did, with that failure's `Blame`."""

    def __init__(self, phase: str, reason: str, blame: Blame) -> None:
        super().__init__(phase, reason)
        self.blame: Blame = blame


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
    max_retry_wait: float = Field(300.0, ge=0)  # a longer Retry-After stops the run
    stop_after_failures: int = Field(10, ge=0)  # prompts in a row failing, not by their fault
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
    not_counted: int = 0  # rejects blamed on the service or the key: the prompts stay open
    scrubbed: int = 0  # key values removed from answers
    stopped: str | None = None  # why the run stopped early, if it did

    @property
    def exit_code(self) -> ExitCode:
        if self.stopped:
            return ExitCode.STOPPED
        if self.rejected and not (self.written or self.duplicates):
            return ExitCode.ALL_REJECTED
        return ExitCode.SOME_REJECTED if self.rejected else ExitCode.OK


@contextmanager
def collector_tuned(gen0: int = 20_000) -> Iterator[None]:
    """Fewer, cheaper garbage collections while the loop runs.

    Every request allocates thousands of short-lived objects, so with the default
    threshold (700) CPython collects many times per request, and now and then a full
    collection walks every object the process holds, pausing the loop for tens of
    milliseconds. Answers that arrive during a pause are handled together, and with
    a steady server latency they come back together from then on (see `StartPacer`).
    Freezing what start-up built takes it out of every scan; a higher first threshold
    makes collections rarer. Measured at 256 in flight: +2 to +5 points of the
    throughput limit. Both are undone afterwards, even on error."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(gen0, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


class Generator:
    def __init__(
        self,
        job: GenerateJob,
        teacher: Teacher,
        source: PromptSource,
        progress: Progress | None = None,
    ) -> None:
        self.job = job
        self.teacher = teacher
        self.source = source
        self.stats = GenerateStats()
        self.reasons: Counter[str] = Counter()
        self.limiter = RateLimiter(job.rpm, job.tpm)
        self.pacer = StartPacer(job.concurrency)
        self.engine = DialecticEngine(teacher, job.dialectic, call=self._call)
        lease = job.lease_s or job.timeout * (job.max_retries + 1) * 4 + 60
        self.ledger = Ledger(
            job.output,
            job.rejects_path,
            max_attempts=max(job.max_retries, 1),
            lease_s=lease,
            limit=job.limit,
        )
        self.progress = progress
        self.model = getattr(teacher.options, "model", None)
        self.started = time.monotonic()
        self.committer: _Committer | None = None
        self._skipped = 0  # stats.skipped, kept as a plain int: pydantic setattr is slow
        self._active = 0
        self._failing = 0  # prompts failed in a row for reasons not their own
        self._stop = asyncio.Event()
        learn(teacher.options.model_dump(mode="json"))  # keys in extra_body or a URL too

    # ----- one teacher call: timeout, rate limits, retries -----------------------------

    async def _call(self, messages: list[Message], *, phase: str, **kwargs: Any) -> Completion:
        job = self.job
        size = estimate_tokens(sum(len(m.content) for m in messages), kwargs.get("max_tokens"))
        for attempt in range(job.max_retries + 1):
            await self.limiter.acquire(size)
            try:
                async with asyncio.timeout(job.timeout):  # no extra task per call, unlike wait_for
                    completion = await self.teacher.complete(messages, **kwargs)
            except TimeoutError:
                error = TeacherError(f"no answer within {job.timeout:g}s", retryable=True)
            except TeacherError as exc:
                error = exc
            else:
                self.limiter.settle(size, completion.usage.total_tokens)
                self.stats.usage = self.stats.usage + completion.usage
                self.model = completion.model or self.model
                self._failing = 0  # the service answers
                text, scrubbed = scrub_counted(completion.text)  # an answer echoing a key
                if scrubbed:
                    self.stats.scrubbed += scrubbed
                    completion = completion.model_copy(update={"text": text})
                return completion
            if not error.retryable or attempt == job.max_retries:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise TeacherFailed(
                    phase, f"teacher error{tries}: {scrub(str(error))}", error.blame
                )
            wait = error.retry_after or 0.0
            if wait > job.max_retry_wait:
                asked = "forever" if math.isinf(wait) else f"{wait:g}s"
                self.stop(
                    f"the teacher asked to wait {asked} (Retry-After), longer than "
                    f"--max-retry-wait {job.max_retry_wait:g}s; rerun later"
                )
                raise TeacherFailed(
                    phase,
                    f"teacher error: {scrub(str(error))} (Retry-After "
                    f"{asked} past --max-retry-wait)",
                    "service",
                )
            self.stats.retried += 1
            if wait:
                self.limiter.pause(wait)
            await asyncio.sleep(max(wait, backoff(attempt, job.backoff_base)))
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, reason: str) -> None:
        """End the run early: no new prompts start, those in flight are cancelled (their
        prompts stay open for a rerun), and what finished stays written."""
        if self.stats.stopped is None:
            self.stats.stopped = reason
            self._stop.set()

    # ----- one prompt -------------------------------------------------------------

    async def _one(self, prompt: Prompt) -> None:
        try:
            result = await self.engine.run(prompt.text)
        except PhaseFailed as failed:
            blame: Blame = getattr(failed, "blame", "prompt")
            await self._reject(prompt, failed.phase, failed.reason, blame)
            self._count_failure(blame, f"{failed.phase}: {failed.reason}")
            return
        self._failing = 0
        record = TraceRecord.build(
            prompt.text,
            result.trace,
            system=prompt.system or self.job.system,
            source=prompt.source,
            teacher=self.teacher.name,
            model=self.model,
            timings={k: round(v, 3) for k, v in result.timings.items()},
            usage=result.usage,
            truncated=result.truncated,
        )
        admitted = hooks.admit(record)
        if admitted is None:
            await self._reject(prompt, "filter", "rejected by plugin")
            return
        record = admitted
        assert self.committer is not None
        if await self.committer.record(record.model_dump(mode="json")):
            self.stats.written += 1
            hooks.record_written(record, self.job.output)
        else:
            self.stats.duplicates += 1

    async def _reject(
        self, prompt: Prompt, phase: str, reason: str, blame: Blame = "prompt"
    ) -> None:
        self.stats.rejected += 1
        label = reject_label(phase, reason)  # a teacher error's first line, ids normalised
        if blame != "prompt":
            self.stats.not_counted += 1
            label += f" ({blame}, not counted)"
        self.reasons[label] += 1
        assert self.committer is not None
        await self.committer.reject(
            reject_row(prompt, phase, reason, blame, self.teacher.name, self.model)
        )

    def _count_failure(self, blame: Blame, what: str) -> None:
        """The breaker: a bad key stops the run at once (every request would fail the
        same way), and so do ``stop_after_failures`` prompts in a row failing for the
        service's sake. A prompt's own failure shows the service answers."""
        if blame == "prompt":
            self._failing = 0
            return
        self._failing += 1
        keep = "; the prompts were not counted against their attempts"
        if blame == "auth":
            self.stop(f"the teacher refused the credentials ({what}); fix the key and rerun{keep}")
        elif self.job.stop_after_failures and self._failing >= self.job.stop_after_failures:
            self.stop(
                f"{self._failing} prompts in a row failed for reasons not their own "
                f"(the last: {what}); fix the cause (is the server up?) and rerun{keep}"
            )

    # ----- the loop ------------------------------------------------------------------

    async def run(self) -> GenerateStats:
        self.started = time.monotonic()
        self.ledger.refresh()
        self.stats.already_done = len(self.ledger.done)
        self.committer = _Committer(self.ledger)
        self._active = 0
        self._failing = 0
        self._changed = asyncio.Event()
        self._stop = asyncio.Event()
        prompts = self._todo()
        workers = [asyncio.create_task(self._worker(prompts)) for _ in range(self.job.concurrency)]
        ticker = asyncio.create_task(self._tick()) if self.progress else None
        everyone = asyncio.gather(*workers)
        everyone.add_done_callback(_retrieved)
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            with collector_tuned():
                await asyncio.wait((everyone, stopped), return_when=asyncio.FIRST_COMPLETED)
                if everyone.done():
                    everyone.result()  # the first bug raises; expected failures are rejects
        finally:
            stopped.cancel()
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await self.committer.close()  # what finished is written, even on Ctrl-C
            if ticker:
                ticker.cancel()
            await self.teacher.aclose()
            self.stats.in_flight = 0
            self.stats.skipped = self._skipped
            self.stats.reasons = dict(self.reasons)
            self.stats.elapsed_s = time.monotonic() - self.started
            if self.progress:
                self.progress.render(self, final=True)
        return self.stats

    async def _worker(self, prompts: Iterator[Prompt]) -> None:
        """One of ``concurrency`` slots: takes the next prompt as soon as its last one is
        written. Starting the next request in the same step (rather than waking a
        dispatcher that starts a task) keeps a slot's idle time to one loop pass."""
        while not self._stop.is_set():
            while self._enough():
                if self._active == 0 and self.committer is not None and not self.committer.pending:
                    return  # the limit is met, and nothing that could fail is left
                changed = self._changed
                await changed.wait()  # a prompt settled: maybe one more is needed now
            prompt = next(prompts, None)
            if prompt is None or self._stop.is_set():
                return
            wait = self.pacer.delay()
            if wait > 0:
                await asyncio.sleep(wait)
            started = time.monotonic()
            self._active += 1
            self.stats.in_flight = self._active
            try:
                await self._one(prompt)
            finally:
                self.pacer.observe(time.monotonic() - started)
                self._active -= 1
                self.stats.in_flight = self._active
                if self.job.limit is not None:
                    self._settled()

    def _settled(self) -> None:
        """Wake the slots waiting on the limit (a record was written or dropped)."""
        self._changed.set()
        self._changed = asyncio.Event()

    def _enough(self) -> bool:
        """Whether the records written plus those in flight already reach the limit."""
        if self.job.limit is None:
            return False
        pending = self.committer.pending if self.committer is not None else 0
        return len(self.ledger.done) + self._active + pending >= self.job.limit

    def _todo(self) -> Iterator[Prompt]:
        """Prompts not yet done anywhere, each claimed for this process.

        Claims go in batches of up to ``min(concurrency, 64)``: one lock for many
        prompts, and never more than about one round of work held ahead."""
        size = max(1, min(self.job.concurrency, 64))
        candidates = self._unsettled()
        while not self.ledger.full:
            batch = list(islice(candidates, size))
            if not batch:
                return
            taken = set(self.ledger.claim_many([p.id for p in batch]))
            for prompt in batch:
                if prompt.id in taken:
                    taken.discard(prompt.id)  # a repeat in the source runs once
                    yield prompt
                else:
                    self._skipped += 1

    def _unsettled(self) -> Iterator[Prompt]:
        """The source's prompts that this process does not already know to be settled.

        Called once per source prompt on a resume (a million times at 1M records), so
        it reads the ledger's sets directly and counts in a plain int."""
        done, attempts, most = self.ledger.done, self.ledger.attempts, self.ledger.max_attempts

        def settled(key: int) -> bool:
            if key in done or (attempts and attempts.get(key, 0) >= most):
                self._skipped += 1
                return True
            return False

        fast = getattr(self.source, "iter_unsettled", None)
        if callable(fast):  # the built-in sources skip without building pydantic Prompts
            yield from fast(settled)
            return
        for prompt in self.source.iter_prompts():
            if not settled(int(prompt.id, 16)):
                yield prompt

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.progress.interval if self.progress else 1.0)
            if self.progress:
                self.progress.render(self)


class _Committer:
    """Group commit: records and rejects that finish in the same event-loop pass go to
    the ledger together (one lock, one append per file), written by the loop itself.

    A slot is freed only once its record is written, so ``kill -9`` still loses only
    the requests in flight. The write is a few short syscalls (like the claims, which
    always ran on the loop); handing it to a worker thread cost more than it saved,
    because the thread must win the GIL back from a busy loop after every syscall.
    The fsync that guards against a power cut is the slow part (milliseconds under
    load): it runs in a thread, at most every ``SYNC_EVERY_S`` and when the run ends,
    and nobody waits for it. A power cut can lose the last second of records; a
    resume redoes them."""

    SYNC_EVERY_S = 1.0

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._records: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self._rejects: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self._scheduled = False
        self._synced = time.monotonic()
        self._dirty = False
        self._sync_task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Records waiting for the next write."""
        return len(self._records)

    async def record(self, row: dict[str, Any]) -> bool:
        """Write a record; False when another process (or an earlier batch) wrote its
        prompt first, or the limit was reached. A cancelled caller's row is still written."""
        return await self._queue(self._records, row)

    async def reject(self, row: dict[str, Any]) -> None:
        await self._queue(self._rejects, row)

    async def _queue(
        self, queue: list[tuple[dict[str, Any], asyncio.Future[bool]]], row: dict[str, Any]
    ) -> bool:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        queue.append((row, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self.flush)  # after everything else ready in this pass
        return await asyncio.shield(future)

    def flush(self, *, raise_errors: bool = False) -> None:
        """Write what is queued (one `Ledger.commit_many`) and answer its callers. A
        failed write (a full disk) reaches every caller of the batch; from the loop's
        callback that is where it belongs, from `close` it is raised too."""
        self._scheduled = False
        records, self._records = self._records, []
        rejects, self._rejects = self._rejects, []
        if not records and not rejects:
            return
        try:
            written = self.ledger.commit_many(
                [r for r, _ in records], [r for r, _ in rejects], fsync=False
            )
        except BaseException as exc:
            for _, future in records + rejects:
                if not future.done():
                    future.set_exception(exc)
            if raise_errors:
                raise
            return
        for (_, future), ok in zip(records, written):
            if not future.done():
                future.set_result(ok)
        for _, future in rejects:
            if not future.done():
                future.set_result(True)
        self._dirty = True
        if time.monotonic() - self._synced >= self.SYNC_EVERY_S and (
            self._sync_task is None or self._sync_task.done()
        ):
            self._synced = time.monotonic()
            self._dirty = False
            self._sync_task = asyncio.get_running_loop().create_task(
                asyncio.to_thread(self.ledger.sync)
            )

    async def close(self) -> None:
        """Write whatever is still queued, then fsync it."""
        self.flush(raise_errors=True)
        if self._sync_task is not None:
            await asyncio.gather(self._sync_task, return_exceptions=True)
        if self._dirty:
            self._dirty = False
            await asyncio.to_thread(self.ledger.sync)


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
        line = (
            f"{total}{target} done (+{s.written} now), {s.rejected} rejected, {s.retried} retried, "
            f"{s.in_flight} in flight, {rate * 60:.1f}/min{eta}, {s.usage.total_tokens} tokens"
        )
        if self.tty and not final:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(("\r\033[K" if self.tty else "") + line + "\n")
        self.stream.flush()


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark a gather's outcome as seen: after a stop, cancelled workers leave it one."""
    if not future.cancelled():
        future.exception()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def write_manifest(
    job: GenerateJob,
    teacher: Teacher,
    source: PromptSource,
    stats: GenerateStats | None,
    exit_code: int | None = None,
) -> Path:
    """The run's config beside the output: `hegelion status` reads the limit and model."""
    path = job.output.with_name(job.output.name + ".manifest.json")
    manifest = StageManifest(
        stage="generate",
        outputs=[str(job.output), str(job.rejects_path)],
        config=redact(
            {
                "job": job.model_dump(mode="json"),
                "teacher": teacher.name,
                "teacher_options": teacher.options.model_dump(mode="json"),
                "source": source.name,
                "source_options": source.options.model_dump(mode="json"),
            }
        ),
        counts=(
            {
                "written": stats.written,
                "rejected": stats.rejected,
                "retried": stats.retried,
                "already_done": stats.already_done,
                "not_counted": stats.not_counted,
                "scrubbed": stats.scrubbed,
                "stopped": int(stats.stopped is not None),
                "exit_code": int(stats.exit_code if exit_code is None else exit_code),
            }
            if stats
            else {}
        ),
        versions={"hegelion-core": __version__},
    )
    with atomic_output(path) as tmp:
        tmp.write_bytes(dumps(manifest.model_dump(mode="json")))
    return path


def run_generate(
    job: GenerateJob, teacher: Teacher, source: PromptSource, *, progress: bool = True
) -> GenerateStats:
    """Run a generation job to the end, an early stop (``stats.stopped``), Ctrl-C
    (`KeyboardInterrupt`) or SIGTERM (`Terminated`), writing the manifest around it.
    Every way out leaves what finished written."""
    write_manifest(job, teacher, source, None)
    config = {"job": job.model_dump(mode="json"), "teacher": teacher.name, "pid": os.getpid()}
    with hooks.command_run("generate", config) as run:
        gen = Generator(job, teacher, source, Progress() if progress else None)
        code: int | None = None
        try:
            return asyncio.run(_terminable(gen))
        except BaseException as exc:
            code = {KeyboardInterrupt: ExitCode.INTERRUPTED, Terminated: ExitCode.TERMINATED}.get(
                type(exc), 1
            )
            raise
        finally:
            write_manifest(job, teacher, source, gen.stats, code)
            run.summary = gen.stats


async def _terminable(gen: Generator) -> GenerateStats:
    """``gen.run()``, with SIGTERM handled like Ctrl-C (the run is cancelled and closes
    its files) and then raised as `Terminated`."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    terminated = False

    def on_sigterm() -> None:
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
        return await gen.run()
    try:
        return await gen.run()
    except asyncio.CancelledError:
        if terminated:
            raise Terminated("terminated (SIGTERM)") from None
        raise
    finally:
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(signal.SIGTERM)
