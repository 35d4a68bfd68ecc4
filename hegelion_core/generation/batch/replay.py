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
    in any job (answered or not), ``current`` those sent since the run last stopped. A
    failed attempt is asked again (attempt + 1) as the live generator retries one call,
    with the live blame rules: a failure that is the prompt's uses one of its
    ``max_retries`` (and only a retryable one is asked again); one that is the
    service's (expiry, cancellation, 5xx, 429) is asked again until ``max_retries + 1``
    of them in a row since the last stop, then the phase fails with that blame (the
    prompt stays open); a refused key (``auth``) fails it at once. Failures from
    before the last stop never count: the next round asks again."""

    def __init__(
        self,
        prompt_id: str,
        results: Mapping[str, BatchResult],
        submitted: set[str],
        *,
        max_retries: int,
        current: set[str] | None = None,
    ) -> None:
        self.prompt_id = prompt_id
        self.results = results
        self.submitted = submitted
        self.current = current  # None: every failure counts
        self.max_retries = max_retries
        self.seen: Counter[str] = Counter()
        self.new: list[tuple[str, BatchRequest]] = []  # (phase, request) to submit
        self.waiting = 0  # requests already submitted, not answered yet
        self.model: str | None = None
        self.scrubbed = 0
        self.failed: str | None = None  # the custom_id whose failure ended the dialectic

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
        attempt = counted = streak = 0
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
            if result.blame == "prompt":
                streak = 0
                if result.retryable and counted < self.max_retries:
                    counted += 1
                    attempt += 1
                    continue
                tries = counted + 1
            elif self.current is not None and cid not in self.current:
                attempt += 1  # failed before the run last stopped: asked afresh
                continue
            else:
                streak += 1
                if result.blame != "auth" and streak <= self.max_retries:
                    attempt += 1
                    continue
                tries = streak
            self.failed = cid
            after = f" after {tries} attempts" if tries > 1 else ""
            raise TeacherFailed(
                phase, f"teacher error{after}: {scrub(describe(result))}", result.blame
            )


def describe(result: BatchResult) -> str:
    """A failed result in words, as a reject reason."""
    if result.status == "expired":
        return "batch request expired (the provider's completion window closed first)"
    if result.status == "cancelled":
        return "batch request cancelled"
    status = f"HTTP {result.http_status}: " if result.http_status else ""
    return f"{status}{result.error or 'failed in the batch'}"
