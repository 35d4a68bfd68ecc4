"""The ledger's index is a cache; the output stays the truth."""

from __future__ import annotations

import multiprocessing
import random
from pathlib import Path

import orjson
import pytest

from hegelion_core.generation.ledger import Ledger
from hegelion_core.records import prompt_id


def record(i: int) -> dict:
    return {"prompt_id": prompt_id(f"q{i}"), "instruction": f"q{i}"}


def test_index_covers_commits_and_a_fresh_ledger_reads_it(tmp_path) -> None:
    out = tmp_path / "o.jsonl"
    a = Ledger(out)
    for i in range(3):
        assert a.commit(record(i))
    assert not a.commit(record(1))  # already there
    lines = (tmp_path / "o.jsonl.index").read_bytes().splitlines()
    assert [x.split()[0].decode() for x in lines] == [prompt_id(f"q{i}") for i in range(3)]
    assert int(lines[-1].split()[1]) == out.stat().st_size
    b = Ledger(out)
    b.refresh()
    assert len(b.done) == 3 and b._tails["out"].offset == out.stat().st_size


def test_records_past_the_index_are_still_found(tmp_path) -> None:
    out = tmp_path / "o.jsonl"
    Ledger(out).commit(record(0))
    with out.open("ab") as fp:  # a writer killed between the record and its index line
        fp.write(b'{"prompt_id":"' + prompt_id("q9").encode() + b'"}\n')
    fresh = Ledger(out)
    fresh.refresh()
    assert fresh.settled(prompt_id("q9")) and fresh.settled(prompt_id("q0"))


def test_an_index_that_does_not_fit_the_output_is_ignored(tmp_path) -> None:
    out = tmp_path / "o.jsonl"
    led = Ledger(out)
    for i in range(3):
        led.commit(record(i))
    out.write_bytes(out.read_bytes().split(b"\n", 1)[1])  # the user removed the first line
    fresh = Ledger(out)
    fresh.refresh()
    assert not fresh.settled(prompt_id("q0")) and fresh.settled(prompt_id("q2"))


def test_a_damaged_index_is_ignored(tmp_path) -> None:
    out = tmp_path / "o.jsonl"
    Ledger(out).commit(record(0))
    (tmp_path / "o.jsonl.index").write_bytes(b"zz garbage\n")
    fresh = Ledger(out)
    fresh.refresh()
    assert fresh.settled(prompt_id("q0"))


def test_the_limit_caps_commits_across_ledgers(tmp_path) -> None:
    out = tmp_path / "o.jsonl"
    a, b = Ledger(out, limit=2), Ledger(out, limit=2)
    assert a.commit(record(0)) and b.commit(record(1))
    assert not a.commit(record(2)) and not b.commit(record(3))
    assert len(out.read_bytes().splitlines()) == 2


# ----- batches: one lock for many claims and commits ------------------------------------


def test_claim_many_takes_only_free_prompts_once(tmp_path) -> None:
    out = tmp_path / "o.jsonl"
    other = Ledger(out)
    other.pid = 1  # alive on every Linux: "another process"
    assert other.claim_many([prompt_id("q1"), prompt_id("q2")]) == [
        prompt_id("q1"),
        prompt_id("q2"),
    ]
    mine = Ledger(out)
    mine.commit(record(3))
    ids = [prompt_id(f"q{i}") for i in (0, 1, 2, 3, 4, 0)]
    assert mine.claim_many(ids) == [
        prompt_id("q0"),
        prompt_id("q4"),
    ]  # taken, done, repeated: skipped
    assert mine.claim_many([prompt_id("q0")]) == []  # taken by this ledger already
    claims = (tmp_path / "o.jsonl.claims").read_bytes().splitlines()
    assert len(claims) == 4  # one line per prompt taken, the batch written at once


def test_commit_many_skips_repeats_and_stops_at_the_limit(tmp_path) -> None:
    out = tmp_path / "o.jsonl"
    led = Ledger(out, limit=3)
    assert led.commit(record(0))
    batch = [record(1), record(1), record(0), record(2), record(3)]
    assert led.commit_many(batch) == [True, False, False, True, False]
    rows = out.read_bytes().splitlines(keepends=True)
    assert [orjson.loads(r)["prompt_id"] for r in rows] == [prompt_id(f"q{i}") for i in (0, 1, 2)]
    index = (tmp_path / "o.jsonl.index").read_bytes().splitlines()
    ends = [sum(len(r) for r in rows[: i + 1]) for i in range(3)]
    assert [(x.split()[0].decode(), int(x.split()[1])) for x in index] == list(
        zip([prompt_id(f"q{i}") for i in (0, 1, 2)], ends)
    )


def test_rejects_in_a_batch_count_once_each(tmp_path) -> None:
    out = tmp_path / "o.jsonl"
    led = Ledger(out, max_attempts=2)
    reject = {"prompt_id": prompt_id("q0"), "reason": "x"}
    led.commit_many([record(1)], [reject])
    led.refresh()  # our own lines are not counted a second time
    assert led.attempts[int(prompt_id("q0"), 16)] == 1 and not led.settled(prompt_id("q0"))
    led.reject(reject)
    assert led.settled(prompt_id("q0"))
    fresh = Ledger(out, max_attempts=2)
    fresh.refresh()
    assert fresh.settled(prompt_id("q0")) and fresh.settled(prompt_id("q1"))


