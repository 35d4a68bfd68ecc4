"""``hegelion batch status|collect|cancel OUTPUT``: a batch run, from any process, later.

``hegelion generate --batch`` submits the first round and exits (`start_batch`); these
commands find everything else in ``OUTPUT.batch/`` (see docs/batch.md).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hegelion_core.cli.options import parse_pairs
from hegelion_core.errors import HegelionError

if TYPE_CHECKING:
    from hegelion_core.contracts import PromptSource, Teacher
    from hegelion_core.generation.batch.rounds import BatchRun, StepReport
    from hegelion_core.generation.generate import GenerateJob

_OUTPUT = click.argument("output", type=click.Path(path_type=Path))
_TEACHER_PAIRS = click.option(
    "-t",
    "--teacher-option",
    "teacher_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A teacher option again (one that held a credential is never stored).",
)


def _run(coro: Any, stops: Path | None = None) -> Any:
    """Run a step, with a teacher failure (a bad key, a refused file) as a clear error.

    With ``stops`` (the output of a step that collects or submits), a failure that is
    the service's or the key's stops the run early as live generation does: a message
    and exit 5, nothing counted against any prompt, and the next collect goes on."""
    from hegelion_core.contracts import TeacherError
    from hegelion_core.generation.generate import ExitCode

    try:
        return asyncio.run(coro)
    except TeacherError as exc:
        if stops is None or exc.blame == "prompt":
            raise HegelionError(f"the batch service refused: {exc}") from None
        what = "refused the credentials" if exc.blame == "auth" else "failed"
        fix = "fix the key" if exc.blame == "auth" else "fix the cause (is the service up?)"
        click.echo(
            f"stopped early: the batch service {what} ({exc}); {fix}, then `hegelion batch "
            f"collect {stops}` goes on (nothing was counted against the prompts)",
            err=True,
        )
        sys.exit(int(ExitCode.STOPPED))


def _stop_if_stopped(report: StepReport) -> None:
    """Exit 5 with the reason when the step stopped the run early (as live does)."""
    from hegelion_core.generation.generate import ExitCode

    if report.stopped:
        click.echo(f"stopped early: {report.stopped}", err=True)
        sys.exit(int(ExitCode.STOPPED))


async def _step(run: BatchRun, *, close: bool = True) -> StepReport:
    try:
        return await run.step()
    finally:
        if close:
            await run.batch.aclose()


def start_batch(
    job: GenerateJob,
    teacher: Teacher,
    teacher_name: str,
    source: PromptSource,
    *,
    max_requests: int | None,
    max_bytes: int | None,
) -> None:
    """``generate --batch``: submit what is due (the first round, or a resumed run's
    next one), say how to collect it, and exit 0."""
    from hegelion_core import hooks
    from hegelion_core.generation.batch.runs import start
    from hegelion_core.generation.generate import write_manifest

    run = start(job, teacher, teacher_name, source, max_requests=max_requests, max_bytes=max_bytes)
    write_manifest(job, teacher, source, None)  # hegelion status reads the limit there
    config = {"job": job.model_dump(mode="json"), "teacher": teacher_name, "batch": True}
    with hooks.command_run("generate", config) as hooked:
        report = _run(_step(run), job.output)
        hooked.summary = report
    _echo_step(job.output, report)
    _stop_if_stopped(report)
    if not report.finished:
        click.echo(
            f"collect with: hegelion batch collect {job.output} (--wait polls until done); "
            f"see: hegelion batch status {job.output}"
        )


def _echo_step(output: Path, r: StepReport) -> None:
    parts = []
    if r.recovered_jobs:
        parts.append(f"found {r.recovered_jobs} jobs a killed run had submitted")
    if r.collected_jobs:
        parts.append(f"collected {r.collected_jobs} jobs")
    if r.written or r.rejected:
        parts.append(f"wrote {r.written} records, rejected {r.rejected} prompts")
    if r.submitted_jobs:
        parts.append(f"submitted {r.submitted_requests} requests in {r.submitted_jobs} jobs")
    if r.in_progress_jobs:
        parts.append(f"{r.in_progress_jobs} jobs in progress")
    target = f"/{r.limit}" if r.limit else ""
    state = "done" if r.finished else f"{r.open_prompts} prompts in flight"
    if r.stopped:
        state = f"{r.open_prompts} prompts open, stopped early"
    click.echo(
        f"{output}: {r.done}{target} records, {state}" + ("; " if parts else "") + "; ".join(parts)
    )
    for reason, n in sorted(r.reasons.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {n:>6}  {reason}")


@click.group("batch")
def batch_group() -> None:
    """Batch runs (``hegelion generate --batch``): status, collect, cancel."""


@batch_group.command("status")
@_OUTPUT
@_TEACHER_PAIRS
@click.option(
    "--no-poll", is_flag=True, help="Only what the store knows; ask the provider nothing."
)
@click.option("--json", "as_json", is_flag=True)
def status_command(
    output: Path, teacher_pairs: tuple[str, ...], no_poll: bool, as_json: bool
) -> None:
    """Each job's state, request counts and cost at batch prices. Changes nothing."""
    from hegelion_core.generation.batch.runs import reopen
    from hegelion_core.generation.batch.summary import render_summary, summarize

    run = reopen(output, parse_pairs(teacher_pairs))

    async def go() -> Any:
        try:
            return await summarize(run, poll=not no_poll)
        finally:
            await run.batch.aclose()

    summary = _run(go())
    click.echo(summary.model_dump_json(indent=2) if as_json else render_summary(summary))


