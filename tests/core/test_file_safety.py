"""Hegelion never deletes or overwrites what it did not create (issue 12: 2, 3, 13, 14).

`hegelion dataset` writes into a directory only the files its split owns, never writes
over an input under any spelling, and says in one line, naming the path, why it cannot
write; a killed writer's temporary is removed by the next run, a live one never.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pytest

from hegelion_core.data.jsonl import atomic_output
from hegelion_core.errors import HegelionError

SPLITS = {
    "mlx": ["--format", "mlx", "--batch-size", "2", "--valid-ratio", "0.34"],
    "valid-ratio": ["--format", "sft", "--valid-ratio", "0.25"],
    "hf": ["--format", "dpo", "--to", "hf"],
}


def hegelion(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real command, so an unhandled error shows as the traceback a user would see."""
    return subprocess.run(
        [sys.executable, "-m", "hegelion_core", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def listing(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}


# ----- 2: a split directory holds only what the split owns ----------------------------


@pytest.mark.parametrize("split", SPLITS)
def test_a_directory_with_other_files_is_refused_then_written_beside_them(
    run_cli, example_traces, tmp_path, split
) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "notes.txt").write_text("my notes\n")
    own_input = out / "traces.jsonl"  # an input that lives inside the output directory
    own_input.write_bytes(example_traces.read_bytes())
    before = listing(out)

    result = run_cli("dataset", own_input, out, *SPLITS[split], ok=False)
    assert result.exit_code != 0
    assert f"{out}: holds files that `hegelion dataset` did not write" in result.output
    assert "notes.txt" in result.output and "--overwrite" in result.output
    assert listing(out) == before and sorted(os.listdir(out)) == ["notes.txt", "traces.jsonl"]

    run_cli("dataset", own_input, out, *SPLITS[split], "--overwrite")
    assert (out / "notes.txt").read_text() == "my notes\n"
    assert own_input.read_bytes() == example_traces.read_bytes()
    assert (out / "manifest.json").is_file() and (out / "README.md").is_file()
    assert {"notes.txt", "traces.jsonl"} < set(os.listdir(out))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_directory_the_dataset_wrote_is_updated_without_overwrite(
    run_cli, example_traces, tmp_path
) -> None:
    out = tmp_path / "mlx"
    run_cli(
        "dataset",
        example_traces,
        out,
        "--format",
        "mlx",
        "--batch-size",
        "1",
        "--valid-ratio",
        "0.25",
        "--test-ratio",
        "0.25",
    )
    assert (out / "test.jsonl").is_file()
    run_cli(
        "dataset",
        example_traces,
        out,
        "--format",
        "mlx",
        "--batch-size",
        "1",
        "--valid-ratio",
        "0.25",
    )
    # The earlier run's test split is its own and would be stale: it goes.
    assert sorted(os.listdir(out)) == ["README.md", "manifest.json", "train.jsonl", "valid.jsonl"]
    assert orjson.loads((out / "manifest.json").read_bytes())["counts"]["rows_valid"] == 3


def test_overwrite_never_removes_an_input_or_a_file_it_did_not_write(
    run_cli, example_traces, tmp_path
) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "test.jsonl").write_text("the user's own test set\n")
    run_cli(
        "dataset",
        example_traces,
        out,
        "--format",
        "mlx",
        "--batch-size",
        "2",
        "--valid-ratio",
        "0.34",
        "--overwrite",
    )
    assert (out / "test.jsonl").read_text() == "the user's own test set\n"  # not written this run
    own = out / "train.jsonl"
    own.write_bytes(example_traces.read_bytes())
    result = run_cli(
        "dataset",
        own,
        out,
        "--format",
        "mlx",
        "--batch-size",
        "2",
        "--valid-ratio",
        "0.34",
        "--overwrite",
        ok=False,
    )
    assert result.exit_code != 0 and "is the input" in result.output
    assert own.read_bytes() == example_traces.read_bytes()


def test_an_output_directory_that_is_a_file_is_refused(run_cli, example_traces, tmp_path) -> None:
    out = tmp_path / "data"
    out.write_text("not a directory\n")
    result = run_cli("dataset", example_traces, out, *SPLITS["valid-ratio"], ok=False)
    assert result.exit_code != 0 and f"{out}: exists and is not a directory" in result.output
    assert out.read_text() == "not a directory\n"


