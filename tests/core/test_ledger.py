"""The ledger's index is a cache; the output stays the truth."""

from __future__ import annotations

from hegelion_core.ledger import Ledger
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
