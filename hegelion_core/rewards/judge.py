"""The ``judge`` reward: the dialectic judge's score of each completion, in [0, 1].

The judge is the one ``hegelion generate --judge`` uses (`JUDGE_SYSTEM`, `parse_verdict`
in `hegelion_core.generation.dialectic`), asked through any installed teacher (a local
llama.cpp server, GPT-4o, Claude). Its 0-10 score, divided by 10, is the reward.

* **Concurrent**: up to ``concurrency`` verdicts in flight, under the generator's
  requests- and tokens-per-minute budgets (`RateLimiter`), each call with a
  ``timeout`` and up to ``max_retries`` retries with jittered `backoff`, honouring
  ``Retry-After`` (a longer wait than ``max_retry_wait`` fails the verdict instead).
  An invalid verdict gets one repair prompt, as in the generator.
* **Cached** by (the question the judge sees, the completion, the judge: teacher,
  model and prompt), in memory and, with a ``cache_dir``, in ``judge-cache.jsonl``
  there (line-atomic appends), so a resumed run pays for no verdict twice. Identical
  completions in one batch cost one call.
* **Never a crash**: a verdict that fails after its retries (the service is down,
  rate-limited past the wait, answers garbage) scores the mean of the verdicts its
  group got (the other completions of the same prompt: GRPO then gives it no advantage
  from the judge), or ``neutral`` (0.5) when the whole group failed. Failures are
  counted in `JudgeReward.stats` by reason and, during training, logged through TRL's
  ``log_metric`` as ``judge/failed`` (with ``judge/calls`` and ``judge/cached``).

TRL calls reward functions synchronously; the judge runs its event loop on a private
thread, so it works from a plain loop and from inside a running event loop alike.

By dotted path (axolotl's ``trl.reward_funcs: [hegelion_core.rewards.judge_reward]``),
the judge is configured from the environment on first call: ``HEGELION_JUDGE_TEACHER``
(required), ``HEGELION_JUDGE_MODEL``, ``HEGELION_JUDGE_OPTIONS`` (a JSON object of
teacher options) and ``HEGELION_JUDGE_CACHE_DIR``. Keys never go there: teachers read
them from the environment or ``secrets.toml`` (`hegelion_core.secrets`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hegelion_core.contracts import TeacherError
from hegelion_core.errors import HegelionError
from hegelion_core.generation.dialectic import JUDGE_SYSTEM, parse_verdict
from hegelion_core.generation.limits import RateLimiter, backoff, estimate_tokens
from hegelion_core.records import JudgeVerdict, Message
from hegelion_core.rewards.text import completion_text, prompt_text
from hegelion_core.secrets import scrub

if TYPE_CHECKING:
    from hegelion_core.contracts import Teacher
    from hegelion_core.rewards.config import RewardSpec

T = TypeVar("T")
log = logging.getLogger(__name__)

CACHE_FILE = "judge-cache.jsonl"
TEACHER_ENV = "HEGELION_JUDGE_TEACHER"
MODEL_ENV = "HEGELION_JUDGE_MODEL"
OPTIONS_ENV = "HEGELION_JUDGE_OPTIONS"
CACHE_DIR_ENV = "HEGELION_JUDGE_CACHE_DIR"
#: Tokens a verdict may take (a short JSON object).
VERDICT_TOKENS = 512
_PROMPT_ID = hashlib.sha256(JUDGE_SYSTEM.encode()).hexdigest()[:12]


@dataclass
class JudgeStats:
    """What the judge did so far: ``calls`` requests sent (retries included), ``scored``
    verdicts the teacher gave, ``cached`` verdicts that cost no request, ``retried``
    calls, ``faults`` every failed call by reason, and ``failed`` the verdicts given up
    on (after their retries) by the last call's reason. Reasons: ``http_<status>``,
    ``timeout``, ``malformed`` (a body that is not the API's), ``unavailable`` (no
    connection), ``invalid_verdict`` (no valid JSON verdict), ``auth``, ``retry_after``
    (a longer wait asked than ``max_retry_wait``), ``error_<Exception>``."""

    calls: int = 0
    scored: int = 0
    cached: int = 0
    retried: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    def as_metrics(self) -> dict[str, float]:
        """The counters as metrics (``calls``, ``failed``, ``failed/http_500``...), which a
        trainer logs under the reward's name: ``judge/failed``."""
        out = {
            "calls": float(self.calls),
            "scored": float(self.scored),
            "cached": float(self.cached),
            "retried": float(self.retried),
            "failed": float(self.failed_total),
        }
        out.update({f"failed/{r}": float(n) for r, n in sorted(self.failed.items())})
        out.update({f"faults/{r}": float(n) for r, n in sorted(self.faults.items())})
        return out


