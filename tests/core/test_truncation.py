"""A cut answer is never data: a scripted OpenAI-compatible server cuts 30% of the
syntheses with ``finish_reason: "length"``, driven through the real ``openai``
teacher and the generator, then `hegelion dataset` on what was kept."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from hegelion_core.data.dataset import DatasetJob, build_dataset
from hegelion_core.data.prompt_sources.file import FilePromptSource
from hegelion_core.generation.dialectic import (
    SYNTHESIS_SYSTEM,
    THESIS_SYSTEM,
    DialecticConfig,
    DialecticEngine,
    PhaseFailed,
)
from hegelion_core.generation.generate import GenerateJob, Generator
from hegelion_core.plugins import make_driver
from hegelion_core.records import TraceRecord
from hegelion_core.testing.openai_server import RecordedRequest, ScriptedOpenAIServer
from tests.core.teachers import RuleTeacher

BUDGET = 40  # max_tokens; the scripted server counts one word as one token
N = 20


def synthesis_words(i: int) -> int:
    """Prompts 0-2 of every 10 (30%) get a synthesis longer than the budget: 1 and 2
    fit in twice the budget, 0 does not."""
    return {0: 5 * BUDGET, 1: BUDGET + 20, 2: BUDGET + 30}.get(i % 10, 12)


def full_synthesis(i: int) -> str:
    # Distinct words: long, but no loop (that would be rejected as degenerate instead).
    return " ".join(f"s{i}w{k}" for k in range(synthesis_words(i)))


def reply(request: RecordedRequest) -> str:
    messages = request.body["messages"]
    i = int(re.search(r"question (\d+)", messages[-1]["content"]).group(1))
    if messages[0]["content"] == SYNTHESIS_SYSTEM:
        return full_synthesis(i)
    if messages[0]["content"] == THESIS_SYSTEM:
        return f"For question {i} the plain answer holds in most cases."
    return f"CONTRADICTION: Question {i} has exceptions.\nEVIDENCE: Edge cases exist."


def run_generate(tmp_path: Path, srv: ScriptedOpenAIServer, **dialectic: Any) -> Path:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"question {i}\n" for i in range(N)))
    out = tmp_path / "traces.jsonl"
    teacher = make_driver("teachers", "openai", {"base_url": srv.base_url, "model": "m"})
    job = GenerateJob(
        output=out,
        concurrency=4,
        backoff_base=0.0,
        dialectic=DialecticConfig(max_tokens=BUDGET, **dialectic),
    )
    asyncio.run(Generator(job, teacher, FilePromptSource({"path": prompts})).run())
    return out


def rows(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


def index(record: dict[str, Any]) -> int:
    return int(record["instruction"].split()[-1])


def synthesis_budgets(srv: ScriptedOpenAIServer, i: int) -> list[int]:
    return [
        r.body["max_tokens"]
        for r in srv.completion_requests
        if r.body["messages"][0]["content"] == SYNTHESIS_SYSTEM
        and f"question {i}\n" in r.body["messages"][-1]["content"]
    ]


def test_cut_answers_are_retried_larger_then_rejected_and_never_stored(tmp_path) -> None:
    with ScriptedOpenAIServer(reply=reply) as srv:
        out = run_generate(tmp_path, srv)
    records = rows(out)
    stored = sorted(index(r) for r in records)
    assert stored == [i for i in range(N) if i % 10 != 0]
    for record in records:  # every stored synthesis is the whole answer, none is cut
        assert record["hegelion_trace"]["synthesis"] == full_synthesis(index(record))
        assert record["truncated"] is False
    assert synthesis_budgets(srv, 1) == [BUDGET, 2 * BUDGET]  # retried once, twice the budget
    assert synthesis_budgets(srv, 3) == [BUDGET]
    rejects = rows(out.with_name(out.name + ".rejects.jsonl"))
    assert sorted(index(r) for r in rejects) == [0, 10]
    for row in rejects:
        assert row["phase"] == "synthesis"
        assert row["reason"] == f"truncated: cut at max_tokens={BUDGET}, and again at {2 * BUDGET}"


def test_reject_rejects_without_a_retry(tmp_path) -> None:
    with ScriptedOpenAIServer(reply=reply) as srv:
        out = run_generate(tmp_path, srv, on_truncation="reject")
        assert synthesis_budgets(srv, 1) == [BUDGET]
    assert sorted(index(r) for r in rows(out)) == [i for i in range(N) if i % 10 > 2]
    rejects = rows(out.with_name(out.name + ".rejects.jsonl"))
    assert len(rejects) == 6 and all(r["reason"].startswith("truncated") for r in rejects)


def test_keep_stores_the_cut_answer_marked_and_dataset_skips_it(tmp_path) -> None:
    with ScriptedOpenAIServer(reply=reply) as srv:
        out = run_generate(tmp_path, srv, on_truncation="keep")
    records = {index(r): r for r in rows(out)}
    assert len(records) == N
    cut = sorted(i for i, r in records.items() if r["truncated"])
    assert cut == [i for i in range(N) if i % 10 <= 2]
    assert len(records[1]["hegelion_trace"]["synthesis"].split()) == BUDGET  # as the server cut it
    assert TraceRecord.model_validate(records[1]).truncated is True  # round-trips

    summary = build_dataset(DatasetJob(inputs=[out], output=tmp_path / "sft.jsonl", format="sft"))
    assert sum(summary.rows.values()) == N - len(cut)
    assert summary.skipped == {"truncated": len(cut)}
    written = rows(tmp_path / "sft.jsonl")
    assert {index(r) for r in written} == set(range(N)) - set(cut)


def test_without_max_tokens_the_retry_doubles_the_teachers_own_default() -> None:
    t = RuleTeacher()
    cut = iter([True, False])

    async def call(messages: list, *, phase: str, **kwargs: Any) -> Any:
        completion = await t.complete(messages, **kwargs)
        return completion.model_copy(
            update={"finish_reason": "length" if next(cut, False) else "stop"}
        )

    engine = DialecticEngine(t, DialecticConfig(), call=call)
    asyncio.run(engine.run("cats"))
    # RuleTeacher has no max_tokens option: the answer's usage (20 tokens) was the budget.
    assert [c[2]["max_tokens"] for c in t.calls] == [None, 40, None, None]


def test_the_cap_bounds_the_retry_and_a_loop_is_not_retried() -> None:
    t = RuleTeacher()

    async def always_cut(messages: list, *, phase: str, **kwargs: Any) -> Any:
        completion = await t.complete(messages, **kwargs)
        return completion.model_copy(update={"finish_reason": "length"})

    with pytest.raises(PhaseFailed, match=r"truncated: cut at max_tokens=100, and again at 150"):
        asyncio.run(
            DialecticEngine(
                t, DialecticConfig(max_tokens=100, max_tokens_cap=150), call=always_cut
            ).run("cats")
        )
    with pytest.raises(PhaseFailed, match="leaves no larger budget"):
        asyncio.run(
            DialecticEngine(
                t, DialecticConfig(max_tokens=100, max_tokens_cap=100), call=always_cut
            ).run("cats")
        )
    t.calls.clear()
    t.replies["thesis"] = ["deontology, " * 100]
    with pytest.raises(PhaseFailed, match="degenerate: repetitive") as info:
        asyncio.run(
            DialecticEngine(t, DialecticConfig(max_tokens=100), call=always_cut).run("cats")
        )
    assert info.value.phase == "thesis" and len(t.calls) == 1  # cut, but a loop: no retry


def test_the_cli_options_reach_the_dialectic(tmp_path) -> None:
    from click.testing import CliRunner

    from hegelion_core.cli import cli

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"question {i}\n" for i in range(3)))
    out = tmp_path / "t.jsonl"
    with ScriptedOpenAIServer(reply=reply) as srv:
        args = [
            "generate",
            "--prompt-file",
            str(prompts),
            "-o",
            str(out),
            "--teacher",
            "openai",
            "--base-url",
            srv.base_url,
            "--max-tokens",
            str(BUDGET),
            "-q",
        ]
        bad = CliRunner().invoke(cli, [*args, "--quality", "max_copied_shar=0.4"])
        assert bad.exit_code == 2 and "--quality" in bad.output and "unknown field" in bad.output
        CliRunner().invoke(
            cli, [*args, "--on-truncation", "reject", "--quality", "max_copied_share=0.4"]
        )
    rejects = rows(out.with_name(out.name + ".rejects.jsonl"))
    assert sorted(index(r) for r in rejects) == [0, 1, 2]
    assert all(r["reason"].endswith("(--on-truncation reject)") for r in rejects)
