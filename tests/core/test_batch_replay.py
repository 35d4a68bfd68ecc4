"""The pieces of ``generate --batch`` that need no provider: the replay teacher's call
in the real `DialecticEngine` (rounds of pending requests, retries with the
generator's blame rules), splitting, the store's torn lines, and batch prices."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from hegelion_core.contracts import BatchRequest, BatchResult, Completion
from hegelion_core.errors import HegelionError
from hegelion_core.generation.batch.replay import Pending, Replay, request_key
from hegelion_core.generation.batch.split import split
from hegelion_core.generation.batch.store import JobStore
from hegelion_core.generation.dialectic import DialecticConfig, DialecticEngine, PhaseFailed
from hegelion_core.generation.status import BATCH_DISCOUNT, run_status
from hegelion_core.records import Message, Usage
from tests.core.teachers import RuleTeacher

PROMPT_ID = "0123456789abcdef"


def replay_once(
    results: dict[str, BatchResult], config: DialecticConfig, *, max_retries: int = 1
) -> tuple[Replay, BaseException | None]:
    replay = Replay(PROMPT_ID, results, set(), max_retries=max_retries)
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