def test_only_the_prompts_own_failures_count_toward_its_attempts(tmp_path) -> None:
    """A bad key or an outage is recorded but never uses a prompt up; rows without
    ``blame`` (older files) count, as they always did."""
    out = tmp_path / "o.jsonl"
    led = Ledger(out, max_attempts=1)
    q0, q1, q2 = (prompt_id(f"q{i}") for i in range(3))
    led.commit_many(
        [],
        [
            {"prompt_id": q0, "reason": "401", "blame": "auth"},
            {"prompt_id": q0, "reason": "503", "blame": "service"},
            {"prompt_id": q1, "reason": "unparseable", "blame": "prompt"},
            {"prompt_id": q2, "reason": 'old row, says "blame":"service"'},
        ],
    )
    for ledger in (led, Ledger(out, max_attempts=1)):
        ledger.refresh()
        assert not ledger.settled(q0) and ledger.settled(q1) and ledger.settled(q2)
    assert len(out.with_name("o.jsonl.rejects.jsonl").read_bytes().splitlines()) == 4
    assert led.claim_many([q0, q1, q2]) == [q0]


def test_the_index_gives_the_same_done_set_as_scanning_the_output(tmp_path) -> None:
    out = tmp_path / "o.jsonl"
    led = Ledger(out)
    for start in range(0, 300, 50):
        led.commit_many([record(i) for i in range(start, start + 50)])
    indexed = Ledger(out)
    indexed.refresh()
    (tmp_path / "o.jsonl.index").rename(tmp_path / "saved.index")
    scanned = Ledger(out)
    scanned.refresh()
    assert indexed.done == scanned.done == {int(prompt_id(f"q{i}"), 16) for i in range(300)}
    assert indexed._tails["out"].offset == scanned._tails["out"].offset == out.stat().st_size


@pytest.mark.parametrize(
    "damage", [b"ABCDEF 12\n", b"abc\n", b"abc 12 13\n", b"abc 1x\n", b"abc  12\n"]
)
def test_any_malformed_index_line_means_scanning(tmp_path, damage: bytes) -> None:
    out = tmp_path / "o.jsonl"
    Ledger(out).commit_many([record(0), record(1)])
    index = tmp_path / "o.jsonl.index"
    index.write_bytes(index.read_bytes() + damage)
    with out.open("ab") as fp:  # a record the damaged index does not cover
        fp.write(orjson.dumps(record(2)) + b"\n")
    fresh = Ledger(out)
    fresh.refresh()
    assert fresh.done == {int(prompt_id(f"q{i}"), 16) for i in range(3)}


def _batch_writer(out: str, seed: int, limit: int | None) -> None:
    """One process committing overlapping batches as fast as it can."""
    rng = random.Random(seed)
    led = Ledger(Path(out), limit=limit)
    for _ in range(40):
        led.commit_many([record(rng.randrange(400)) for _ in range(rng.randrange(1, 30))])


@pytest.mark.parametrize("limit", [None, 150])
def test_batches_from_many_processes_never_duplicate_or_tear(tmp_path, limit: int | None) -> None:
    out = tmp_path / "o.jsonl"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_batch_writer, args=(str(out), seed, limit)) for seed in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 6
    ids = [orjson.loads(line)["prompt_id"] for line in out.read_bytes().splitlines()]
    assert len(ids) == len(set(ids)) and (limit is None or len(ids) == limit)
    assert len(ids) > 100  # the processes really overlapped on one file
    fresh = Ledger(out)
    fresh.refresh()  # the index written by six processes still fits the output
    assert fresh._tails["out"].offset == out.stat().st_size
    assert fresh.done == {int(i, 16) for i in ids}


def test_a_commit_after_a_killed_writer_indexes_the_killed_writers_records(tmp_path) -> None:
    """A writer killed between its record and its index line, then another commit: the
    next index line covers the killed writer's record too, so it must list it, or a
    resumed run (reading the index, not the output) counts it as not done and writes
    past --limit (CI saw 18 records for --limit 16 after kill -9)."""
    out = tmp_path / "o.jsonl"
    Ledger(out).commit(record(0))
    with out.open("ab") as fp:  # the killed writer's record, without its index line
        fp.write(orjson.dumps(record(9)) + b"\n")
    assert Ledger(out).commit(record(1))
    fresh = Ledger(out, limit=3)
    fresh.refresh()
    assert fresh.settled(prompt_id("q9"))
    assert fresh.done == {int(prompt_id(f"q{i}"), 16) for i in (0, 1, 9)} and fresh.full
    index = (tmp_path / "o.jsonl.index").read_bytes().splitlines()
    assert [x.split()[0].decode() for x in index] == [prompt_id(f"q{i}") for i in (0, 9, 1)]
    assert int(index[-1].split()[1]) == out.stat().st_size
