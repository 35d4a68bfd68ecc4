"""`hegelion_core.testing` is usable outside pytest (the benchmarks import it), and its
pytest plugin is registered for every test run."""

from __future__ import annotations

import subprocess
import sys

WITHOUT_PYTEST = """
import sys
sys.modules["pytest"] = None  # any `import pytest` now fails
import hegelion_core.testing as testing
import hegelion_core.testing.calls
import hegelion_core.testing.openai_server
import hegelion_core.testing.sample_traces
import hegelion_core.testing.scripted_server
import hegelion_core.testing.tiny_models
assert len(testing.sample_records()) == 3
assert "torch" not in sys.modules and "transformers" not in sys.modules
try:
    testing.TeacherContract
except ImportError:
    print("contracts need pytest")
"""


def test_the_testing_package_imports_without_pytest_or_torch() -> None:
    done = subprocess.run([sys.executable, "-c", WITHOUT_PYTEST], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "contracts need pytest"
