"""``hegelion batch status``: each job's state, request counts and cost at batch prices.

Reads the store and asks the provider for the state of the jobs not collected yet;
it never collects, submits or writes anything, so it is safe beside a running
``collect --wait``. A job's cost is what its answers used where they are collected,
else an upper estimate: about four characters a prompt token, and the request's
``max_tokens`` (or the teacher's default) for the answer.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from hegelion_core.contracts import BatchJob
from hegelion_core.generation.batch.rounds import BatchRun
from hegelion_core.generation.dialectic import ASSUMED_MAX_TOKENS
from hegelion_core.generation.status import cost_usd, load_prices, price_for


class JobLine(BaseModel):
    tag: str
    round: int
    job_id: str | None
    state: str
    requests: int
    succeeded: int = 0
    failed: int = 0
    cost_usd: float | None = None
    estimated: bool = False  # not collected: an upper estimate


class BatchSummary(BaseModel):
    output: str
    model: str | None = None
    done: int = 0
    limit: int | None = None
    open_prompts: int = 0
    rejected_prompts: int = 0
    cancelled: bool = False
    jobs: list[JobLine] = Field(default_factory=list)
    spent_usd: float | None = None  # collected answers, at batch prices
    expected_usd: float | None = None  # spent plus the estimate for what is in flight


async def summarize(run: BatchRun, *, poll: bool = True) -> BatchSummary:
    store = run.store
    intents, cancelled = store.jobs()
    asked = store.requests()
    results = store.results()
    taken, closed = store.prompts()
    ledger = run.ledger()
    model = getattr(run.teacher.options, "model", None)
    price = price_for(model, load_prices()) if model else None
    default_out = getattr(run.teacher.options, "max_tokens", None) or ASSUMED_MAX_TOKENS
    summary = BatchSummary(
        output=str(run.job.output),
        model=model,
        done=len(ledger.done),
        limit=run.job.limit,
        open_prompts=sum(1 for p in taken if p not in closed and int(p, 16) not in ledger.done),
        rejected_prompts=len(closed),
        cancelled=cancelled,
    )
    spent = expected = 0.0
    for intent in intents:
        line = JobLine(
            tag=intent.tag,
            round=intent.round,
            job_id=intent.job_id,
            state="collected" if intent.collected else "not submitted",
            requests=len(intent.custom_ids),
        )
        if intent.job_id and not intent.collected:
            line.state = "submitted"
            if poll:
                job: BatchJob = await run.batch.poll(intent.job_id)
                line.state, line.succeeded, line.failed = (
                    job.provider_status,
                    job.succeeded,
                    job.failed,
                )
        if intent.collected:
            got = [results[c] for c in intent.custom_ids if c in results]
            line.succeeded = sum(1 for r in got if r.status == "succeeded")
            line.failed = len(got) - line.succeeded
            prompt_tokens = sum(r.completion.usage.prompt_tokens for r in got if r.completion)
            out_tokens = sum(r.completion.usage.completion_tokens for r in got if r.completion)
            if price is not None:
                line.cost_usd = cost_usd(prompt_tokens, out_tokens, price, batch=True)
                spent += line.cost_usd
        elif price is not None:
            prompt_tokens = out_tokens = 0
            for c in intent.custom_ids:
                request = asked[c].request if c in asked else None
                if request is not None:
                    prompt_tokens += sum(len(m.content) for m in request.messages) // 4
                    out_tokens += request.max_tokens or default_out
            line.cost_usd = cost_usd(prompt_tokens, out_tokens, price, batch=True)
            line.estimated = True
            expected += line.cost_usd
        if line.cost_usd is not None:
            line.cost_usd = round(line.cost_usd, 6)
        summary.jobs.append(line)
    if price is not None:
        summary.spent_usd = round(spent, 6)
        summary.expected_usd = round(spent + expected, 6)
    return summary


def render_summary(s: BatchSummary) -> str:
    target = f" of {s.limit}" if s.limit else ""
    lines = [
        f"{s.output}: {s.done}{target} written, {s.open_prompts} prompts in flight, "
        f"{s.rejected_prompts} rejected" + (" (cancelled)" if s.cancelled else "")
    ]
    for j in s.jobs:
        cost = ""
        if j.cost_usd is not None:
            cost = f", {'up to ' if j.estimated else ''}${j.cost_usd:.4f}"
        counts = f", {j.succeeded} succeeded, {j.failed} failed" if j.succeeded or j.failed else ""
        lines.append(
            f"  round {j.round} {j.job_id or '(not submitted)'}: {j.state}, "
            f"{j.requests} requests{counts}{cost}"
        )
    if s.expected_usd is not None:
        lines.append(
            f"cost at batch prices ({s.model}): ${s.spent_usd:.4f} spent, "
            f"${s.expected_usd:.4f} expected in all"
        )
    else:
        lines.append(f"cost: price unknown for {s.model!r} (see hegelion status --prices)")
    return "\n".join(lines)
