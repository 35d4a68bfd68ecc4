"""Every pipeline in examples/ is valid: it loads, and each stage whose command is
installed here plans to a command line its command accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from hegelion_core.errors import DriverNotFound, HegelionError
from hegelion_core.pipeline import load_pipeline, plan_pipeline

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def test_the_examples_are_there() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"quickstart", "simplex-qwen3", "ollama-export", "mac-kimi-mlx-scu"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_plans(path: Path, tmp_path: Path) -> None:
    config = load_pipeline(path, {"workdir": str(tmp_path)})
    try:
        plans = plan_pipeline(config)
    except (DriverNotFound, HegelionError) as exc:
        # Only a plugin command missing from this environment may stop the plan.
        assert "not installed" in str(exc) or "pip install" in str(exc), exc
        return
    assert [p.name for p in plans] == list(config.stages)
    for plan in plans:
        assert all(inv.argv for inv in plan.invocations)
