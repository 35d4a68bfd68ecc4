"""The replay teacher's call: collected answers come back, unanswered requests are
recorded and stop the prompt for this round.

A request's ``custom_id`` is a digest of the prompt, of what the engine sends
(messages, ``max_tokens``, ``temperature``, ``json_schema``) and of how many times the
engine sent that same request before in this dialectic (a second judge attempt asks
the thesis again, and must not get the first answer back), then the attempt number:
``<40 hex>-<attempt>``. The engine is deterministic given its answers, so every round
replays the same requests in the same order.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from typing import Any

import orjson

from hegelion_core.contracts import BatchRequest, BatchResult, Completion
from hegelion_core.generation.generate import TeacherFailed
from hegelion_core.records import Message
from hegelion_core.secrets import scrub, scrub_counted


class Pending(Exception):  # noqa: N818 - a signal, not an error
    """The prompt waits for answers not collected yet (its requests are recorded)."""


def request_key(prompt_id: str, occurrence: int, request: dict[str, Any]) -> str:
    payload = orjson.dumps(
        {"prompt": prompt_id, "n": occurrence, **request}, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(payload).hexdigest()[:40]


def custom_id(key: str, attempt: int) -> str:
    return f"{key}-{attempt}"


class Replay:
    """One prompt's calls in one round.

    ``results`` are the stored results by custom_id, ``submitted`` the custom_ids sent
    in any job (answered or not). A failed attempt is asked again (attempt + 1) while
    it is retryable (expired and cancelled ones are) and ``max_retries`` allows, as the
    live generator retries one call; then the phase fails with the failure's blame."""

    def __init__(
        self,
        prompt_id: str,
        results: Mapping[str, BatchResult],
        submitted: set[str],
        *,
        max_retries: int,
    ) -> None:
        self.prompt_id = prompt_id
        self.results = results
        self.submitted = submitted
        self.max_retries = max_retries
        self.seen: Counter[str] = Counter()
        self.new: list[tuple[str, BatchRequest]] = []  # (phase, request) to submit
        self.waiting = 0  # requests already submitted, not answered yet
        self.model: str | None = None
        self.scrubbed = 0

    async def call(
        self,
        messages: list[Message],
        *,
        phase: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        asked = {
            "messages": [m.model_dump(mode="json") for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "json_schema": json_schema,
        }
        digest = orjson.dumps(asked, option=orjson.OPT_SORT_KEYS)
        same = hashlib.sha256(digest).hexdigest()
        occurrence = self.seen[same]
        self.seen[same] += 1
        key = request_key(self.prompt_id, occurrence, asked)
        attempt = 0
        while True:
            cid = custom_id(key, attempt)
            result = self.results.get(cid)
            if result is None:
                if cid in self.submitted:
                    self.waiting += 1
                else:
                    request = BatchRequest(custom_id=cid, **asked)
                    self.new.append((phase, request))
                raise Pending(cid)
            if result.status == "succeeded" and result.completion is not None:
                completion = result.completion
                text, n = scrub_counted(completion.text)  # an answer echoing a key
                if n:
                    self.scrubbed += n
                    completion = completion.model_copy(update={"text": text})
                self.model = completion.model or self.model
                return completion
            if result.retryable and attempt < self.max_retries:
                attempt += 1
                continue
            tries = f" after {attempt + 1} attempts" if attempt else ""
            raise TeacherFailed(
                phase, f"teacher error{tries}: {scrub(describe(result))}", result.blame
            )


def describe(result: BatchResult) -> str:
    """A failed result in words, as a reject reason."""
    if result.status == "expired":
        return "batch request expired (the provider's completion window closed first)"
    if result.status == "cancelled":
        return "batch request cancelled"
    status = f"HTTP {result.http_status}: " if result.http_status else ""
    return f"{status}{result.error or 'failed in the batch'}"