@batch_group.command("collect")
@_OUTPUT
@_TEACHER_PAIRS
@click.option("--wait", is_flag=True, help="Poll until every prompt is written or rejected.")
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0),
    default=60,
    show_default=True,
    help="Seconds between polls with --wait.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress line.")
def collect_command(
    output: Path, teacher_pairs: tuple[str, ...], wait: bool, poll_interval: float, quiet: bool
) -> None:
    """Write the finished jobs' results as records and submit the next round.

    Idempotent: collecting again writes nothing twice and submits nothing twice. Exit
    status as generate's once the run is done: 0, 3 some prompts rejected, 4 all; 5
    stopped early (a refused key, failures not the prompts' own): collect again to go on.
    """
    from hegelion_core.generation.batch.runs import reopen

    run = reopen(output, parse_pairs(teacher_pairs))
    if not wait:
        report = _run(_step(run), output)
        _echo_step(output, report)
        _stop_if_stopped(report)
        sys.exit(_exit_code(run) if report.finished else 0)
    progress = _Progress(quiet)

    async def loop() -> StepReport:
        try:
            while True:
                report = await run.step()
                progress.render(report)
                if report.finished or report.stopped:
                    return report
                await asyncio.sleep(poll_interval)
        finally:
            await run.batch.aclose()

    try:
        report = _run(loop(), output)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: collect again with: hegelion batch collect {output}", err=True)
        sys.exit(130)
    progress.close()
    _echo_step(output, progress.totals(report))
    _stop_if_stopped(report)
    sys.exit(_exit_code(run))


def _exit_code(run: BatchRun) -> int:
    _, closed = run.store.prompts()
    done = len(run.ledger().done)
    if closed and not done:
        return 4
    return 3 if closed else 0


class _Progress:
    """The generator's progress style: one line, redrawn in place on a terminal."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.stream = sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.written = self.rejected = self.collected = self.submitted = self.requests = 0
        self.reasons: Counter[str] = Counter()

    def render(self, r: StepReport) -> None:
        self.written += r.written
        self.rejected += r.rejected
        self.collected += r.collected_jobs
        self.submitted += r.submitted_jobs
        self.requests += r.submitted_requests
        self.reasons.update(r.reasons)
        if self.quiet:
            return
        target = f"/{r.limit}" if r.limit else ""
        elapsed = time.monotonic() - self.started
        line = (
            f"{r.done}{target} done (+{self.written} now), {self.rejected} rejected, "
            f"{r.open_prompts} in flight, {r.waiting} requests waiting in "
            f"{r.in_progress_jobs} jobs, {int(elapsed)}s"
        )
        self.stream.write(("\r\033[K" + line) if self.tty else line + "\n")
        self.stream.flush()

    def totals(self, last: StepReport) -> StepReport:
        """The last step's standing with what every step of this command did."""
        return last.model_copy(
            update={
                "written": self.written,
                "rejected": self.rejected,
                "collected_jobs": self.collected,
                "submitted_jobs": self.submitted,
                "submitted_requests": self.requests,
                "reasons": dict(self.reasons),
            }
        )

    def close(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")


@batch_group.command("cancel")
@_OUTPUT
@_TEACHER_PAIRS
def cancel_command(output: Path, teacher_pairs: tuple[str, ...]) -> None:
    """Cancel the run: its jobs at the provider, and no further rounds. ``collect``
    afterwards still writes what finished; a rerun of ``generate --batch`` does not
    resume a cancelled run (write to another --output)."""
    from hegelion_core.generation.batch.runs import reopen

    run = reopen(output, parse_pairs(teacher_pairs))

    async def go() -> int:
        n = 0
        try:
            with run.store.locked():
                run.store.cancelled()
                intents, _ = run.store.jobs()
                for intent in intents:
                    if intent.job_id and not intent.collected:
                        job = await run.batch.poll(intent.job_id)
                        if not job.final:
                            await run.batch.cancel(intent.job_id)
                            n += 1
        finally:
            await run.batch.aclose()
        return n

    n = _run(go())
    click.echo(
        f"{output}: cancelled {n} jobs; `hegelion batch collect {output}` writes what finished"
    )
