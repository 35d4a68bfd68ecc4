"""The ``judge`` reward through the real ``openai`` teacher against the scripted server:
verdicts come back; 429 with Retry-After, 500, a hung connection and garbage are
retried and counted; a permanent outage gives the neutral value and raises nothing;
the cache (in memory and on disk) makes a repeated call reach no server."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hegelion_core.generation.dialectic import JUDGE_SYSTEM
from hegelion_core.rewards import JudgeReward, RewardSpec, build_rewards
from hegelion_core.testing.scripted_server import RecordedRequest, ScriptedOpenAIServer
from tests.core.rewards_calls import TRLCall, chat

GOOD = "<thought>\nTHESIS:\nA.\n\nANTITHESIS:\nB.\n\nSYNTHESIS:\nC.\n</thought>\nD."
BAD = "I do not know."
PROMPTS = ["Is water wet?", "Is water wet?", "Is fire hot?", "Is fire hot?"]
COMPLETIONS = [GOOD, BAD, GOOD + " Hot.", BAD + " Hot?"]


def verdict(request: RecordedRequest) -> str:
    """9/10 for a completion with a synthesis, 2/10 otherwise (what the judge was shown
    is the request's first user message)."""
    shown = next(m["content"] for m in request.body["messages"] if m["role"] == "user")
    score = 9 if "SYNTHESIS" in shown else 2
    return json.dumps({"score": score, "critique_validity": True, "reasoning": "r"})


@pytest.fixture
def server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer(reply=verdict) as srv:
        yield srv


@pytest.fixture
def key(fake_api_key: Any) -> str:
    return fake_api_key("OPENAI_API_KEY")


@pytest.fixture(scope="module")
def trl() -> TRLCall:
    from transformers.trainer_callback import TrainerState

    return TRLCall(TrainerState(global_step=1))


@pytest.fixture(scope="module", autouse=True)
def warm() -> None:
    """One verdict first, so the SDK's imports (made on a teacher's first call) are done
    before a test times a call."""
    with ScriptedOpenAIServer(reply=verdict) as srv:
        judge = make_judge(srv.base_url, timeout=120.0)
        assert judge(prompts=PROMPTS[:1], completions=COMPLETIONS[:1]) == [0.9]
        judge.close()


def make_judge(base_url: str, **kwargs: Any) -> JudgeReward:
    kwargs.setdefault("backoff_base", 0.0)
    kwargs.setdefault("timeout", 20.0)
    return JudgeReward("openai", model="judge-model", options={"base_url": base_url}, **kwargs)


def dead_url() -> str:
    """A loopback port nothing listens on: every connection is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_verdicts_come_back_as_score_over_ten(
    server: ScriptedOpenAIServer, key: str, trl: TRLCall
) -> None:
    judge = make_judge(server.base_url)
    try:
        assert trl(judge, PROMPTS, COMPLETIONS) == [0.9, 0.2, 0.9, 0.2]
        assert trl(judge, *chat(PROMPTS, [c + "!" for c in COMPLETIONS])) == [0.9, 0.2, 0.9, 0.2]
    finally:
        judge.close()
    sent = server.completion_requests
    assert len(sent) == 8 and judge.stats.calls == 8 and judge.stats.scored == 8
    first = sent[0].body
    assert first["model"] == "judge-model"
    assert first["messages"][0] == {"role": "system", "content": JUDGE_SYSTEM}
    assert first["messages"][1]["content"] == f"Question:\n{PROMPTS[0]}\n\n{GOOD}"
    assert all(r.sent_bearer(key) for r in sent)
    assert trl.metrics["judge/calls"][-2:] == [4.0, 4.0]
    assert trl.metrics["judge/failed"][-2:] == [0.0, 0.0]
    assert judge.__name__ == "judge"


def test_faults_are_retried_and_counted(
    server: ScriptedOpenAIServer, key: str, trl: TRLCall, caplog: pytest.LogCaptureFixture
) -> None:
    server.enqueue(
        ("status", 429, {"Retry-After": "0.2"}),
        ("status", 500),
        ("hang",),
        ("malformed",),
        ("reply", "I think it is a fine dialectic."),  # no JSON: one repair prompt
    )
    judge = make_judge(server.base_url, max_retries=5, concurrency=1, timeout=1.0)
    caplog.set_level(logging.DEBUG)
    try:
        assert trl(judge, PROMPTS[:1], COMPLETIONS[:1]) == [0.9]
    finally:
        judge.close()
    assert judge.stats.calls == 6 and judge.stats.retried == 5 and judge.stats.scored == 1
    assert judge.stats.faults == {
        "http_429": 1,
        "http_500": 1,
        "timeout": 1,
        "malformed": 1,
        "invalid_verdict": 1,
    }
    assert not judge.stats.failed
    gaps = [b.received_at - a.received_at for a, b in zip(server.requests, server.requests[1:])]
    assert gaps[0] >= 0.2  # Retry-After was honoured
    repair = server.completion_requests[-1].body["messages"]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert "JSON object only" in repair[-1]["content"]
    assert key not in caplog.text


def test_a_permanent_outage_gives_the_neutral_value_and_raises_nothing(
    key: str, trl: TRLCall
) -> None:
    judge = make_judge(dead_url(), max_retries=2)
    try:
        assert trl(judge, PROMPTS, COMPLETIONS) == [0.5, 0.5, 0.5, 0.5]
    finally:
        judge.close()
    assert judge.stats.failed == {"unavailable": 4}
    assert judge.stats.calls == 12 and judge.stats.retried == 8 and judge.stats.scored == 0
    assert trl.metrics["judge/failed"][-1] == 4.0
    assert judge.stats.as_metrics()["failed/unavailable"] == 4.0


def test_a_failed_verdict_takes_its_groups_mean(server: ScriptedOpenAIServer, key: str) -> None:
    """GRPO compares a prompt's completions with each other: the group's mean gives a
    failed verdict no advantage from the judge, where 0.5 would give it one."""
    server.enqueue(("ok",), *[("status", 503)] * 3, ("ok",), *[("status", 503)] * 3)
    judge = make_judge(server.base_url, max_retries=2, concurrency=1, neutral=0.4)
    try:
        got = judge(prompts=PROMPTS, completions=COMPLETIONS)
    finally:
        judge.close()
    # water: GOOD scored 0.9, BAD failed; fire: the same
    assert got == [0.9, 0.9, 0.9, 0.9]
    assert judge.stats.failed == {"http_503": 2}
    judge = make_judge(dead_url(), max_retries=0, neutral=0.4)
    assert judge(prompts=PROMPTS[:2], completions=COMPLETIONS[:2]) == [0.4, 0.4]  # none scored
    judge.close()


def test_a_rejected_key_fails_at_once_and_is_never_shown(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with ScriptedOpenAIServer(reply=verdict, api_key="sk-the-right-key-0000") as srv:
        judge = make_judge(srv.base_url, max_retries=3)
        try:
            assert judge(prompts=PROMPTS[:1], completions=COMPLETIONS[:1]) == [0.5]
        finally:
            judge.close()
        assert len(srv.completion_requests) == 1  # a bad key is not retried
    assert judge.stats.failed == {"auth": 1}
    assert key not in caplog.text and key not in repr(judge.stats)


def test_the_cache_makes_a_second_call_reach_no_server(
    server: ScriptedOpenAIServer, key: str, tmp_path: Path, trl: TRLCall
) -> None:
    cache = tmp_path / "judge-cache"
    judge = make_judge(server.base_url, cache_dir=cache)
    try:
        first = trl(judge, PROMPTS, COMPLETIONS)
        assert len(server.completion_requests) == 4
        assert trl(judge, PROMPTS, COMPLETIONS) == first
        assert trl(judge, *chat(PROMPTS, COMPLETIONS)) == first  # the same question and text
        assert len(server.completion_requests) == 4 and judge.stats.cached == 8
        assert trl.metrics["judge/cached"][-1] == 4.0
    finally:
        judge.close()
    lines = (cache / "judge-cache.jsonl").read_text().splitlines()
    assert len(lines) == 4 and key not in "".join(lines)
    # a resumed run: a new judge on the same directory pays for nothing
    resumed = make_judge(server.base_url, cache_dir=cache)
    try:
        assert resumed(prompts=PROMPTS, completions=COMPLETIONS) == first
    finally:
        resumed.close()
    assert len(server.completion_requests) == 4 and resumed.stats.calls == 0
    # another judge model is another verdict
    other = JudgeReward(
        "openai", model="other", options={"base_url": server.base_url}, cache_dir=cache
    )
    try:
        other(prompts=PROMPTS[:1], completions=COMPLETIONS[:1])
    finally:
        other.close()
    assert len(server.completion_requests) == 5


def test_identical_completions_cost_one_call_and_failures_are_not_cached(
    server: ScriptedOpenAIServer, key: str, tmp_path: Path
) -> None:
    server.enqueue(("status", 500))
    judge = make_judge(server.base_url, max_retries=0, cache_dir=tmp_path)
    try:
        assert judge(prompts=[PROMPTS[0]] * 3, completions=[GOOD] * 3) == [0.5] * 3
        assert len(server.completion_requests) == 1 and judge.stats.failed == {"http_500": 1}
        assert not (tmp_path / "judge-cache.jsonl").exists()
        assert judge(prompts=[PROMPTS[0]] * 3, completions=[GOOD] * 3) == [0.9] * 3  # retried
    finally:
        judge.close()
    assert len(server.completion_requests) == 2


def test_the_judge_works_from_inside_a_running_event_loop(
    server: ScriptedOpenAIServer, key: str
) -> None:
    judge = make_judge(server.base_url)

    async def inside() -> list[float]:
        return judge(prompts=PROMPTS[:2], completions=COMPLETIONS[:2])

    try:
        assert asyncio.run(inside()) == [0.9, 0.2]
        assert asyncio.run(inside()) == [0.9, 0.2]  # cached, from another loop
    finally:
        judge.close()


def test_build_rewards_makes_the_judge_from_its_spec(
    server: ScriptedOpenAIServer, key: str, tmp_path: Path, trl: TRLCall
) -> None:
    spec = RewardSpec(
        weight=0.5,
        teacher="openai",
        model="judge-model",
        options={"base_url": server.base_url},
        concurrency=2,
        max_retries=1,
    )
    funcs, weights = build_rewards({"format": 1.0, "judge": spec}, cache_dir=tmp_path)
    from trl.trainer.utils import get_callable_name

    assert [get_callable_name(f) for f in funcs] == ["format", "judge"] and weights == [1.0, 0.5]
    judge = funcs[1]
    assert isinstance(judge, JudgeReward)
    try:
        assert trl(judge, PROMPTS[:2], COMPLETIONS[:2]) == [0.9, 0.2]
    finally:
        judge.close()
    assert (judge.concurrency, judge.max_retries) == (2, 1)
    assert (tmp_path / "judge-cache.jsonl").is_file()


def test_the_judge_pickles_without_its_thread_and_keeps_its_cache(
    server: ScriptedOpenAIServer, key: str
) -> None:
    """Process pools pickle reward functions (TRL names them by 'the picklable forms')."""
    import pickle

    judge = make_judge(server.base_url)
    try:
        first = judge(prompts=PROMPTS[:2], completions=COMPLETIONS[:2])
    finally:
        judge.close()
    copy = pickle.loads(pickle.dumps(judge))
    try:
        assert copy(prompts=PROMPTS[:2], completions=COMPLETIONS[:2]) == first
        assert copy(prompts=PROMPTS[2:], completions=COMPLETIONS[2:]) == [0.9, 0.2]
    finally:
        copy.close()
    assert len(server.completion_requests) == 4  # two verdicts came with the copy's cache
    assert copy.stats.cached == judge.stats.cached + 2


def test_a_cache_torn_by_a_killed_run_keeps_its_whole_lines(
    server: ScriptedOpenAIServer, key: str, tmp_path: Path
) -> None:
    judge = make_judge(server.base_url, cache_dir=tmp_path)
    try:
        judge(prompts=PROMPTS[:1], completions=COMPLETIONS[:1])
    finally:
        judge.close()
    path = tmp_path / "judge-cache.jsonl"
    with path.open("a") as f:
        f.write('{"key": "abc", "sco')  # kill -9 in the middle of an append
    resumed = make_judge(server.base_url, cache_dir=tmp_path)
    try:
        assert resumed(prompts=PROMPTS[:2], completions=COMPLETIONS[:2]) == [0.9, 0.2]
    finally:
        resumed.close()
    assert len(server.completion_requests) == 2  # the whole line was kept, one new verdict
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["score"] for r in rows] == [0.9, 0.2]
