"""Run a model on a suite's items through the Teacher contract, score, and write results.

The model under evaluation is a teacher like any other: a ``.gguf`` file runs on the
``llama-cpp`` teacher (hegelion-gguf), a directory (or hub id) on the ``transformers``
teacher (hegelion-trl). A missing plugin is `DriverNotFound` with its pip command.
Greedy decoding (temperature 0) by default, so a result can be reproduced.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hegelion_core.contracts import Teacher, TeacherError
from hegelion_core.errors import HegelionError
from hegelion_core.evaluation.items import BeliefRevisionItem, CalibrationItem, Suite, load_items
from hegelion_core.evaluation.results import EvalResult
from hegelion_core.evaluation.suites import (
    Answer,
    SuiteOutcome,
    score_calibration_suite,
    score_dialectic_suite,
    score_revision_suite,
)
from hegelion_core.records import DEFAULT_SYSTEM, Message

#: Per-call token budgets: a trace needs room, a short answer with a confidence does not.
DEFAULT_MAX_TOKENS: dict[str, int] = {"dialectic": 512, "calibration": 96, "belief-revision": 160}

Progress = Callable[[int, int], None]


class EvalJob(BaseModel):
    """Everything `hegelion eval` was asked, validated."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    suite: Suite
    model: str
    adapter: Path | None = None
    data: Path
    out: Path
    limit: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0)
    system: str = DEFAULT_SYSTEM  # dialectic suite: the system turn before each prompt
    concurrency: int = Field(1, ge=1)
    teacher_options: dict[str, Any] = Field(default_factory=dict)
    judge_teacher: str | None = None
    judge_options: dict[str, Any] = Field(default_factory=dict)


def model_teacher(model: str, adapter: Path | None, options: dict[str, Any]) -> tuple[str, Teacher]:
    """The teacher that runs ``model``: llama-cpp for a .gguf file, transformers otherwise
    (chosen in `hegelion_core.defaults.eval_teacher`, which says why)."""
    from hegelion_core.defaults import eval_teacher
    from hegelion_core.plugins import make_driver

    name, base = eval_teacher(model, adapter)
    return name, make_driver("teachers", name, base | options)


def dialectic_conversation(system: str, prompt: str) -> list[Message]:
    """What the dialectic suite sends for one prompt: the training rows' system turn, then
    the prompt (tests/pipeline/test_chat_template.py checks it token for token)."""
    return [Message(role="system", content=system), Message(role="user", content=prompt)]


async def collect(
    teacher: Teacher,
    conversations: Sequence[list[Message]],
    *,
    max_tokens: int,
    temperature: float,
    concurrency: int = 1,
    progress: Progress | None = None,
) -> list[Answer]:
    """One answer per conversation, in order; a failed call becomes an `Answer` with its error."""
    slots = asyncio.Semaphore(concurrency)
    done = 0

    async def one(messages: list[Message]) -> Answer:
        nonlocal done
        async with slots:
            start = time.perf_counter()
            try:
                c = await teacher.complete(messages, max_tokens=max_tokens, temperature=temperature)
                answer = Answer(c.text, time.perf_counter() - start, truncated=c.truncated)
            except TeacherError as exc:
                if not exc.retryable and done == 0:
                    raise HegelionError(f"the model failed on the first item: {exc}") from None
                answer = Answer("", time.perf_counter() - start, str(exc))
        done += 1
        if progress:
            progress(done, len(conversations))
        return answer

    return list(await asyncio.gather(*(one(m) for m in conversations)))


async def _judge_all(
    judge: Teacher, questions: Sequence[str], answers: Sequence[Answer]
) -> list[float | None]:
    from hegelion_core.data.parsing import parse_trace
    from hegelion_core.generation.dialectic import DialecticEngine, PhaseFailed

    engine = DialecticEngine(judge)
    scores: list[float | None] = []
    for question, ans in zip(questions, answers):
        parsed = parse_trace(ans.text)
        if ans.truncated or not parsed.ok:
            scores.append(None)  # nothing finished to judge: the format figures count it
            continue
        try:
            scores.append((await engine.judge(question, parsed.to_trace())).score)
        except PhaseFailed:
            scores.append(None)
    return scores


