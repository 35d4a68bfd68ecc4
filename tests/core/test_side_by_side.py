"""A stage's independent commands side by side, each pinned to its own cores."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from hegelion_core.pipeline.side_by_side import Job, cpu_shares, run_side_by_side

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux's (elsewhere: in turn)"
)


def topology(root: Path, cores: dict[int, tuple[int, int]]) -> Path:
    """/sys/devices/system/cpu as Linux lays it out: cpuN/topology/{physical_package_id,core_id}."""
    for cpu, (package, core) in cores.items():
        where = root / f"cpu{cpu}" / "topology"
        where.mkdir(parents=True)
        (where / "physical_package_id").write_text(f"{package}\n")
        (where / "core_id").write_text(f"{core}\n")
    return root


def test_shares_are_whole_cores_split_as_evenly_as_they_go(tmp_path: Path) -> None:
    # Intel's numbering on an SMT machine: cpu N and N+2 are one core's two hyperthreads.
    smt = topology(tmp_path / "smt", {0: (0, 0), 1: (0, 1), 2: (0, 0), 3: (0, 1)})
    assert cpu_shares(2, cpus=[0, 1, 2, 3], topology=smt) == [[0, 2], [1, 3]]
    assert cpu_shares(3, cpus=[0, 1, 2, 3], topology=smt) == [[0, 2], [1, 3]]  # 2 cores
    assert cpu_shares(2, cpus=[0, 2], topology=smt) is None  # one core: run in turn
    plain = topology(tmp_path / "plain", {i: (0, i) for i in range(5)})
    assert cpu_shares(2, cpus=range(5), topology=plain) == [[0, 1], [2, 3, 4]]
    assert cpu_shares(1, cpus=range(5), topology=plain) is None
    sockets = topology(tmp_path / "sockets", {0: (0, 0), 1: (1, 0)})  # core 0 of each
    assert cpu_shares(2, cpus=[0, 1], topology=sockets) == [[0], [1]]
    # No topology to read (a sandbox hiding /sys): each CPU counts as a core.
    assert cpu_shares(2, cpus=[0, 1], topology=tmp_path / "hidden") == [[0], [1]]


REPORT = """
import os, sys, time
print("cpus", sorted(os.sched_getaffinity(0)), os.environ.get("OMP_NUM_THREADS"), flush=True)
print("to stderr", file=sys.stderr, flush=True)
time.sleep({sleep})
sys.stdout.write("no newline at the end")
sys.exit({status})
"""


def job(label: str, *, sleep: float = 1.0, status: int = 0) -> Job:
    return Job(label, [sys.executable, "-c", REPORT.format(sleep=sleep, status=status)])


def test_commands_run_at_once_each_pinned_to_its_share(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "8")  # meant for the whole machine: left out
    cpu = min(os.sched_getaffinity(0))
    outcomes = run_side_by_side([job("a"), job("b", status=3)], [[cpu], [cpu]])

    a, b = outcomes
    assert (a.label, a.returncode, a.cpus) == ("a", 0, [cpu])
    assert (b.label, b.returncode) == ("b", 3)
    assert b.started_s < a.started_s + a.elapsed_s  # b started before a ended
    out, err = capfd.readouterr()
    for label in ("a", "b"):  # each line whole, behind its label, on its own stream
        assert f"  [{label}] cpus [{cpu}] None\n" in out  # the child saw only its share
        assert f"  [{label}] no newline at the end\n" in out
        assert f"  [{label}] to stderr\n" in err
    assert "to stderr" not in out


def test_fewer_shares_than_commands_run_in_waves() -> None:
    cpu = min(os.sched_getaffinity(0))
    first, second, third = run_side_by_side(
        [job("1", sleep=0.5), job("2", sleep=0.5), job("3", sleep=0.5)], [[cpu], [cpu]]
    )
    assert third.started_s >= min(
        first.started_s + first.elapsed_s, second.started_s + second.elapsed_s
    )
    assert second.started_s < first.started_s + first.elapsed_s
