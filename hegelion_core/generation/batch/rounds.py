"""One step of a batch run: recover, collect, replay, top up, submit.

`step` is all that ``generate --batch``, ``batch collect`` and each poll of
``collect --wait`` do, under the store's lock:

1. **Recover** every intent without a job id (a crash between writing it and recording
   the job): the provider is asked for the job (`BatchTeacher.find`); only if it has
   none is the intent submitted now, so nothing goes out twice.
2. **Collect** each ended job: its results are stored, then marked collected. A request
   a final job holds no result for counts as expired, cancelled or failed (the job's
   state says which), never as the prompt's fault.
3. **Replay** every open prompt: the same `DialecticEngine` as live generation, on the
   stored answers. It finishes (a record, through the ledger with the live rules:
   quality, truncation, plugin filters), fails for its own fault (a reject, and the
   prompt is closed), fails for the service's or the key's (the prompt stays open:
   *held*), or stops at requests not answered yet (all of a council's critics at once).
   As live, held prompts stop the run early (`StepReport.stopped`, exit 5) when the key
   is refused, when ``--stop-after-failures`` of them are held, or when nothing else
   moves; the stop is stored, and the next step asks their requests again.
4. **Top up** with new prompts from the source, up to ``--limit`` counting records
   written and prompts in flight.
5. **Submit** the new requests as jobs below the limits: the requests and the intent
   are stored before anything is uploaded, the job id after.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Field

from hegelion_core import hooks
from hegelion_core.contracts import (
    BatchJob,
    BatchLimits,
    BatchResult,
    BatchTeacher,
    Blame,
    PromptSource,
    Teacher,
)
from hegelion_core.generation.batch.replay import Pending, Replay
from hegelion_core.generation.batch.split import split
from hegelion_core.generation.batch.store import Asked, Intent, JobStore, digest
from hegelion_core.generation.dialectic import DialecticEngine, PhaseFailed
from hegelion_core.generation.generate import GenerateJob, reject_row
from hegelion_core.generation.ledger import Ledger
from hegelion_core.generation.reasons import reject_label
from hegelion_core.records import Prompt, TraceRecord, Usage


class JobView(BaseModel):
    """A provider job as ``batch status`` shows it."""

    tag: str
    round: int
    job_id: str | None
    requests: int
    state: str  # the provider's state, or "not submitted" / "collected"
    succeeded: int = 0
    failed: int = 0


class StepReport(BaseModel):
    """Where the run stands after a step."""

    written: int = 0  # records written by this step
    rejected: int = 0  # prompts rejected by this step
    done: int = 0  # records in the output in all
    limit: int | None = None
    open_prompts: int = 0  # taken, neither written nor rejected
    waiting: int = 0  # requests submitted, not answered yet
    submitted_jobs: int = 0  # jobs this step submitted
    submitted_requests: int = 0
    recovered_jobs: int = 0  # intents whose job was found at the provider
    collected_jobs: int = 0
    in_progress_jobs: int = 0
    cancelled: bool = False
    stopped: str | None = None  # why this step stopped the run early (exit 5)
    not_counted: int = 0  # prompts held for failures not their own (they stay open)
    usage: Usage = Field(default_factory=Usage)
    reasons: dict[str, int] = Field(default_factory=dict)
    scrubbed: int = 0
    jobs: list[JobView] = Field(default_factory=list)

    @property
    def finished(self) -> bool:
        """Nothing open: every prompt taken is written or rejected (or the run was
        cancelled and nothing is in flight)."""
        if self.cancelled:
            return self.in_progress_jobs == 0
        return self.open_prompts == 0


class _Outcome:
    __slots__ = ("held", "prompt", "record", "reject", "replay")

    def __init__(self, prompt: Prompt, replay: Replay) -> None:
        self.prompt = prompt
        self.replay = replay
        self.record: dict[str, Any] | None = None
        self.reject: dict[str, Any] | None = None  # the prompt's own failure: closes it
        self.held: dict[str, Any] | None = None  # the service's or the key's: stays open


class BatchRun:
    """A batch run on one output: its store, teacher, source and job."""

    def __init__(
        self,
        store: JobStore,
        job: GenerateJob,
        teacher: Teacher,
        batch: BatchTeacher,
        source: PromptSource | None,
        *,
        limits: BatchLimits,
    ) -> None:
        self.store = store
        self.job = job
        self.teacher = teacher
        self.batch = batch
        self.source = source
        self.limits = limits
        self._source_iter: Iterator[Prompt] | None = None  # kept across steps (--wait)

    def ledger(self) -> Ledger:
        ledger = Ledger(
            self.job.output,
            self.job.rejects_path,
            max_attempts=max(self.job.max_retries, 1),
            limit=self.job.limit,
        )
        ledger.refresh()
        return ledger

    async def step(self, *, submit: bool = True) -> StepReport:
        with self.store.locked():
            return await self._step(submit)

    async def _step(self, submit: bool) -> StepReport:
        report = StepReport(limit=self.job.limit)
        store = self.store
        intents, report.cancelled = store.jobs()
        asked = store.requests()
        await self._recover(intents, asked, report)
        results = store.results()
        await self._collect(intents, asked, results, report)

        ledger = self.ledger()
        submitted = {c for i in intents for c in i.custom_ids}
        current = {c for i in intents if i.current for c in i.custom_ids}
        taken, closed = store.prompts()
        open_prompts = [
            _prompt(row)
            for pid, row in taken.items()
            if pid not in closed and int(pid, 16) not in ledger.done
        ]
        outcomes = [await self._replay(p, results, submitted, current) for p in open_prompts]
        self._settle(outcomes, ledger, report)

        if not report.cancelled:
            fresh = self._top_up(ledger, taken, sum(1 for o in outcomes if _open(o)))
            if fresh:
                store.add_prompts(
                    {
                        "prompt_id": p.id,
                        "text": p.text,
                        "system": p.system,
                        "source": p.source,
                        "meta": p.meta,
                    }
                    for p in fresh
                )
                more = [await self._replay(p, results, submitted, current) for p in fresh]
                self._settle(more, ledger, report)
                outcomes += more

        report.open_prompts = sum(1 for o in outcomes if _open(o))
        moving = [o for o in outcomes if _open(o) and o.held is None]
        report.waiting = sum(o.replay.waiting for o in moving)
        new = [(o.prompt.id, phase, r) for o in moving for phase, r in o.replay.new]
        held = [o for o in outcomes if o.held is not None]
        if held and not report.cancelled:
            self._hold(held, ledger, report, moves=bool(new or report.waiting))
        if new and submit and not report.cancelled and not report.stopped:
            await self._submit(new, intents, report)
        report.done = len(ledger.done)
        report.jobs = _views(self.store.jobs()[0], self._polled)
        return report

    # ----- 1 and 2: recover and collect -----------------------------------------------

    _polled: dict[str, BatchJob]

    async def _recover(
        self, intents: list[Intent], asked: dict[str, Asked], report: StepReport
    ) -> None:
        known = {i.job_id for i in intents if i.job_id}
        for intent in intents:
            if intent.job_id is not None:
                continue
            found = await self.batch.find(
                intent.tag, count=len(intent.custom_ids), since=intent.t - 60, known=known
            )
            if found is not None:
                report.recovered_jobs += 1
            elif report.cancelled:
                continue  # never submitted, and the run is cancelled: it stays unsent
            else:
                found = await self.batch.submit(
                    [asked[c].request for c in intent.custom_ids], tag=intent.tag
                )
                report.submitted_jobs += 1
                report.submitted_requests += len(intent.custom_ids)
            self.store.submitted(intent.tag, found)
            intent.job_id = found
            known.add(found)
            if report.cancelled:
                await self.batch.cancel(found)

    async def _collect(
        self,
        intents: list[Intent],
        asked: dict[str, Asked],
        results: dict[str, BatchResult],
        report: StepReport,
    ) -> None:
        self._polled = {}
        for intent in intents:
            if intent.job_id is None or intent.collected:
                continue
            job = await self.batch.poll(intent.job_id)
            self._polled[intent.tag] = job
            if not job.final:
                report.in_progress_jobs += 1
                continue
            ours = {c: asked[c].request for c in intent.custom_ids if c in asked}
            got = [] if job.state == "failed" else await self.batch.results(intent.job_id, ours)
            fresh = [r for r in got if r.custom_id in ours and r.custom_id not in results]
            seen = {r.custom_id for r in fresh} | results.keys()
            fresh += [_missing(c, job) for c in intent.custom_ids if c not in seen]
            self.store.add_results(intent.job_id, _unique(fresh))
            self.store.collected(intent.tag)
            intent.collected = True
            report.collected_jobs += 1
            for r in fresh:
                results.setdefault(r.custom_id, r)

    # ----- 3 and 4: replay and top up -------------------------------------------------

    async def _replay(
        self,
        prompt: Prompt,
        results: dict[str, BatchResult],
        submitted: set[str],
        current: set[str],
    ) -> _Outcome:
        replay = Replay(
            prompt.id, results, submitted, max_retries=self.job.max_retries, current=current
        )
        outcome = _Outcome(prompt, replay)
        engine = DialecticEngine(self.teacher, self.job.dialectic, call=replay.call)
        try:
            result = await engine.run(prompt.text)
        except Pending:
            return outcome
        except PhaseFailed as failed:
            blame: Blame = getattr(failed, "blame", "prompt")
            row = self._reject_row(prompt, failed.phase, failed.reason, blame, replay)
            if blame == "prompt":
                outcome.reject = row
            else:  # one line per failure, as live writes one per failed attempt
                outcome.held = {**row, "batch_key": replay.failed or prompt.id}
            return outcome
        record = TraceRecord.build(
            prompt.text,
            result.trace,
            system=prompt.system or self.job.system,
            source=prompt.source,
            teacher=self.teacher.name,
            model=replay.model or getattr(self.teacher.options, "model", None),
            timings={},
            usage=result.usage,
            truncated=result.truncated,
        )
        admitted = hooks.admit(record)
        if admitted is None:
            outcome.reject = self._reject_row(
                prompt, "filter", "rejected by plugin", "prompt", replay
            )
        else:
            outcome.record = admitted.model_dump(mode="json")
        return outcome

    def _reject_row(
        self, prompt: Prompt, phase: str, reason: str, blame: Blame, replay: Replay
    ) -> dict[str, Any]:
        model = replay.model or getattr(self.teacher.options, "model", None)
        return reject_row(
            prompt, phase, reason, blame, self.teacher.name, model,
            batch=True,
            batch_key=prompt.id,  # a prompt's own reject closes it: one per prompt
        )  # fmt: skip

    def _settle(self, outcomes: list[_Outcome], ledger: Ledger, report: StepReport) -> None:
        """Write the finished records and rejects (one ledger commit), then close the
        rejected prompts in the store. A crash between the two finds the reject written
        on the next step (its ``batch_key``) and only closes the prompt, as the ledger
        drops a record already written."""
        records = [o for o in outcomes if o.record is not None]
        rejects = [o for o in outcomes if o.reject is not None]
        if not records and not rejects:
            return
        already = self.store.written_rejects(self.job.rejects_path) if rejects else set()
        written = ledger.commit_many(
            [o.record for o in records if o.record is not None],
            [
                o.reject
                for o in rejects
                if o.reject is not None and o.reject["batch_key"] not in already
            ],
        )
        reasons: Counter[str] = Counter(report.reasons)
        for outcome, ok in zip(records, written):
            report.written += ok
            if ok and outcome.record is not None:
                report.usage = report.usage + Usage.model_validate(outcome.record["usage"])
                hooks.record_written(TraceRecord.model_validate(outcome.record), self.job.output)
        for outcome in rejects:
            row = outcome.reject or {}
            label = reject_label(row["phase"], row["reason"])
            if row["blame"] != "prompt":
                label += f" ({row['blame']}, not counted)"
            reasons[label] += 1
        report.rejected += len(rejects)
        report.reasons = dict(reasons)
        report.scrubbed += sum(o.replay.scrubbed for o in records)
        self.store.close_prompts(o.prompt.id for o in rejects)

    def _hold(
        self, held: list[_Outcome], ledger: Ledger, report: StepReport, *, moves: bool
    ) -> None:
        """Prompts whose requests failed for the service's or the key's sake stay open.
        The run stops early, as live generation does, on a refused key, on
        ``--stop-after-failures`` held prompts, or when nothing else is left to move:
        their failures are written as rejects not counted against them (once each,
        by ``batch_key``), then the stop is stored, so the next step asks again."""
        rows = [o.held for o in held if o.held is not None]
        report.not_counted = len(rows)
        last = rows[-1]
        what = f"the last: {last['phase']}: {last['reason']}"
        keep = (
            f"; nothing was counted against the prompts: `hegelion batch collect "
            f"{self.job.output}` submits them again"
        )
        limit = self.job.stop_after_failures
        auth = [r for r in rows if r["blame"] == "auth"]
        if auth:
            reason = (
                f"the provider refused the credentials ({auth[0]['phase']}: "
                f"{auth[0]['reason']}); fix the key{keep}"
            )
        elif limit and len(rows) >= limit:
            reason = (
                f"{len(rows)} prompts failed for reasons not their own ({what}); fix the "
                f"cause (is the service up?){keep}"
            )
        elif not moves and not report.in_progress_jobs:
            reason = f"{len(rows)} prompts failed for reasons not their own ({what}){keep}"
        else:
            return  # they wait while the rest of the run moves on
        already = self.store.written_rejects(self.job.rejects_path)
        ledger.commit_many([], [r for r in rows if r["batch_key"] not in already])
        self.store.stopped(reason)
        report.stopped = reason
        reasons: Counter[str] = Counter(report.reasons)
        for r in rows:
            reasons[reject_label(r["phase"], r["reason"]) + f" ({r['blame']}, not counted)"] += 1
        report.reasons = dict(reasons)

    def _top_up(self, ledger: Ledger, taken: dict[str, Any], in_flight: int) -> list[Prompt]:
        """New prompts from the source: all of them without a limit, else as many as the
        limit still wants beside the records written and the prompts in flight."""
        if self.source is None:
            return []
        want = None if self.job.limit is None else self.job.limit - len(ledger.done) - in_flight
        if want is not None and want <= 0:
            return []
        fresh: list[Prompt] = []
        seen: set[str] = set(taken)
        if self._source_iter is None:
            self._source_iter = iter(self.source.iter_prompts())
        # One pass over the source per process: a prompt read once is taken, or was
        # taken or settled already (and stays so), so the next round reads on from here.
        for prompt in self._source_iter:
            if prompt.id in seen or ledger.settled(prompt.id):
                continue
            seen.add(prompt.id)
            fresh.append(prompt)
            if want is not None and len(fresh) >= want:
                break
        return fresh

    # ----- 5: submit -------------------------------------------------------------------

    async def _submit(
        self, new: list[tuple[str, str, Any]], intents: list[Intent], report: StepReport
    ) -> None:
        unique: dict[str, tuple[str, str, Any]] = {}
        for item in new:
            unique.setdefault(item[2].custom_id, item)  # a repeat in the source asks once
        items = list(unique.values())
        parts = split(
            items,
            lambda item: self.batch.request_bytes(item[2]),
            max_requests=self.limits.max_requests,
            max_bytes=self.limits.max_bytes,
        )
        round_no = 1 + max((i.round for i in intents), default=0)
        self.store.add_requests(
            Asked(prompt_id=pid, phase=phase, request=request) for pid, phase, request in items
        )
        for n, part in enumerate(parts):
            ids = [request.custom_id for _, _, request in part]
            tag = f"r{round_no}p{n}-{secrets.token_hex(6)}"
            intent = Intent(
                tag=tag, round=round_no, custom_ids=ids, digest=digest(ids), t=time.time()
            )
            self.store.intend(intent)
            job_id = await self.batch.submit([r for _, _, r in part], tag=tag)
            self.store.submitted(tag, job_id)
            report.submitted_jobs += 1
            report.submitted_requests += len(ids)


def _prompt(row: dict[str, Any]) -> Prompt:
    return Prompt(
        id=row["prompt_id"],
        text=row["text"],
        system=row.get("system"),
        source=row.get("source"),
        meta=row.get("meta") or {},
    )


def _open(outcome: _Outcome) -> bool:
    return outcome.record is None and outcome.reject is None


def _missing(custom_id: str, job: BatchJob) -> BatchResult:
    """A request a final job holds no result for: the job's fault, never the prompt's."""
    status = {"expired": "expired", "cancelled": "cancelled"}.get(job.state, "errored")
    return BatchResult(
        custom_id=custom_id,
        status=status,
        error=f"no result in job {job.id} ({job.provider_status})",
        retryable=True,
        blame="service",
    )


def _unique(results: list[BatchResult]) -> list[BatchResult]:
    seen: set[str] = set()
    out = []
    for r in results:
        if r.custom_id not in seen:
            seen.add(r.custom_id)
            out.append(r)
    return out


def _views(intents: list[Intent], polled: dict[str, BatchJob]) -> list[JobView]:
    views = []
    for i in intents:
        job = polled.get(i.tag)
        state = (
            "collected"
            if i.collected
            else "not submitted"
            if i.job_id is None
            else (job.provider_status if job else "submitted")
        )
        views.append(
            JobView(
                tag=i.tag,
                round=i.round,
                job_id=i.job_id,
                requests=len(i.custom_ids),
                state=state,
                succeeded=job.succeeded if job else 0,
                failed=job.failed if job else 0,
            )
        )
    return views


def run_step(run: BatchRun, *, submit: bool = True) -> StepReport:
    """`BatchRun.step` from synchronous code, closing the teacher's clients after."""

    async def go() -> StepReport:
        try:
            return await run.step(submit=submit)
        finally:
            await run.batch.aclose()

    return asyncio.run(go())
