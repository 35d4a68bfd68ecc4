"""Starting a batch run and opening one again from its store (another process, later)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hegelion_core.contracts import BatchLimits, BatchTeacher, PromptSource, Teacher
from hegelion_core.errors import HegelionError
from hegelion_core.generation.batch.rounds import BatchRun
from hegelion_core.generation.batch.store import JobStore, RunSettings
from hegelion_core.generation.generate import GenerateJob
from hegelion_core.secrets import MASK, redact

#: Settings that must match when ``generate --batch`` is rerun on a store: anything
#: else would replay the stored answers into a different dialectic.
_SAME = ("dialectic", "system", "max_retries")


def batch_teacher(teacher: Teacher) -> BatchTeacher:
    """The teacher's batch API, or a clear error naming the teachers that have one."""
    make = getattr(teacher, "batch", None)
    if not callable(make):
        raise HegelionError(
            f"the {teacher.name!r} teacher has no batch API; --batch works with the openai, "
            "anthropic and kimi teachers (see docs/batch.md), or drop --batch"
        )
    batch = make()
    if not isinstance(batch, BatchTeacher):
        raise HegelionError(f"the {teacher.name!r} teacher's batch() is not a BatchTeacher")
    return batch


def limits_for(batch: BatchTeacher, max_requests: int | None, max_bytes: int | None) -> BatchLimits:
    """The provider's limits, lowered (never raised) by the options."""
    own = batch.limits
    return BatchLimits(
        max_requests=min(max_requests or own.max_requests, own.max_requests),
        max_bytes=min(max_bytes or own.max_bytes, own.max_bytes),
    )


def start(
    job: GenerateJob,
    teacher: Teacher,
    teacher_name: str,
    source: PromptSource,
    *,
    max_requests: int | None = None,
    max_bytes: int | None = None,
) -> BatchRun:
    """The batch run for ``job``: a new store, or the existing one when its settings
    agree (a rerun resumes it)."""
    store = JobStore(job.output)
    batch = batch_teacher(teacher)
    settings = RunSettings(
        teacher=teacher_name,
        teacher_options=redact(teacher.options.model_dump(mode="json")),
        source=source.name,
        source_options=redact(source.options.model_dump(mode="json")),
        job=job.model_dump(mode="json"),
        max_requests=max_requests,
        max_bytes=max_bytes,
    )
    if store.exists:
        before = store.settings()
        changed = [k for k in _SAME if before.job.get(k) != settings.job.get(k)]
        if before.teacher != teacher_name or before.teacher_options.get(
            "model"
        ) != settings.teacher_options.get("model"):
            changed.append("teacher")
        if changed:
            raise HegelionError(
                f"{store.dir}: a batch run with other settings ({', '.join(changed)}) is "
                f"here; collect it with `hegelion batch collect {job.output}`, or write "
                "to another --output"
            )
    else:
        store.create(settings)
    return BatchRun(
        store, job, teacher, batch, source, limits=limits_for(batch, max_requests, max_bytes)
    )


def reopen(output: Path, teacher_overrides: dict[str, Any] | None = None) -> BatchRun:
    """The batch run writing ``output``, rebuilt from its store. Options masked in
    ``run.json`` (a key inside ``extra_body``) must come again in ``teacher_overrides``."""
    from hegelion_core.plugins import make_driver

    store = JobStore(output)
    settings = store.settings()
    options = {**settings.teacher_options, **(teacher_overrides or {})}
    masked = sorted(k for k, v in _flat(options) if v == MASK or (isinstance(v, str) and MASK in v))
    if masked:
        raise HegelionError(
            f"{store.run_path}: the teacher's {', '.join(masked)} held a credential, which "
            "is never stored; give it again with -t KEY=VALUE"
        )
    teacher = make_driver("teachers", settings.teacher, options)
    source: PromptSource | None = None
    if MASK not in str(settings.source_options):
        try:
            source = make_driver("prompt_sources", settings.source, settings.source_options)
        except HegelionError:
            source = None  # no top-up: the prompts already taken still finish
    job = GenerateJob.model_validate(settings.job)
    batch = batch_teacher(teacher)
    return BatchRun(
        store,
        job,
        teacher,
        batch,
        source,
        limits=limits_for(batch, settings.max_requests, settings.max_bytes),
    )


def _flat(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [kv for k, v in value.items() for kv in _flat(v, f"{prefix}{k}.")]
    return [(prefix.rstrip("."), value)]
