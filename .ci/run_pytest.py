"""Run pytest; "no tests collected" (exit 5) is not a failure of the environment."""

import sys

import pytest

code = pytest.main(sys.argv[1:])
if code == pytest.ExitCode.NO_TESTS_COLLECTED:
    print("pytest collected no tests here; treating as success")
    code = 0
sys.exit(code)
