"""Files are never torn: atomic outputs, line-atomic concurrent appends, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import orjson
import pytest

from hegelion_core.data.jsonl import (
    OUTPUT_MARK,
    TORN_TAIL,
    NotOurs,
    append_jsonl,
    atomic_output,
    manifest_stage,
    read_jsonl,
)
from hegelion_core.errors import HegelionError, InputError


def test_read_reports_file_line_and_problem(tmp_path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n\n[1, 2]\n{"b": \n')
    with pytest.raises(InputError) as info:
        list(read_jsonl(p))
    assert str(info.value).startswith(f"{p}:3: expected a JSON object, got list")
    problems: list[tuple[int, str]] = []
    rows = list(
        read_jsonl(p, skip_invalid=True, on_invalid=lambda n, why: problems.append((n, why)))
    )
    assert rows == [(1, {"a": 1})]
    assert [n for n, _ in problems] == [3, 4] and "invalid JSON" in problems[1][1]


def test_missing_file(tmp_path) -> None:
    with pytest.raises(InputError, match="file not found"):
        list(read_jsonl(tmp_path / "nope.jsonl"))


def test_atomic_output_keeps_the_old_file_on_error(tmp_path) -> None:
    dest = tmp_path / "out.jsonl"
    dest.write_text("old\n")
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(dest) as tmp:
            tmp.write_text("half of the new da")
            raise KeyboardInterrupt
    assert dest.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out.jsonl"]


def test_atomic_output_replaces_a_directory_it_wrote_whole(tmp_path) -> None:
    dest = tmp_path / "data"
    with atomic_output(dest, directory=True) as tmp:
        (tmp / "stale.jsonl").write_text("x")
    assert json.loads((dest / OUTPUT_MARK).read_text())["names"] == ["stale.jsonl"]
    with atomic_output(dest, directory=True) as tmp:
        (tmp / "train.jsonl").write_text("{}\n")
    assert sorted(os.listdir(dest)) == [OUTPUT_MARK, "train.jsonl"]
    assert os.listdir(tmp_path) == ["data"]
    assert dest.stat().st_mode & 0o777 == 0o777 & ~_umask()


def test_atomic_output_never_replaces_a_directory_holding_files_it_did_not_write(tmp_path) -> None:
    dest = tmp_path / "models"
    dest.mkdir()
    (dest / "my-model.gguf").write_text("the user's")
    with pytest.raises(
        NotOurs,
        match=r"models: holds files that Hegelion did not write "
        r"\(my-model.gguf\).*\n  hint: use --out models/x",
    ):
        with atomic_output(dest, directory=True, hint="use --out models/x") as tmp:
            (tmp / "new.gguf").write_text("x")
    assert os.listdir(dest) == ["my-model.gguf"] and os.listdir(tmp_path) == ["models"]

    # A file added by hand into a directory Hegelion wrote is not Hegelion's either,
    # and neither is one that appears while the work runs.
    with atomic_output(tmp_path / "ours", directory=True) as tmp:
        (tmp / "a.txt").write_text("a")
    (tmp_path / "ours" / "notes.txt").write_text("mine")
    with pytest.raises(NotOurs, match=r"notes.txt"):
        with atomic_output(tmp_path / "ours", directory=True):
            pass
    with pytest.raises(NotOurs, match=r"late.txt"):
        with atomic_output(dest.with_name("fresh"), directory=True):
            dest.with_name("fresh").mkdir()
            (dest.with_name("fresh") / "late.txt").write_text("mine")
    assert (tmp_path / "ours" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "fresh" / "late.txt").read_text() == "mine"

    (tmp_path / "afile").write_text("not a directory")
    with pytest.raises(HegelionError, match="afile: exists and is not a directory"):
        with atomic_output(tmp_path / "afile", directory=True):
            pass
    assert (tmp_path / "afile").read_text() == "not a directory"


def test_atomic_output_replaces_an_earlier_versions_output_it_recognises(tmp_path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "manifest.json").write_text('{"stage": "export"}')
    (dest / "model.gguf").write_text("old")

    def earlier(d):
        return {"manifest.json", "model.gguf"} if manifest_stage(d) == "export" else None

    with atomic_output(dest, directory=True, earlier=earlier) as tmp:
        (tmp / "model.gguf").write_text("new")
    assert (dest / "model.gguf").read_text() == "new" and not (dest / "manifest.json").exists()


def test_beside_others_moves_in_only_its_names(tmp_path) -> None:
    dest = tmp_path / "models"
    dest.mkdir()
    (dest / "other.gguf").write_text("the user's")
    with atomic_output(dest, directory=True, beside_others=True) as tmp:
        (tmp / "a.gguf").write_text("1")
    with atomic_output(dest, directory=True, beside_others=True) as tmp:  # its own: replaced
        (tmp / "a.gguf").write_text("2")
        (tmp / "Modelfile").write_text("FROM ./a.gguf")
    assert (dest / "other.gguf").read_text() == "the user's" and (
        dest / "a.gguf"
    ).read_text() == "2"
    assert json.loads((dest / OUTPUT_MARK).read_text())["names"] == ["Modelfile", "a.gguf"]
    with pytest.raises(
        NotOurs,
        match=r"holds files that Hegelion did not write \(other.gguf\); "
        "the output has files of those names",
    ):
        with atomic_output(dest, directory=True, beside_others=True) as tmp:
            (tmp / "other.gguf").write_text("x")
    assert (dest / "other.gguf").read_text() == "the user's"


def test_an_output_directory_never_holds_an_input(tmp_path) -> None:
    model = tmp_path / "out" / "base"
    model.mkdir(parents=True)
    for dest, where in ((tmp_path / "out", "holds"), (model, "is")):
        with pytest.raises(HegelionError, match=f"the output directory {where} the input"):
            with atomic_output(
                dest, directory=True, beside_others=True, inputs=[tmp_path / "out" / "." / "base"]
            ):
                pass
    assert os.listdir(model) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_swap_cut_between_its_renames_is_put_back(tmp_path) -> None:
    """kill -9 between `dest -> .dest.old-…` and `tmp -> dest`: the next run restores the old
    directory instead of leaving the only copy under a hidden name (or deleting it)."""
    from hegelion_core.data.jsonl import _HOST, remove_stale_temporaries

    dest = tmp_path / "merged"
    old = tmp_path / f".merged.old-{_HOST}-{_dead_pid()}"
    old.mkdir()
    (old / "model.safetensors").write_text("weights")
    (old / OUTPUT_MARK).write_text('{"names": ["model.safetensors"]}')
    assert remove_stale_temporaries(dest) == [old]
    assert (dest / "model.safetensors").read_text() == "weights" and not old.exists()

    old.mkdir()  # cut during the final delete instead: dest is the new one, old is garbage
    (old / "half").write_text("x")
    elsewhere = tmp_path / f".merged.old-{'0' * 8}-{_dead_pid()}"  # another machine's
    elsewhere.mkdir()
    with atomic_output(dest, directory=True) as tmp:
        (tmp / "model.safetensors").write_text("new weights")
    assert (dest / "model.safetensors").read_text() == "new weights"
    assert sorted(os.listdir(tmp_path)) == [elsewhere.name, "merged"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


WRITER = textwrap.dedent(
    """
    import sys
    from hegelion_core.data.jsonl import append_jsonl
    path, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pad = "x" * 70000  # larger than a pipe buffer: a torn write would show
    for i in range(n):
        append_jsonl(path, [{"who": who, "i": i, "pad": pad}, {"who": who, "i": i, "second": True}])
    """
)


def test_concurrent_appends_never_interleave(tmp_path) -> None:
    path = tmp_path / "shared.jsonl"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), "40"]) for w in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    lines = path.read_bytes().splitlines()
    rows = [orjson.loads(line) for line in lines]
    assert len(rows) == 4 * 40 * 2
    for first, second in zip(rows[::2], rows[1::2]):  # each batch stayed contiguous
        assert first["who"] == second["who"] and first["i"] == second["i"] and second["second"]


def test_kill_9_loses_at_most_the_batch_in_flight(tmp_path) -> None:
    path = tmp_path / "killed.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "k", "100000"])
    deadline = time.monotonic() + 60
    while (not path.exists() or path.stat().st_size < 2_000_000) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    torn: list[str] = []
    rows = [r for _, r in read_jsonl(path, on_invalid=lambda n, why: torn.append(why))]
    assert len(rows) >= 20 and len(rows) % 2 == 0  # whole batches only
    assert torn in ([], [TORN_TAIL])
    append_jsonl(path, [{"resumed": True}])  # the next writer repairs any torn tail
    lines = path.read_bytes().splitlines()
    assert [orjson.loads(x) for x in lines][:-1] == rows
    assert orjson.loads(lines[-1]) == {"resumed": True}


def test_a_torn_tail_is_ignored_then_repaired(tmp_path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": "half a rec')
    torn: list[tuple[int, str]] = []
    assert [r for _, r in read_jsonl(path, on_invalid=lambda n, why: torn.append((n, why)))] == [
        {"a": 1},
        {"b": 2},
    ]
    assert torn == [(3, TORN_TAIL)]
    append_jsonl(path, [{"d": 4}])
    assert path.read_bytes() == b'{"a": 1}\n{"b": 2}\n{"d":4}\n'


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path) -> None:
    """A file written by hand or another tool may lack the final newline: its last line is
    a record (read_jsonl yields it), so an append ends it instead of cutting it off."""
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": 2}')
    assert [r for _, r in read_jsonl(path)] == [{"a": 1}, {"b": 2}]
    append_jsonl(path, [{"c": 3}])
    assert path.read_bytes() == b'{"a": 1}\n{"b": 2}\n{"c":3}\n'
    path.write_bytes(b'{"only": "line"}')
    append_jsonl(path, [{"d": 4}])
    assert [r for _, r in read_jsonl(path)] == [{"only": "line"}, {"d": 4}]


def test_a_bad_line_in_the_middle_is_still_an_error(tmp_path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"a": 1}\n{"c": "half\n{"b": 2}')
    with pytest.raises(InputError, match=":2: invalid JSON"):
        list(read_jsonl(path))


def test_append_returns_line_count(tmp_path) -> None:
    assert append_jsonl(tmp_path / "a.jsonl", []) == 0
    assert append_jsonl(tmp_path / "a.jsonl", [{"x": "line\\nbreak"}, {"y": 2}]) == 2
    assert [r for _, r in read_jsonl(tmp_path / "a.jsonl")] == [{"x": "line\\nbreak"}, {"y": 2}]
