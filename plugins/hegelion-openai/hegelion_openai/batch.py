"""OpenAI's Batch API for the ``openai`` teacher: the same request bodies at half price.

Each request is one line of a JSONL file (``{"custom_id", "method": "POST", "url":
"/v1/chat/completions", "body"}``) uploaded with ``files.create(purpose="batch")``;
``batches.create`` runs it within 24 hours. The body is exactly what the live teacher
sends (`OpenAITeacher._request`, with ``json_schema`` at the level the teacher uses
now; a server that rejects it answers that request with an error, which is retried or
rejected like a live one: there is no second try at a lower level inside a batch).

Recovery after a crash: the file is named after the job's tag and the job carries it
in ``metadata``, so `find` finds a job (or an uploaded file) whose id was never
recorded, and nothing is uploaded or submitted twice. Results come from the output
file and the error file; an answer is read by the live teacher's own parser.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from hegelion_core import (
    BatchJob,
    BatchLimits,
    BatchRequest,
    BatchResult,
    BatchState,
    BatchTeacher,
    Completion,
    TeacherError,
    blame_of,
    finish_reason_of,
    retryable_status,
    scrub,
)

if TYPE_CHECKING:
    from hegelion_openai.teacher import OpenAITeacher

#: OpenAI's limits per batch input file (50,000 requests, 200 MB).
OPENAI_LIMITS = BatchLimits(max_requests=50_000, max_bytes=200 * 1024 * 1024)
#: Where the tag goes in a job's metadata.
TAG_KEY = "hegelion_tag"
ENDPOINT = "/v1/chat/completions"

_STATES: dict[str, BatchState] = {
    "validating": "in_progress",
    "in_progress": "in_progress",
    "finalizing": "in_progress",
    "completed": "ended",
    "failed": "failed",
    "expired": "expired",
    "cancelling": "cancelling",
    "cancelled": "cancelled",
}


class OpenAIBatch(BatchTeacher):
    """The Files and Batches endpoints, through the official SDK's methods."""

    limits = OPENAI_LIMITS
    #: ``batches.create``'s window (OpenAI takes only 24h; Moonshot 12h to 7d).
    completion_window = "24h"

    teacher: OpenAITeacher

    def body(self, request: BatchRequest) -> dict[str, Any]:
        """The chat completion body the live teacher would send for this call."""
        from hegelion_openai.teacher import _with_schema

        live = self.teacher._request(request.messages, request.max_tokens, request.temperature)
        if request.json_schema is not None:
            live = _with_schema(live, request.json_schema, self.teacher.structured_output)
        body = {
            k: v
            for k, v in live.items()
            if k not in ("timeout", "extra_body", "stream", "stream_options")
        }
        body.update(live.get("extra_body") or {})  # as the SDK merges extra_body
        return body

    def line(self, request: BatchRequest) -> bytes:
        return orjson.dumps(
            {
                "custom_id": request.custom_id,
                "method": "POST",
                "url": ENDPOINT,
                "body": self.body(request),
            }
        )

    def request_bytes(self, request: BatchRequest) -> int:
        return len(self.line(request)) + 1

    def read_answer(self, body: Any) -> Completion:
        """A chat completion body as the live teacher reads it (`TeacherError` if bad)."""
        from hegelion_openai.teacher import _parse_completion

        text, finish, usage, model = _parse_completion(orjson.dumps(body))
        return Completion(
            text=text,
            model=model or self.teacher.options.model,
            usage=usage,
            finish_reason=finish_reason_of(finish),
        )

    # ----- the endpoints ----------------------------------------------------------------

    async def submit(self, requests: Sequence[BatchRequest], *, tag: str) -> str:
        client = self.teacher.client()
        data = b"".join(self.line(r) + b"\n" for r in requests)

        async def go() -> str:
            file_id = await self._uploaded(client, tag)
            if file_id is None:
                uploaded = await client.files.create(
                    file=(f"hegelion-{tag}.jsonl", data, "application/jsonl"), purpose="batch"
                )
                file_id = uploaded.id
            job = await client.batches.create(
                input_file_id=file_id,
                endpoint=ENDPOINT,
                completion_window=self.completion_window,
                metadata={TAG_KEY: tag},
            )
            return str(job.id)

        return await self.teacher.guarded(go)

    async def _uploaded(self, client: Any, tag: str) -> str | None:
        """A file uploaded for ``tag`` by a run killed before it created the job."""
        name = f"hegelion-{tag}.jsonl"
        try:
            async for f in client.files.list(purpose="batch"):
                if getattr(f, "filename", None) == name:
                    return str(f.id)
        except Exception as exc:  # a server without files.list: upload afresh
            if self.teacher.to_teacher_error(exc) is None:
                raise
        return None

    async def find(self, tag: str, *, count: int, since: float, known: set[str]) -> str | None:
        client = self.teacher.client()

        async def go() -> str | None:
            async for job in client.batches.list(limit=100):
                if (job.metadata or {}).get(TAG_KEY) == tag:
                    return str(job.id)
                if job.created_at is not None and job.created_at < since:
                    return None  # newest first: older jobs cannot be ours
            return None

        return await self.teacher.guarded(go)

    async def poll(self, job_id: str) -> BatchJob:
        client = self.teacher.client()
        job = await self.teacher.guarded(lambda: client.batches.retrieve(job_id))
        counts = job.request_counts
        return BatchJob(
            id=job.id,
            state=_STATES.get(job.status, "in_progress"),
            provider_status=job.status,
            total=counts.total if counts else 0,
            succeeded=counts.completed if counts else 0,
            failed=counts.failed if counts else 0,
            created_at=job.created_at,
        )

    async def results(self, job_id: str, requests: Mapping[str, BatchRequest]) -> list[BatchResult]:
        client = self.teacher.client()

        async def go() -> list[BatchResult]:
            job = await client.batches.retrieve(job_id)
            out: list[BatchResult] = []
            for file_id in (job.output_file_id, job.error_file_id):
                if file_id:
                    content = await client.files.content(file_id)
                    out += [self._result(line) for line in content.content.splitlines() if line]
            return out

        return await self.teacher.guarded(go)

    def _result(self, line: bytes) -> BatchResult:
        row = orjson.loads(line)
        custom_id = str(row.get("custom_id"))
        error = row.get("error") or {}
        code = str(error.get("code") or "")
        if code == "batch_expired":
            return BatchResult(custom_id=custom_id, status="expired", error=error.get("message"))
        if code == "batch_cancelled":
            return BatchResult(custom_id=custom_id, status="cancelled", error=error.get("message"))
        response = row.get("response") or {}
        status = response.get("status_code")
        body = response.get("body")
        if status == 200 and isinstance(body, dict):
            try:
                return BatchResult(
                    custom_id=custom_id, status="succeeded", completion=self.read_answer(body)
                )
            except TeacherError as exc:
                return _errored(custom_id, str(exc), exc.status, exc.retryable, exc.blame)
        message = error.get("message") or _body_message(body) or "failed in the batch"
        status = status if isinstance(status, int) else None
        retryable = retryable_status(status) or status is None
        return _errored(custom_id, message, status, retryable, blame_of(status, retryable))

    async def cancel(self, job_id: str) -> None:
        client = self.teacher.client()
        await self.teacher.guarded(lambda: client.batches.cancel(job_id))


def _body_message(body: Any) -> str | None:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return None


def _errored(
    custom_id: str, message: str, status: int | None, retryable: bool, blame: Any
) -> BatchResult:
    return BatchResult(
        custom_id=custom_id,
        status="errored",
        error=scrub(message)[:1000],
        http_status=status,
        retryable=retryable,
        blame=blame,
    )
