"""Anthropic's Message Batches for the ``anthropic`` teacher: the same requests at half price.

Each request is ``{"custom_id", "params"}`` where ``params`` is exactly what the live
teacher sends to ``messages.create`` (`AnthropicTeacher._request`: system turns joined,
structured output as the forced ``answer`` tool), created with
``messages.batches.create``; its results are read back by the live teacher's own
parser (`_read_message`), the tool's input unwrapped the same way.

Recovery after a crash: a message batch carries no metadata, so `find` lists the
batches created since the intent was written that the run does not know yet and takes
the one holding as many requests as the intent (``request_counts`` summed). The caller
then keeps only results whose ``custom_id`` the intent holds: custom_ids are digests of
the run's own requests, so a batch taken by mistake gives nothing that could be written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from hegelion_core import (
    BatchJob,
    BatchLimits,
    BatchRequest,
    BatchResult,
    BatchTeacher,
    Completion,
    TeacherError,
    blame_of,
    finish_reason_of,
    retryable_status,
    scrub,
)

if TYPE_CHECKING:
    from hegelion_anthropic.teacher import AnthropicTeacher

#: Anthropic's limits per message batch (100,000 requests or 256 MB).
ANTHROPIC_LIMITS = BatchLimits(max_requests=100_000, max_bytes=256 * 1024 * 1024)


class AnthropicBatch(BatchTeacher):
    """The Message Batches endpoints, through the official SDK's methods."""

    limits = ANTHROPIC_LIMITS

    teacher: AnthropicTeacher

    def params(self, request: BatchRequest) -> dict[str, Any]:
        """The ``messages.create`` parameters the live teacher would send for this call."""
        live, _ = self.teacher._request(
            request.messages, request.max_tokens, request.temperature, request.json_schema
        )
        params = {k: v for k, v in live.items() if k not in ("timeout", "extra_body")}
        params.update(live.get("extra_body") or {})  # as the SDK merges extra_body
        return params

    def entry(self, request: BatchRequest) -> dict[str, Any]:
        return {"custom_id": request.custom_id, "params": self.params(request)}

    def request_bytes(self, request: BatchRequest) -> int:
        return len(orjson.dumps(self.entry(request))) + 1

    def read_answer(self, message: Any, request: BatchRequest | None) -> Completion:
        """A result's message as the live teacher reads it (`TeacherError` if bad)."""
        from hegelion_anthropic.teacher import _read_message, tool_schema

        text, tool_input, stop_reason, usage, model = _read_message(message)
        finish = finish_reason_of(stop_reason)
        schema = request.json_schema if request is not None else None
        if schema is not None and tool_input is not None:
            _, wrapped = tool_schema(schema)
            value = tool_input.get("value") if wrapped else tool_input
            text = json.dumps(value, ensure_ascii=False)
            if finish == "tool_calls":  # the forced answer tool holds the whole answer
                finish = "stop"
        return Completion(
            text=text, model=model or self.teacher.options.model, usage=usage, finish_reason=finish
        )

    # ----- the endpoints ----------------------------------------------------------------

    async def submit(self, requests: Sequence[BatchRequest], *, tag: str) -> str:
        client = self.teacher.client()
        entries = [self.entry(r) for r in requests]
        job = await self.teacher.guarded(lambda: client.messages.batches.create(requests=entries))
        return str(job.id)

    async def find(self, tag: str, *, count: int, since: float, known: set[str]) -> str | None:
        client = self.teacher.client()

        async def go() -> str | None:
            async for job in client.messages.batches.list(limit=100):
                created = job.created_at.timestamp()
                if created < since:
                    return None  # newest first: older batches cannot be ours
                if job.id not in known and _total(job) == count:
                    return str(job.id)
            return None

        return await self.teacher.guarded(go)

    async def poll(self, job_id: str) -> BatchJob:
        client = self.teacher.client()
        job = await self.teacher.guarded(lambda: client.messages.batches.retrieve(job_id))
        counts = job.request_counts
        status = job.processing_status
        state = {"in_progress": "in_progress", "canceling": "cancelling"}.get(status, "ended")
        if state == "ended" and job.cancel_initiated_at is not None:
            state = "cancelled"
        return BatchJob(
            id=job.id,
            state=state,
            provider_status=status,
            total=_total(job),
            succeeded=counts.succeeded,
            failed=counts.errored + counts.canceled + counts.expired,
            created_at=job.created_at.timestamp(),
        )

    async def results(self, job_id: str, requests: Mapping[str, BatchRequest]) -> list[BatchResult]:
        client = self.teacher.client()

        async def go() -> list[BatchResult]:
            out = []
            async for row in await client.messages.batches.results(job_id):
                out.append(self._result(row, requests.get(row.custom_id)))
            return out

        return await self.teacher.guarded(go)

    def _result(self, row: Any, request: BatchRequest | None) -> BatchResult:
        custom_id = str(row.custom_id)
        result = row.result
        kind = getattr(result, "type", None)
        if kind == "succeeded":
            try:
                completion = self.read_answer(result.message, request)
            except TeacherError as exc:
                return BatchResult(
                    custom_id=custom_id,
                    status="errored",
                    error=scrub(str(exc))[:1000],
                    retryable=exc.retryable,
                    blame=exc.blame,
                )
            return BatchResult(custom_id=custom_id, status="succeeded", completion=completion)
        if kind == "expired":
            return BatchResult(custom_id=custom_id, status="expired")
        if kind == "canceled":
            return BatchResult(custom_id=custom_id, status="cancelled")
        from hegelion_anthropic.teacher import _ERROR_TYPE_STATUS

        error = getattr(getattr(result, "error", None), "error", None)
        error_type = str(getattr(error, "type", "") or "api_error")
        message = str(getattr(error, "message", "") or "errored in the batch")
        status = _ERROR_TYPE_STATUS.get(error_type, 500)
        retryable = retryable_status(status)
        return BatchResult(
            custom_id=custom_id,
            status="errored",
            error=scrub(f"{error_type}: {message}")[:1000],
            http_status=status,
            retryable=retryable,
            blame=blame_of(status, retryable),
        )

    async def cancel(self, job_id: str) -> None:
        client = self.teacher.client()
        await self.teacher.guarded(lambda: client.messages.batches.cancel(job_id))


def _total(job: Any) -> int:
    c = job.request_counts
    return int(c.processing + c.succeeded + c.errored + c.canceled + c.expired)