class _Failed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reason(error: TeacherError) -> str:
    if error.blame == "auth":
        return "auth"
    if error.status:
        return f"http_{error.status}"
    message = str(error)
    if message.startswith("malformed"):
        return "malformed"
    return "timeout" if message.startswith("timed out") else "unavailable"


class JudgeReward:
    """TRL reward function (``__name__`` ``judge``): the dialectic judge's score of each
    completion, through the teacher ``teacher`` (see the module)."""

    __name__ = "judge"

    def __init__(
        self,
        teacher: str,
        *,
        model: str | None = None,
        options: dict[str, Any] | None = None,
        cache_dir: Path | None = None,
        concurrency: int = 8,
        rpm: float | None = None,
        tpm: float | None = None,
        max_retries: int = 3,
        timeout: float = 120.0,
        backoff_base: float = 1.0,
        max_retry_wait: float = 60.0,
        neutral: float = 0.5,
    ) -> None:
        self.teacher_name = teacher
        self.teacher_options = dict(options or {}) | ({"model": model} if model else {})
        self.cache_path = Path(cache_dir) / CACHE_FILE if cache_dir is not None else None
        self.concurrency = concurrency
        self.rpm, self.tpm = rpm, tpm
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.max_retry_wait = max_retry_wait
        self.neutral = neutral
        self.stats = JudgeStats()
        self._teacher: Teacher = self._make_teacher()  # bad options fail here, not mid-run
        model_name = model or getattr(self._teacher.options, "model", None) or ""
        #: The judge in the cache key: teacher, model and the judge prompt's version.
        self.judge_id = f"{teacher}:{model_name}:{_PROMPT_ID}"
        self._cache: dict[str, float] = {}
        self._cache_loaded = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._limiter: RateLimiter | None = None

    @classmethod
    def from_spec(cls, spec: RewardSpec, *, cache_dir: Path | None = None) -> JudgeReward:
        """The judge a config's ``grpo.rewards.judge`` describes."""
        assert spec.teacher, "build_rewards checks that the judge names a teacher"
        return cls(
            spec.teacher,
            model=spec.model,
            options=spec.options,
            cache_dir=cache_dir,
            concurrency=spec.concurrency,
            rpm=spec.rpm,
            tpm=spec.tpm,
            max_retries=spec.max_retries,
            timeout=spec.timeout,
            max_retry_wait=spec.max_retry_wait,
            neutral=spec.neutral,
        )

    def _make_teacher(self) -> Teacher:
        from hegelion_core.plugins import make_driver

        return make_driver("teachers", self.teacher_name, self.teacher_options)

    # ----- TRL's entry point ---------------------------------------------------------

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] = (),
        *,
        log_metric: Callable[[str, float], None] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        """One reward per completion; never raises for the judge's own failures."""
        questions = [prompt_text(p) for p in (prompts or [""] * len(completions))]
        texts = [completion_text(c) for c in completions]
        before = (self.stats.calls, self.stats.cached, self.stats.failed_total)
        scores = self._run(self._score_all(questions, texts))
        if log_metric is not None:
            log_metric("judge/calls", float(self.stats.calls - before[0]))
            log_metric("judge/cached", float(self.stats.cached - before[1]))
            log_metric("judge/failed", float(self.stats.failed_total - before[2]))
        return self._fill(questions, scores)

    def _fill(self, questions: list[str], scores: list[float | None]) -> list[float]:
        """Failed verdicts: their group's mean (same prompt), else ``neutral``."""
        groups: dict[str, list[float]] = {}
        for q, s in zip(questions, scores, strict=True):
            if s is not None:
                groups.setdefault(q, []).append(s)
        out = []
        for q, s in zip(questions, scores, strict=True):
            if s is None:
                got = groups.get(q)
                s = sum(got) / len(got) if got else self.neutral
            out.append(s)
        return out

    # ----- the event loop, on a private thread ---------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="hegelion-judge", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
            self._limiter = None  # its lock belongs to the loop it was first used on
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        """Close the teacher's connections and stop the judge's thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._teacher.aclose(), loop).result(timeout=30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            loop.close()
            self._loop = self._thread = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_loop=None, _thread=None, _limiter=None, _teacher=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._teacher = self._make_teacher()

    # ----- verdicts -----------------------------------------------------------------

    def key(self, question: str, text: str) -> str:
        """The cache key of one verdict: what the judge sees, and which judge."""
        raw = json.dumps([self.judge_id, question, text], ensure_ascii=False)
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()

    async def _score_all(self, questions: list[str], texts: list[str]) -> list[float | None]:
        self._load_cache()
        if self._limiter is None:
            self._limiter = RateLimiter(self.rpm, self.tpm)
        keys = [self.key(q, t) for q, t in zip(questions, texts, strict=True)]
        todo: dict[str, tuple[str, str]] = {}
        for k, q, t in zip(keys, questions, texts, strict=True):
            if k in self._cache or k in todo:
                self.stats.cached += 1
            else:
                todo[k] = (q, t)
        slots = asyncio.Semaphore(self.concurrency)

        async def one(k: str, q: str, t: str) -> tuple[str, float | None]:
            async with slots:
                return k, await self._verdict(q, t)

        found = await asyncio.gather(*(one(k, q, t) for k, (q, t) in todo.items()))
        fresh = {k: s for k, s in found if s is not None}
        self._cache.update(fresh)
        self._save(fresh)
        return [self._cache.get(k) for k in keys]

    async def _verdict(self, question: str, text: str) -> float | None:
        """The judge's score / 10, or None once retries are spent (counted in stats)."""
        try:
            return await self._ask(question, text)
        except _Failed as failed:
            self.stats.failed[failed.reason] += 1
            return None
        except Exception as exc:  # a teacher's bug must not stop a training run either
            log.warning("judge: %s: %s", type(exc).__name__, scrub(str(exc)))
            self.stats.failed[f"error_{type(exc).__name__}"] += 1
            return None

    async def _ask(self, question: str, text: str) -> float:
        assert self._limiter is not None
        messages = [
            Message(role="system", content=JUDGE_SYSTEM),
            Message(role="user", content=f"Question:\n{question}\n\n{text}"),
        ]
        schema = JudgeVerdict.model_json_schema()
        repaired = False
        for attempt in range(self.max_retries + 1):
            size = estimate_tokens(sum(len(m.content) for m in messages), VERDICT_TOKENS)
            await self._limiter.acquire(size)
            self.stats.calls += 1
            error: TeacherError | None = None
            try:
                async with asyncio.timeout(self.timeout):
                    completion = await self._teacher.complete(
                        messages, max_tokens=VERDICT_TOKENS, json_schema=schema
                    )
            except TimeoutError:
                reason = "timeout"
                error = TeacherError(f"no verdict within {self.timeout:g}s", retryable=True)
            except TeacherError as exc:
                reason, error = _reason(exc), exc
            else:
                self._limiter.settle(size, completion.usage.total_tokens)
                try:
                    verdict = parse_verdict(completion.text)
                except ValueError as exc:
                    reason = "invalid_verdict"
                    if not repaired:  # the generator's repair prompt, once
                        repaired = True
                        messages += [
                            Message(role="assistant", content=completion.text),
                            Message(
                                role="user",
                                content=f"That was not valid ({exc}). "
                                "Reply with the JSON object only.",
                            ),
                        ]
                else:
                    self.stats.scored += 1
                    return verdict.score / 10.0
            self.stats.faults[reason] += 1
            if error is not None:
                log.info("judge: %s (%s)", scrub(str(error)), reason)
                if not error.retryable:
                    raise _Failed(reason)
            if attempt == self.max_retries:
                raise _Failed(reason)
            wait = (error.retry_after or 0.0) if error is not None else 0.0
            if wait > self.max_retry_wait:
                raise _Failed("retry_after")
            self.stats.retried += 1
            if wait:
                self._limiter.pause(wait)
            await asyncio.sleep(max(wait, backoff(attempt, self.backoff_base)))
        raise AssertionError("unreachable")  # pragma: no cover

    # ----- the on-disk cache -------------------------------------------------------

    def _load_cache(self) -> None:
        if self._cache_loaded:
            return
        self._cache_loaded = True
        if self.cache_path is None or not self.cache_path.is_file():
            return
        from hegelion_core.data.jsonl import read_jsonl

        for _, row in read_jsonl(self.cache_path, skip_invalid=True):
            key, score = row.get("key"), row.get("score")
            if isinstance(key, str) and isinstance(score, (int, float)) and 0 <= score <= 1:
                self._cache[key] = float(score)

    def _save(self, fresh: dict[str, float]) -> None:
        if self.cache_path is None or not fresh:
            return
        from hegelion_core.data.jsonl import append_jsonl

        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            append_jsonl(
                self.cache_path,
                ({"key": k, "judge": self.judge_id, "score": s} for k, s in fresh.items()),
            )
        except OSError as exc:  # a full disk costs the cache, not the run
            log.warning("judge: cache not written to %s: %s", self.cache_path, exc)
            self.stats.failed["cache_write"] += 1


