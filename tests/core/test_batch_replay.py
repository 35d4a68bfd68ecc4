"""The pieces of ``generate --batch`` that need no provider: the replay teacher's call
in the real `DialecticEngine` (rounds of pending requests, retries with the
generator's blame rules), splitting, the store's torn lines, and batch prices."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from hegelion_core.contracts import (
    BatchLimits,
    BatchRequest,
    BatchResult,
    BatchTeacher,
    Completion,
    PromptSource,
)
from hegelion_core.errors import HegelionError
from hegelion_core.generation.batch.replay import Pending, Replay, request_key
from hegelion_core.generation.batch.rounds import BatchRun
from hegelion_core.generation.batch.split import split
from hegelion_core.generation.batch.store import JobStore
from hegelion_core.generation.dialectic import DialecticConfig, DialecticEngine, PhaseFailed
from hegelion_core.generation.generate import GenerateJob
from hegelion_core.generation.ledger import Ledger
from hegelion_core.generation.status import BATCH_DISCOUNT, run_status
from hegelion_core.records import Message, Prompt, Usage
from tests.core.teachers import RuleTeacher

PROMPT_ID = "0123456789abcdef"


def replay_once(
    results: dict[str, BatchResult],
    config: DialecticConfig,
    *,
    max_retries: int = 1,
    current: set[str] | None = None,
) -> tuple[Replay, BaseException | None]:
    replay = Replay(PROMPT_ID, results, set(), max_retries=max_retries, current=current)
    engine = DialecticEngine(RuleTeacher(), config, call=replay.call)
    try:
        asyncio.run(engine.run("Why is the sky blue?"))
    except (Pending, PhaseFailed) as exc:
        return replay, exc
    return replay, None


def answer(request: BatchRequest, text: str) -> BatchResult:
    return BatchResult(
        custom_id=request.custom_id,
        status="succeeded",
        completion=Completion(text=text, usage=Usage(prompt_tokens=3, completion_tokens=5)),
    )


def test_each_round_asks_what_the_last_answers_make_due_a_council_at_once() -> None:
    config = DialecticConfig(mode="phased", council=["council"], judge=True)
    results: dict[str, BatchResult] = {}
    phases = []
    for _ in range(4):
        replay, stopped = replay_once(results, config)
        assert isinstance(stopped, Pending)
        phases.append(sorted(phase for phase, _ in replay.new))
        for n, (phase, request) in enumerate(replay.new):
            text = f"{phase} answer number {n} about scattering light"
            if phase == "judge":
                text = json.dumps({"score": 8, "critique_validity": True, "reasoning": "ok"})
            results[request.custom_id] = answer(request, text)
    assert phases == [
        ["thesis"],
        ["critic:empiricist", "critic:ethicist", "critic:logician"],
        ["synthesis"],
        ["judge"],
    ]
    replay, stopped = replay_once(results, config)
    assert stopped is None and replay.new == []  # the dialectic finishes on the answers


def test_a_failed_request_is_asked_again_then_fails_with_its_blame() -> None:
    config = DialecticConfig(mode="phased")
    replay, _ = replay_once({}, config)
    ((_, first),) = replay.new
    failed = BatchResult(custom_id=first.custom_id, status="expired")
    replay, stopped = replay_once({first.custom_id: failed}, config)
    ((_, again),) = replay.new
    assert again.custom_id == first.custom_id.removesuffix("-0") + "-1"
    assert again.messages == first.messages
    both = {
        first.custom_id: failed,
        again.custom_id: failed.model_copy(update={"custom_id": again.custom_id}),
    }
    _, stopped = replay_once(both, config)
    assert isinstance(stopped, PhaseFailed) and stopped.phase == "thesis"
    assert stopped.blame == "service" and "after 2 attempts" in stopped.reason
    assert "expired" in stopped.reason

    refused = BatchResult(
        custom_id=first.custom_id,
        status="errored",
        error="HTTP 400: bad prompt",
        http_status=400,
        retryable=False,
        blame="prompt",
    )
    _, stopped = replay_once({first.custom_id: refused}, config)
    assert isinstance(stopped, PhaseFailed) and stopped.blame == "prompt"


def test_service_failures_from_before_the_run_stopped_are_asked_again() -> None:
    """A run stopped for the service's failures (exit 5) asks again on the next step:
    failures from before the stop count no more, and never against the prompt."""
    config = DialecticConfig(mode="phased")
    replay, _ = replay_once({}, config)
    ((_, first),) = replay.new
    key = first.custom_id.removesuffix("-0")
    failed = {f"{key}-{n}": BatchResult(custom_id=f"{key}-{n}", status="expired") for n in range(2)}
    _, stopped = replay_once(failed, config, current=set(failed))
    assert isinstance(stopped, PhaseFailed) and stopped.blame == "service"
    replay, stopped = replay_once(failed, config, current=set())  # both before the stop
    assert isinstance(stopped, Pending)
    assert [r.custom_id for _, r in replay.new] == [f"{key}-2"]


def test_a_refused_key_fails_at_once_and_a_prompt_failure_uses_an_attempt() -> None:
    config = DialecticConfig(mode="phased")
    replay, _ = replay_once({}, config)
    ((_, first),) = replay.new
    key = first.custom_id.removesuffix("-0")
    refused = BatchResult(
        custom_id=f"{key}-0", status="errored", http_status=401, retryable=True, blame="auth"
    )
    _, stopped = replay_once({refused.custom_id: refused}, config, max_retries=3)
    assert isinstance(stopped, PhaseFailed) and stopped.blame == "auth"
    assert "attempts" not in stopped.reason
    own = refused.model_copy(update={"http_status": 400, "blame": "prompt"})
    replay, stopped = replay_once({own.custom_id: own}, config, max_retries=1)
    assert isinstance(stopped, Pending) and [r.custom_id for _, r in replay.new] == [f"{key}-1"]
    again = own.model_copy(update={"custom_id": f"{key}-1"})
    _, stopped = replay_once({own.custom_id: own, again.custom_id: again}, config, max_retries=1)
    assert isinstance(stopped, PhaseFailed) and stopped.blame == "prompt"


class CountingSource(PromptSource):
    name = "counting"
    reads = 0

    def iter_prompts(self) -> Iterator[Prompt]:
        for i in range(6):
            if i == 0:
                type(self).reads += 1
            yield Prompt(text=f"question {i}")


def test_topping_up_reads_the_source_once_not_from_the_start_every_round(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    job = GenerateJob(output=out, limit=2)
    source = CountingSource()
    run = BatchRun(
        JobStore(out),
        job,
        RuleTeacher(),
        cast(BatchTeacher, None),  # topping up never calls the provider
        source,
        limits=BatchLimits(max_requests=10, max_bytes=10_000),
    )
    ledger = Ledger(out)
    taken: dict[str, object] = {}
    rounds = []
    for _ in range(3):
        fresh = run._top_up(ledger, taken, in_flight=0)
        taken.update((p.id, p) for p in fresh)
        rounds.append([p.text for p in fresh])
    assert rounds == [
        ["question 0", "question 1"],
        ["question 2", "question 3"],
        ["question 4", "question 5"],
    ]
    assert CountingSource.reads == 1


def test_the_same_request_twice_in_one_dialectic_gets_two_keys() -> None:
    asked = {"messages": [], "max_tokens": None, "temperature": None, "json_schema": None}
    assert request_key(PROMPT_ID, 0, asked) != request_key(PROMPT_ID, 1, asked)
    replay = Replay(PROMPT_ID, {}, set(), max_retries=0)
    messages = [Message(role="user", content="again")]
    for _ in range(2):
        with pytest.raises(Pending):
            asyncio.run(replay.call(messages, phase="thesis"))
    assert len({r.custom_id for _, r in replay.new}) == 2


def test_split_keeps_each_job_below_both_limits() -> None:
    sizes = [5, 5, 5, 9, 1, 1, 1]
    parts = split(sizes, lambda n: n, max_requests=3, max_bytes=10)
    assert parts == [[5, 5], [5], [9, 1], [1, 1]]
    with pytest.raises(HegelionError, match="more than the 10"):
        split([11], lambda n: n, max_requests=3, max_bytes=10)


def test_the_store_skips_a_torn_last_line_and_keeps_the_first_result(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "out.jsonl")
    store.dir.mkdir()
    ok = BatchResult(custom_id="a-0", status="succeeded", completion=Completion(text="x"))
    store.add_results("job1", [ok])
    store.add_results("job2", [ok.model_copy(update={"status": "expired", "completion": None})])
    with store.results_path.open("ab") as fp:
        fp.write(b'{"job_id": "job3", "custom_id": "b-0", "sta')  # a writer killed mid-line
    assert store.results() == {"a-0": ok}
    store.add_results("job3", [ok.model_copy(update={"custom_id": "b-0"})])  # cuts the torn tail
    assert set(store.results()) == {"a-0", "b-0"}


def test_records_of_a_batch_run_cost_the_batch_price(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    rows = [
        {
            "prompt_id": "aa",
            "model": "gpt-4o",
            "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 0},
        },
        {
            "prompt_id": "bb",
            "model": "gpt-4o",
            "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 0},
        },
    ]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run_status(out, prices={"gpt-4o": (2.0, 8.0)}).cost_usd == 4.0
    store = JobStore(out)
    store.dir.mkdir()
    store.add_prompts([{"prompt_id": "bb", "text": "q"}])
    status = run_status(out, prices={"gpt-4o": (2.0, 8.0)})
    assert status.cost_usd == 2.0 + 2.0 * BATCH_DISCOUNT
    assert status.by_model["gpt-4o"].batch_records == 1


def test_a_teacher_without_a_batch_api_is_a_clear_error(plugin_site: Path, tmp_path: Path) -> None:
    """The echo example plugin's teacher has no `batch()`: --batch names it, no traceback."""
    from tests.conftest import EXAMPLES, hegelion

    out = tmp_path / "o.jsonl"
    shown = hegelion(
        plugin_site, "generate", "--prompt-file", EXAMPLES / "prompts.txt", "-o", out,
        "--teacher", "echo", "--batch",
    )  # fmt: skip
    assert shown.returncode != 0
    assert "has no batch API" in shown.stderr and "Traceback" not in shown.stderr
    assert not out.exists()
