"""Rate limits and retries for teacher calls.

`RateLimiter` spaces request starts for requests-per-minute and tokens-per-minute
budgets, and pauses everyone when a server says ``Retry-After``. `StartPacer` spreads
the starts of concurrent slots over the time one takes, so they never go out as one
burst. `backoff` is
exponential with full jitter, capped. `retryable_status` and `parse_retry_after`
are what every HTTP teacher needs to build its `TeacherError`.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime


class _Bucket:
    """A token bucket refilled at ``per_minute / 60`` per second and one second deep,
    so requests are paced evenly instead of bursting a minute's budget at once."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(self.rate, 1.0)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0 when it is now)."""
        self._refill()
        amount = min(amount, self.capacity)  # a request larger than the bucket still runs, alone
        return 0.0 if self.level >= amount else (amount - self.level) / self.rate

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= amount  # may go negative: later requests wait off the debt


class RateLimiter:
    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        self._requests = _Bucket(rpm) if rpm else None
        self._tokens = _Bucket(tpm) if tpm else None
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one more request (of about ``tokens`` tokens) fits the budgets."""
        if (
            self._requests is None
            and self._tokens is None
            and self._paused_until <= time.monotonic()
        ):
            return  # no budgets and no pause: nothing to wait for, not even the lock
        async with self._lock:  # first come, first served
            while True:
                wait = self._paused_until - time.monotonic()
                if self._requests:
                    wait = max(wait, self._requests.wait_for(1))
                if self._tokens and tokens:
                    wait = max(wait, self._tokens.wait_for(tokens))
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if self._requests:
                self._requests.take(1)
            if self._tokens and tokens:
                self._tokens.take(tokens)

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the token budget once a response reports its real usage."""
        if self._tokens and actual:
            self._tokens.take(actual - estimated)

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` (a server's ``Retry-After``)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)


class StartPacer:
    """Spaces the starts of ``slots`` concurrent jobs ``cycle / (slots * headroom)`` apart,
    where ``cycle`` is how long a job has been taking (a running average); up to
    ``burst`` starts (default ``slots // 16``) left unused may go at once.

    Why: slots freed together start together, their requests come back together, and
    an event loop handles such a wave in lockstep (each task advances one step per
    loop pass), so every request in it waits for the whole wave's CPU time. A server
    with a steady latency keeps the wave forever: at 256 in flight that cost a third
    of the throughput. Spread out, each answer is handled as it arrives. With
    ``headroom`` > 1 the pacer is faster than the slots can free up, so it never
    lowers the steady rate; it only breaks up bursts. It starts pacing after the
    first job ends (no estimate before) and has no effect with one slot."""

    def __init__(self, slots: int, headroom: float = 1.5, burst: int | None = None) -> None:
        self.slots = max(1, slots)
        self.headroom = headroom
        self.burst = burst if burst is not None else max(1, self.slots // 16)
        self.cycle: float | None = None
        self._next = 0.0
        self._weight = min(1.0, 4.0 / self.slots)  # about a quarter of the slots' worth of history

    def observe(self, seconds: float) -> None:
        """A job took ``seconds``. Outliers (a long backoff) move the average at most
        to twice its value per observation, so one stuck job cannot stall the pacer."""
        if self.cycle is None:
            self.cycle = seconds
        else:
            seconds = min(seconds, 2 * self.cycle)
            self.cycle += (seconds - self.cycle) * self._weight

    def delay(self) -> float:
        """Seconds to wait before the next start (and reserve that start)."""
        if self.cycle is None or self.slots == 1:
            return 0.0
        now = time.monotonic()
        interval = self.cycle / (self.slots * self.headroom)
        self._next = max(self._next, now - (self.burst - 1) * interval)  # up to a burst at once
        start = max(now, self._next)
        self._next += interval
        return start - now


def backoff(attempt: int, base: float = 1.0, cap: float = 60.0) -> float:
    """Delay before retry ``attempt`` (0-based): full jitter over ``base * 2**attempt``."""
    return random.uniform(0, min(cap, base * 2**attempt))


def estimate_tokens(text_chars: int, max_tokens: int | None) -> int:
    """A rough request size for the token budget: ~4 characters a token, plus the reply."""
    return text_chars // 4 + (max_tokens or 512)


#: Besides every 5xx: timeouts, conflicts, too-early and rate limits.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})


def retryable_status(status: int | None) -> bool:
    """429, 408/409/425 and every 5xx (529 overloaded too) are worth another try."""
    return status is not None and (status in RETRYABLE_STATUSES or status >= 500)


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date).
    ``inf`` stays infinite (the generator's ``max_retry_wait`` decides what is too long);
    ``nan`` and other nonsense count as no header."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis:
        try:
            seconds = float(millis) / 1000
        except ValueError:
            pass
        else:
            if not math.isnan(seconds):
                return max(seconds, 0.0)
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return None if math.isnan(seconds) else max(seconds, 0.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)
