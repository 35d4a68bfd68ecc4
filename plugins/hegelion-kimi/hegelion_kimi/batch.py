"""Moonshot's Batch API for the ``kimi`` teacher: OpenAI's protocol, so hegelion-openai's
adapter with Kimi's own request body and answer reading.

Moonshot documents ``/v1/files`` (``purpose="batch"``, a ``.jsonl`` file of at most
100 MB, one model per file) and ``/v1/batches`` (create, retrieve, list, cancel;
``completion_window`` from 12h to 7d; ``metadata`` up to 16 pairs), the same shapes as
OpenAI's (platform.kimi.ai/docs/api/batch-create). Needs hegelion-openai
(``pip install 'hegelion-kimi[batch]'``).
"""

from __future__ import annotations

from typing import Any

from hegelion_core import (
    BatchLimits,
    BatchRequest,
    Completion,
    HegelionError,
    TeacherError,
)

try:
    from hegelion_openai.batch import OpenAIBatch
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise HegelionError(
        "the kimi teacher's --batch uses hegelion-openai's Batch API adapter: "
        "pip install 'hegelion-kimi[batch]' (or hegelion-openai)"
    ) from exc

from hegelion_kimi.api import _completion

#: Moonshot's limit per batch file (100 MB); it documents no request count, so OpenAI's.
KIMI_LIMITS = BatchLimits(max_requests=50_000, max_bytes=100 * 1024 * 1024)


class KimiBatch(OpenAIBatch):
    limits = KIMI_LIMITS
    completion_window = "24h"  # within Moonshot's 12h to 7d

    def body(self, request: BatchRequest) -> dict[str, Any]:
        return self.teacher.request(  # type: ignore[attr-defined]  # a KimiTeacher
            request.messages, request.max_tokens, request.temperature, request.json_schema
        )

    def read_answer(self, body: Any) -> Completion:
        from openai.types.chat import ChatCompletion

        try:
            response = ChatCompletion.model_validate(body)
        except ValueError as exc:
            detail = str(exc).splitlines()[0]
            raise TeacherError(
                f"malformed response from the Kimi API: {detail}", retryable=True
            ) from None
        return _completion(response, self.teacher.options.model, 0.0)