# ----- 3: an output is never an input ---------------------------------------------------


def _input_copy(example_traces: Path, path: Path) -> bytes:
    data = example_traces.read_bytes()
    path.write_bytes(data)
    return data


def test_output_equal_to_the_input_is_refused(example_traces, tmp_path) -> None:
    same = tmp_path / "same.jsonl"
    data = _input_copy(example_traces, same)
    for out in ("same.jsonl", "./same.jsonl", str(same)):
        proc = hegelion("dataset", "same.jsonl", out, "--format", "sft", cwd=tmp_path)
        assert proc.returncode != 0, out
        assert "is the input" in proc.stderr and "Traceback" not in proc.stderr
        assert same.read_bytes() == data
    assert sorted(os.listdir(tmp_path)) == ["same.jsonl"]


def test_output_equal_to_one_of_several_inputs_is_refused(
    run_cli, example_traces, tmp_path
) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    data = _input_copy(example_traces, first)
    second.write_bytes(data)
    result = run_cli("dataset", first, second, second, "--format", "chat", ok=False)
    assert (
        result.exit_code != 0 and f"{second}" in result.output and "is the input" in result.output
    )
    assert second.read_bytes() == data


@pytest.mark.parametrize("link", ["hard", "symbolic"])
def test_output_that_is_a_link_to_the_input_is_refused(
    run_cli, example_traces, tmp_path, link
) -> None:
    src = tmp_path / "traces.jsonl"
    data = _input_copy(example_traces, src)
    out = tmp_path / "out.jsonl"
    (os.link if link == "hard" else os.symlink)(src, out)
    result = run_cli("dataset", src, out, "--format", "sft", ok=False)
    assert result.exit_code != 0 and "is the input" in result.output
    assert src.read_bytes() == data and out.read_bytes() == data


def test_a_manifest_beside_the_output_that_is_an_input_is_refused(
    run_cli, example_traces, tmp_path
) -> None:
    src = tmp_path / "out.jsonl.manifest.json"
    data = _input_copy(example_traces, src)
    result = run_cli("dataset", src, tmp_path / "out.jsonl", "--format", "sft", ok=False)
    assert result.exit_code != 0 and "is the input" in result.output and "manifest" in result.output
    assert src.read_bytes() == data and not (tmp_path / "out.jsonl").exists()


# ----- 13: errors name the path, no traceback -----------------------------------------


