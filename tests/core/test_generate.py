"""The generator: limits, resume, retries with Retry-After, timeouts, rejects,
concurrency and rate bounds, on an in-process teacher."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from hegelion_core.contracts import PromptSource, TeacherError
from hegelion_core.data.prompt_sources.file import FilePromptSource
from hegelion_core.generation.dialectic import DialecticConfig
from hegelion_core.generation.generate import GenerateJob, Generator, run_generate
from hegelion_core.records import Prompt, TraceRecord, prompt_id
from tests.core.teachers import RuleTeacher


def prompts_file(tmp_path: Path, n: int) -> Path:
    p = tmp_path / "prompts.txt"
    p.write_text("".join(f"question {i}\n" for i in range(n)))
    return p


def lines(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


def generate(
    tmp_path: Path, teacher: RuleTeacher, n_prompts: int = 10, **job
) -> tuple[Generator, Path]:
    out = tmp_path / "traces.jsonl"
    job.setdefault("backoff_base", 0.0)
    gen = Generator(
        GenerateJob(output=out, **job),
        teacher,
        FilePromptSource({"path": prompts_file(tmp_path, n_prompts)}),
    )
    asyncio.run(gen.run())
    return gen, out


def test_writes_valid_records_up_to_the_limit(tmp_path) -> None:
    gen, out = generate(tmp_path, RuleTeacher(), limit=6)
    rows = lines(out)
    assert len(rows) == 6 == gen.stats.written
    records = [TraceRecord.model_validate(r) for r in rows]
    assert {r.prompt_id for r in records} == {prompt_id(f"question {i}") for i in range(6)}
    assert all(
        r.teacher == "rule" and r.model == "rule-1" and r.usage.total_tokens == 90 for r in records
    )
    assert set(records[0].timings) == {"thesis", "antithesis", "synthesis"}
    first = next(
        r for r in records if r.instruction == "question 0"
    )  # records land in finishing order
    assert first.source == "prompts.txt:1"


def test_rerun_resumes_where_it_stopped(tmp_path) -> None:
    t1 = RuleTeacher()
    _, out = generate(tmp_path, t1, limit=4)
    first = out.read_bytes()
    t2 = RuleTeacher()
    gen, _ = generate(tmp_path, t2, limit=7)
    assert out.read_bytes().startswith(first)
    assert gen.stats.already_done == 4 and gen.stats.written == 3
    assert len({r["prompt_id"] for r in lines(out)}) == 7
    assert {question for _, msgs, _ in t2.calls for question in [msgs[-1].content]} >= {
        "question 4"
    }
    assert not any(msgs[-1].content == "question 0" for _, msgs, _ in t2.calls)  # no work redone


def test_no_limit_runs_the_whole_source(tmp_path) -> None:
    gen, out = generate(tmp_path, RuleTeacher(), n_prompts=5)
    assert gen.stats.written == 5 and len(lines(out)) == 5


def test_retries_honour_retry_after_then_succeed(tmp_path) -> None:
    t = RuleTeacher()
    t.failures["question 0"] = [
        TeacherError("429", retryable=True, retry_after=0.3),
        TeacherError("503", retryable=True),
    ]
    start = time.monotonic()
    gen, out = generate(tmp_path, t, n_prompts=1, max_retries=3)
    assert time.monotonic() - start >= 0.3
    assert gen.stats.retried == 2 and gen.stats.written == 1 and gen.stats.rejected == 0


def test_failures_go_to_rejects_with_a_reason_never_to_the_output(tmp_path) -> None:
    t = RuleTeacher()
    t.failures["question 1"] = [TeacherError("HTTP 401 bad key", retryable=False)]
    t.failures["question 2"] = [TeacherError("500", retryable=True)] * 3
    t.replies["synthesis"] = ["[Synthesis generation failed: timeout]"]  # the first synthesis
    gen, out = generate(tmp_path, t, n_prompts=5, max_retries=2)
    rejects = lines(tmp_path / "traces.jsonl.rejects.jsonl")
    reasons = {r["instruction"]: (r["phase"], r["reason"]) for r in rejects}
    assert reasons["question 1"] == ("thesis", "teacher error: HTTP 401 bad key")
    assert reasons["question 2"] == ("thesis", "teacher error after 3 attempts: 500")
    assert reasons["question 0"][0] == "synthesis" and "placeholder" in reasons["question 0"][1]
    assert gen.stats.written == 2 and gen.stats.rejected == 3
    assert b"generation failed" not in out.read_bytes()
    assert {r["instruction"]: r["blame"] for r in rejects} == {
        "question 0": "prompt",
        "question 1": "prompt",
        "question 2": "service",
    }
    assert gen.stats.not_counted == 1
    assert gen.stats.reasons == {
        "thesis: teacher error: HTTP 401 bad key": 1,
        "thesis: teacher error after 3 attempts: 500 (service, not counted)": 1,
        "synthesis: empty or placeholder output ('[Synthesis generation failed": 1,
    }


def test_rejected_prompts_are_retried_until_max_attempts(tmp_path) -> None:
    t = RuleTeacher()
    t.failures["question 0"] = [TeacherError("bad", retryable=False)] * 10
    for run in range(1, 4):
        gen, out = generate(tmp_path, t, n_prompts=1, max_retries=2)
        assert gen.stats.rejected == (1 if run <= 2 else 0)
    assert len(lines(tmp_path / "traces.jsonl.rejects.jsonl")) == 2  # then it is settled


def test_a_hung_call_times_out_and_is_retried(tmp_path) -> None:
    t = RuleTeacher()
    t.failures["question 0"] = ["hang"]
    gen, out = generate(tmp_path, t, n_prompts=1, timeout=0.2, max_retries=1)
    assert gen.stats.retried == 1 and gen.stats.written == 1


def test_concurrency_is_bounded(tmp_path) -> None:
    t = RuleTeacher({"delay": 0.02})
    gen, _ = generate(tmp_path, t, n_prompts=30, concurrency=4)
    assert gen.stats.written == 30 and t.max_in_flight == 4


def test_requests_per_minute_are_paced(tmp_path) -> None:
    t = RuleTeacher()
    start = time.monotonic()
    generate(
        tmp_path, t, n_prompts=7, rpm=600, concurrency=8
    )  # 21 calls at 10 a second, 10 may burst
    assert time.monotonic() - start >= 1.0


def test_council_judge_and_iterations_reach_the_record(tmp_path) -> None:
    config = DialecticConfig(council=["science"], judge=True, iterations=2)
    _, out = generate(tmp_path, RuleTeacher(), n_prompts=1, dialectic=config)
    record = TraceRecord.model_validate(lines(out)[0])
    assert [c.persona for c in record.hegelion_trace.critiques] == [
        "logician",
        "empiricist",
        "historian",
    ]
    assert record.hegelion_trace.judge.score == 8 and record.hegelion_trace.iterations == 2


def test_run_generate_writes_a_manifest_without_secrets(tmp_path, monkeypatch) -> None:
    out = tmp_path / "t.jsonl"
    job = GenerateJob(output=out, limit=2)
    stats = run_generate(
        job, RuleTeacher(), FilePromptSource({"path": prompts_file(tmp_path, 3)}), progress=False
    )
    manifest = orjson.loads((tmp_path / "t.jsonl.manifest.json").read_bytes())
    assert manifest["stage"] == "generate" and manifest["counts"]["written"] == stats.written == 2
    assert manifest["config"]["job"]["limit"] == 2 and manifest["config"]["teacher"] == "rule"


def test_prompts_already_claimed_by_a_live_process_are_left_alone(tmp_path) -> None:
    from hegelion_core.generation.ledger import Ledger

    out = tmp_path / "traces.jsonl"
    other = Ledger(out)
    other.pid = 1  # pid 1 is alive on every Linux: a live claim from "another process"
    assert other.claim(prompt_id("question 0"))
    gen, _ = generate(tmp_path, RuleTeacher(), n_prompts=3)
    assert gen.stats.written == 2 and gen.stats.skipped == 1


def test_claims_of_dead_processes_are_taken_over(tmp_path) -> None:
    from hegelion_core.generation.ledger import Ledger

    out = tmp_path / "traces.jsonl"
    dead = Ledger(out)
    dead.pid = 2**22 + 12345  # beyond pid_max defaults: no such process
    assert dead.claim(prompt_id("question 0"))
    gen, _ = generate(tmp_path, RuleTeacher(), n_prompts=3)
    assert gen.stats.written == 3


def test_keys_never_reach_rejects_or_records(tmp_path, monkeypatch) -> None:
    from hegelion_core.secrets import get_secret

    monkeypatch.setenv("HEGELION_TEST_API_KEY", "sk-live-abcdef123456")
    key = get_secret("HEGELION_TEST_API_KEY")
    t = RuleTeacher()
    t.failures["question 0"] = [TeacherError(f"401: key {key} was refused", retryable=False)]
    generate(tmp_path, t, n_prompts=2)
    for name in ("traces.jsonl", "traces.jsonl.rejects.jsonl"):
        assert b"sk-live-abcdef123456" not in (tmp_path / name).read_bytes()
    assert b"401: key *** was refused" in (tmp_path / "traces.jsonl.rejects.jsonl").read_bytes()


def test_secrets_come_from_the_config_file(tmp_path, monkeypatch) -> None:
    from hegelion_core.errors import HegelionError
    from hegelion_core.secrets import get_secret, require_secret

    monkeypatch.setenv("HEGELION_CONFIG_DIR", str(tmp_path))
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(HegelionError, match="needs MY_KEY: export MY_KEY=... or add it to"):
        require_secret("MY_KEY", "teacher 'x'")
    (tmp_path / "secrets.toml").write_text('MY_KEY = "from-file-123"\n')
    assert get_secret("MY_KEY") == "from-file-123"
    monkeypatch.setenv("MY_KEY", "from-env-456")
    assert get_secret("MY_KEY") == "from-env-456"


def test_retry_after_and_retryable_statuses() -> None:
    from hegelion_core.generation.limits import parse_retry_after, retryable_status

    assert parse_retry_after({"Retry-After": "7"}) == 7.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "soon"}) is None and parse_retry_after(None) is None
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert [s for s in (400, 401, 404, 408, 409, 425, 429, 500, 529) if retryable_status(s)] == [
        408,
        409,
        425,
        429,
        500,
        529,
    ]
    assert not retryable_status(None)


# ----- the hot path: slots, group commits, pacing, the resume fast path ------------------


def test_the_limit_is_met_even_when_prompts_in_flight_fail(tmp_path) -> None:
    t = RuleTeacher({"delay": 0.02})
    for i in (0, 2, 3):
        t.failures[f"question {i}"] = [TeacherError("bad", retryable=False)]
    gen, out = generate(tmp_path, t, n_prompts=12, limit=4, concurrency=4)
    assert gen.stats.written == 4 and gen.stats.rejected == 3 and len(lines(out)) == 4
    assert len({r["prompt_id"] for r in lines(out)}) == 4


def test_a_cancelled_run_still_writes_what_finished(tmp_path) -> None:
    """Ctrl-C: records whose teacher call finished are written, in-flight ones are not,
    and nothing half-written is left."""
    out = tmp_path / "traces.jsonl"
    t = RuleTeacher({"delay": 0.05})
    t.failures["question 7"] = ["hang"]
    gen = Generator(
        GenerateJob(output=out, concurrency=4, backoff_base=0.0),
        t,
        FilePromptSource({"path": prompts_file(tmp_path, 8)}),
    )

    async def interrupted() -> None:
        task = asyncio.create_task(gen.run())
        while gen.stats.written < 6:  # six written, one hung
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(interrupted())
    rows = lines(out)
    assert len(rows) >= 6 and "question 7" not in {r["instruction"] for r in rows}
    assert out.read_bytes().endswith(b"\n") and t.closed == 1


class _PlainSource(PromptSource):
    """A source without the fast path, as a third-party one would be."""

    name = "plain"

    class Options(FilePromptSource.Options):
        pass

    def iter_prompts(self) -> Iterator[Prompt]:
        return FilePromptSource(self.options.model_dump()).iter_prompts()


@pytest.mark.parametrize("source_cls", [FilePromptSource, _PlainSource])
def test_resume_skips_the_same_prompts_with_or_without_the_fast_path(tmp_path, source_cls) -> None:
    out = tmp_path / "traces.jsonl"
    prompts = prompts_file(tmp_path, 10)
    first = Generator(
        GenerateJob(output=out, limit=5), RuleTeacher(), FilePromptSource({"path": prompts})
    )
    asyncio.run(first.run())
    t = RuleTeacher()
    t.failures["question 6"] = [TeacherError("bad", retryable=False)] * 5
    asyncio.run(
        Generator(GenerateJob(output=out, max_retries=1), t, source_cls({"path": prompts})).run()
    )
    t2 = RuleTeacher()
    again = Generator(GenerateJob(output=out, max_retries=1), t2, source_cls({"path": prompts}))
    asyncio.run(again.run())
    assert (
        again.stats.skipped == 10 and again.stats.written == 0 and not t2.calls
    )  # 9 written, 1 settled
    assert again.stats.already_done == 9


def test_the_pacer_spreads_a_burst_and_stays_out_of_the_way_otherwise() -> None:
    from hegelion_core.generation.limits import StartPacer

    pacer = StartPacer(64, headroom=2.0, burst=4)
    assert pacer.delay() == 0.0  # no estimate yet: the first wave starts at once
    pacer.observe(0.64)  # interval 0.64 / (64 * 2) = 5 ms
    delays = [pacer.delay() for _ in range(12)]  # twelve slots freed at once
    assert delays[:4] == [0.0] * 4  # a burst of four goes at once
    assert delays[4:] == pytest.approx([0.005 * k for k in range(1, 9)], abs=2e-3)
    pacer.observe(600.0)  # one job stuck in a long backoff
    assert pacer.cycle == pytest.approx(0.64 + (1.28 - 0.64) * 4 / 64)
    one = StartPacer(1)
    one.observe(0.5)
    assert [one.delay() for _ in range(3)] == [0.0] * 3


def test_a_failed_write_stops_the_run_with_its_error(tmp_path) -> None:
    out = tmp_path / "traces.jsonl"
    gen = Generator(
        GenerateJob(output=out, concurrency=4),
        RuleTeacher(),
        FilePromptSource({"path": prompts_file(tmp_path, 6)}),
    )

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    gen.ledger.commit_many = full_disk  # type: ignore[method-assign]
    with pytest.raises(OSError, match="No space left"):
        asyncio.run(gen.run())
    assert not out.exists() or out.read_bytes() == b""


class CollectorWatchingTeacher(RuleTeacher):
    """Notes the garbage collector's settings while a request is in flight."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[tuple[int, int, int], int]] = []

    async def complete(self, messages, **kwargs):
        self.seen.append((gc.get_threshold(), gc.get_freeze_count()))
        return await super().complete(messages, **kwargs)


def test_the_collector_is_tuned_during_a_run_and_restored_after_it(tmp_path) -> None:
    before, teacher = gc.get_threshold(), CollectorWatchingTeacher()
    generate(tmp_path, teacher, limit=2)
    assert teacher.seen and all(t[0] == 20_000 and frozen > 0 for t, frozen in teacher.seen)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0

    gen = Generator(
        GenerateJob(output=tmp_path / "second.jsonl", concurrency=2),
        RuleTeacher(),
        FilePromptSource({"path": prompts_file(tmp_path, 2)}),
    )

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    gen.ledger.commit_many = full_disk  # type: ignore[method-assign]
    with pytest.raises(OSError):
        asyncio.run(gen.run())
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0  # restored on error too
