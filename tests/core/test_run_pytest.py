""".ci/run_pytest.py, what every tox environment runs: a suite that collects no tests
fails, unless the environment says it may be empty."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RUN_PYTEST = Path(__file__).resolve().parents[2] / ".ci" / "run_pytest.py"


def run(where: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "HEGELION_TESTS_MAY_BE_EMPTY"} | env
    return subprocess.run(
        [sys.executable, str(RUN_PYTEST), "-q", "-p", "no:cacheprovider", str(where)],
        capture_output=True,
        text=True,
        env=environ,
        cwd=where,
        timeout=120,
    )


def test_a_suite_that_collects_nothing_fails(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("def helper():\n    return 1\n")
    out = run(tmp_path)
    assert out.returncode == 5, out.stdout + out.stderr
    assert "collected no tests" in out.stderr and "HEGELION_TESTS_MAY_BE_EMPTY=1" in out.stderr


def test_an_environment_meant_to_be_empty_says_so(tmp_path: Path) -> None:
    assert run(tmp_path, HEGELION_TESTS_MAY_BE_EMPTY="1").returncode == 0
    assert run(tmp_path, HEGELION_TESTS_MAY_BE_EMPTY="0").returncode == 5


def test_a_suite_with_tests_passes_and_fails_as_pytest_does(tmp_path: Path) -> None:
    (tmp_path / "test_one.py").write_text("def test_ok():\n    assert True\n")
    assert run(tmp_path).returncode == 0
    (tmp_path / "test_two.py").write_text("def test_bad():\n    assert False\n")
    assert run(tmp_path).returncode == 1