def test_an_output_under_a_file_is_a_one_line_error(example_traces, tmp_path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    for out in (blocker / "out.jsonl", blocker / "sub" / "out.jsonl", blocker / "split"):
        extra = ["--valid-ratio", "0.25"] if out.suffix == "" else []
        proc = hegelion("dataset", example_traces, out, "--format", "sft", *extra)
        assert proc.returncode != 0
        assert "Traceback" not in proc.stderr, proc.stderr
        assert f"{blocker} is a file, not a directory" in proc.stderr, proc.stderr
    assert blocker.read_text() == "x"


@pytest.mark.skipif(
    not Path("/sys/kernel").is_dir(), reason="needs Linux's /sys (unwritable even for root)"
)
def test_an_unwritable_output_directory_is_a_one_line_error(example_traces) -> None:
    out = Path("/sys/kernel/hegelion-test.jsonl")
    proc = hegelion("dataset", example_traces, out, "--format", "sft")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "/sys/kernel" in proc.stderr and "permission denied" in proc.stderr.lower()


def test_an_output_file_that_is_a_directory_is_refused(example_traces, tmp_path) -> None:
    out = tmp_path / "out.jsonl"
    out.mkdir()
    proc = hegelion("dataset", example_traces, out, "--format", "sft")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert f"{out}: is a directory" in proc.stderr and list(out.iterdir()) == []


LAST_RESORT = textwrap.dedent("""
    import sys
    from hegelion_core import cli
    @cli.cli.command("boom")
    def boom():
        if sys.argv[1] == "file":
            open(sys.argv[2] + "/missing-dir/x.jsonl", "w")
        raise ConnectionResetError("no file here")
    cli.main(["boom"])
""")


def test_any_oserror_naming_a_file_is_one_line_without_traceback(tmp_path) -> None:
    """The CLI's last resort, for an OSError no command turned into its own message."""
    proc = subprocess.run(
        [sys.executable, "-c", LAST_RESORT, "file", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"Error: {tmp_path}/missing-dir/x.jsonl: No such file or directory"
    ]


def test_other_exceptions_keep_their_traceback(tmp_path) -> None:
    """Real bugs stay visible: only OSErrors that name a file are shortened."""
    proc = subprocess.run(
        [sys.executable, "-c", LAST_RESORT, "other", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        proc.returncode != 0
        and "Traceback" in proc.stderr
        and "ConnectionResetError" in proc.stderr
    )


def test_a_pickled_adapter_is_refused_with_what_to_do(tmp_path) -> None:
    from hegelion_core.training.config import require_peft_adapter

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8}')
    (adapter / "adapter_model.bin").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    with pytest.raises(HegelionError) as info:
        require_peft_adapter(adapter)
    message = str(info.value)
    assert str(adapter / "adapter_model.bin") in message
    assert (
        "pickled" in message and "safetensors" in message and "safe_serialization=True" in message
    )
    (adapter / "adapter_model.safetensors").write_bytes(b"")  # both: PEFT reads the safetensors
    assert require_peft_adapter(adapter) == adapter


# ----- 14: a killed writer's temporary is removed by the next run ---------------------

KILLED_WRITER = textwrap.dedent("""
    import os, sys, time
    from hegelion_core.data.jsonl import atomic_output
    with atomic_output(sys.argv[1]) as tmp:
        tmp.write_bytes(b"x" * 1_000_000)
        print(tmp, flush=True)
        time.sleep(600)
""")


def _start_writer(dest: Path) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(dest)], stdout=subprocess.PIPE, text=True
    )
    tmp = Path(proc.stdout.readline().strip())
    assert tmp.is_file() and tmp.parent == dest.parent
    return proc, tmp


def test_a_killed_writers_temporary_is_removed_by_the_next_run(tmp_path) -> None:
    dest = tmp_path / "out.jsonl"
    proc, tmp = _start_writer(dest)
    assert str(proc.pid) in tmp.name  # the temporary says whose it is
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert tmp.exists()  # what kill -9 leaves
    other = tmp_path / f".other.jsonl.tmp-{tmp.name.split('.tmp-')[1]}"  # another target's
    other.write_text("keep")
    lookalike = tmp_path / f".{dest.name}.tmp-oldstyle"
    lookalike.write_text("keep")
    with atomic_output(dest) as new:
        new.write_text("fresh\n")
    assert dest.read_text() == "fresh\n"
    assert not tmp.exists()
    assert other.read_text() == "keep" and lookalike.read_text() == "keep"


def test_a_live_writers_temporary_is_never_removed(tmp_path) -> None:
    dest = tmp_path / "out.jsonl"
    proc, tmp = _start_writer(dest)
    try:
        with atomic_output(dest) as new:
            new.write_text("mine\n")
        assert tmp.exists() and tmp.stat().st_size == 1_000_000
    finally:
        proc.kill()
        proc.wait()


def test_kill_9_of_hegelion_dataset_leaves_nothing_after_the_next_run(
    example_traces, tmp_path
) -> None:
    record = example_traces.read_bytes().splitlines()[0]
    src = tmp_path / "traces.jsonl"
    src.write_bytes((record + b"\n") * 300_000)  # long enough to kill it mid-write
    out = tmp_path / "sft.jsonl"
    args = ["dataset", str(src), str(out), "--format", "sft", "--no-dedupe", "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "hegelion_core", *args])
    deadline, temps = time.monotonic() + 120, []
    while time.monotonic() < deadline and proc.poll() is None:
        temps = [p for p in tmp_path.iterdir() if p.name.startswith(".sft.jsonl.tmp-")]
        if temps and temps[0].stat().st_size > 1_000_000:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert temps and temps[0].exists() and not out.exists()
    proc = hegelion(*args)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["sft.jsonl", "sft.jsonl.manifest.json", "traces.jsonl"]
