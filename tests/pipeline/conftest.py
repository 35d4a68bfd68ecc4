"""One small run of the README's main job (examples/quickstart.yaml), shared by the tests
that check what it made: it takes minutes, so it runs once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"
#: The quickstart at a small size: two records, two training steps, one eval prompt. The
#: phases keep the quickstart's own max_tokens, so they finish as they do in the real run.
SMALL = [
    "stages.generate.limit=2",
    "stages.train.config.training.max_steps=2",
    "stages.train.config.training.save_steps=1",
    "stages.eval.limit=1",
    "stages.eval.max_tokens=48",
]


@dataclass
class QuickstartRun:
    workdir: Path
    cache: Path
    first: subprocess.CompletedProcess

    def again(self) -> subprocess.CompletedProcess:
        return hegelion_run(self.workdir, self.cache)


def hegelion_run(workdir: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    overrides = [x for o in [f"workdir={workdir}", *SMALL] for x in ("-c", o)]
    return subprocess.run(
        [sys.executable, "-m", "hegelion_core", "run", str(QUICKSTART), *overrides, *args],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        env=os.environ | {"HEGELION_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "2"},
    )


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> QuickstartRun:
    root = tmp_path_factory.mktemp("quickstart")
    workdir, cache = root / "run", root / "cache"
    first = hegelion_run(workdir, cache)
    assert first.returncode == 0, first.stderr[-4000:]
    return QuickstartRun(workdir, cache, first)