async def _run(
    job: EvalJob, teacher: Teacher, judge: Teacher | None, progress: Progress | None
) -> SuiteOutcome:
    max_tokens = job.max_tokens or DEFAULT_MAX_TOKENS[job.suite]
    ask = functools.partial(
        collect,
        teacher,
        max_tokens=max_tokens,
        temperature=job.temperature,
        concurrency=job.concurrency,
        progress=progress,
    )
    try:
        if job.suite == "dialectic":
            from hegelion_core.data.prompt_sources.file import FilePromptSource

            prompts = list(FilePromptSource({"path": job.data, "limit": job.limit}).iter_prompts())
            if not prompts:
                raise HegelionError(f"{job.data}: no prompts")
            convs = [dialectic_conversation(job.system, p.text) for p in prompts]
            answers = await ask(convs)
            scores = await _judge_all(judge, [p.text for p in prompts], answers) if judge else None
            return score_dialectic_suite([p.id for p in prompts], answers, scores)
        if job.suite == "calibration":
            items = load_items(job.data, CalibrationItem, limit=job.limit)
            answers = await ask([i.messages for i in items])
            return score_calibration_suite(items, answers)
        ritems = load_items(job.data, BeliefRevisionItem, limit=job.limit)
        answers = await ask([i.messages for i in ritems])
        return score_revision_suite(ritems, answers)
    finally:
        await teacher.aclose()
        if judge is not None:
            await judge.aclose()


def run_eval(
    job: EvalJob,
    *,
    teacher: Teacher | None = None,
    teacher_name: str | None = None,
    judge: Teacher | None = None,
    progress: Progress | None = None,
) -> EvalResult:
    """Evaluate and write ``results.json``, ``items.jsonl`` (and ``reliability.png``) to ``job.out``.

    ``teacher`` overrides the one `model_teacher` would pick (tests, other backends).
    """
    from hegelion_core.data.jsonl import atomic_output, dumps
    from hegelion_core.plugins import make_driver

    if teacher is None:
        teacher_name, teacher = model_teacher(job.model, job.adapter, job.teacher_options)
    if judge is None and job.judge_teacher:
        judge = make_driver("teachers", job.judge_teacher, job.judge_options)
    outcome = asyncio.run(_run(job, teacher, judge, progress))
    if outcome.counts.get("errors") == len(outcome.records):
        first = next(r.error for r in outcome.records if r.error)
        raise HegelionError(f"the model failed on every item; the first error: {first}")

    job.out.mkdir(parents=True, exist_ok=True)
    result = EvalResult(
        suite=job.suite,
        model=job.model,
        adapter=str(job.adapter) if job.adapter else None,
        teacher=teacher_name or type(teacher).name,
        data=str(job.data),
        judge=job.judge_teacher,
        counts=outcome.counts,
        metrics=outcome.metrics,
        by_category=outcome.by_category,
        bins=outcome.bins,
        notes=outcome.notes,
        generation={
            "max_tokens": job.max_tokens or DEFAULT_MAX_TOKENS[job.suite],
            "temperature": job.temperature,
            **({"system": job.system} if job.suite == "dialectic" else {}),
        },
        files={"items": "items.jsonl"},
    )
    if job.suite == "calibration":
        from hegelion_core.evaluation.plot import reliability_diagram

        title = f"{Path(job.model).name}{' + ' + job.adapter.name if job.adapter else ''}"
        if reliability_diagram(
            outcome.bins,
            job.out / "reliability.png",
            title=title,
            ece=float(outcome.metrics["ece"] or 0.0),
        ):
            result.files["plot"] = "reliability.png"
        else:
            result.notes.append(
                "no reliability diagram: matplotlib is missing (pip install 'hegelion-core[plot]')"
            )
    with atomic_output(job.out / "items.jsonl") as tmp:
        tmp.write_bytes(b"".join(dumps(r.model_dump(mode="json")) + b"\n" for r in outcome.records))
    with atomic_output(job.out / "results.json") as tmp:
        tmp.write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return result