# ----- by dotted path: configured from the environment -----------------------------------

_default: JudgeReward | None = None
_default_lock = threading.Lock()


def default_judge() -> JudgeReward:
    """The judge `judge_reward` uses, made from the environment on first use."""
    global _default
    with _default_lock:
        if _default is None:
            teacher = os.environ.get(TEACHER_ENV, "").strip()
            if not teacher:
                raise HegelionError(
                    f"hegelion_core.rewards.judge_reward needs {TEACHER_ENV}: the teacher "
                    f"that judges (see `hegelion plugins`)\n  fix: export {TEACHER_ENV}="
                    f'openai {MODEL_ENV}=gpt-4o, or {OPTIONS_ENV}=\'{{"base_url": '
                    f'"http://127.0.0.1:8080/v1"}}\' for a local server'
                )
            raw = os.environ.get(OPTIONS_ENV, "").strip()
            try:
                options = json.loads(raw) if raw else {}
            except json.JSONDecodeError as exc:
                raise HegelionError(f"{OPTIONS_ENV} is not JSON: {exc}") from None
            if not isinstance(options, dict):
                raise HegelionError(f"{OPTIONS_ENV} must be a JSON object of teacher options")
            cache = os.environ.get(CACHE_DIR_ENV, "").strip()
            _default = JudgeReward(
                teacher,
                model=os.environ.get(MODEL_ENV, "").strip() or None,
                options=options,
                cache_dir=Path(cache) if cache else None,
            )
        return _default


def judge_reward(
    prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **kwargs: Any
) -> list[float]:
    """TRL reward function by dotted path: `default_judge`'s rewards (see the module)."""
    return default_judge()(prompts, completions, **kwargs)


judge_reward.__name__ = "judge"
