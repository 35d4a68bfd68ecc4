"""The README's main job, examples/quickstart.yaml, end to end at a small size: the real
llama-cpp teacher on SmolLM2, TRL LoRA on its transformers copy, q4_k_m GGUF with a
Modelfile, and format compliance before and after. Then a rerun skips every stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"
SMALL = [
    "stages.generate.limit=2", "stages.generate.max_tokens=48",
    "stages.train.config.training.max_steps=2", "stages.train.config.training.save_steps=1",
    "stages.eval.limit=1", "stages.eval.max_tokens=48",
]


def hegelion_run(workdir: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    overrides = [x for o in [f"workdir={workdir}", *SMALL] for x in ("-c", o)]
    return subprocess.run(
        [sys.executable, "-m", "hegelion_core", "run", str(QUICKSTART), *overrides, *args],
        capture_output=True, text=True, timeout=1800, check=False,
        env=os.environ | {"HEGELION_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "2"},
    )


@pytest.mark.slow
def test_quickstart_runs_end_to_end_then_skips_everything(tmp_path: Path) -> None:
    w = tmp_path / "run"
    first = hegelion_run(w, tmp_path / "cache")
    assert first.returncode == 0, first.stderr[-4000:]
    for stage in ("generate", "format", "train", "export", "eval"):
        assert (w / stage / "stage.json").is_file(), stage
    assert len((w / "generate" / "traces.jsonl").read_text().splitlines()) == 2
    export = json.loads((w / "export" / "stage.json").read_text())["artifact"]
    gguf = Path(export["gguf"])
    assert gguf.suffix == ".gguf" and gguf.stat().st_size > 50_000_000
    modelfile = Path(export["modelfile"]).read_text()
    assert modelfile.startswith("FROM ") and "<|im_start|>" in modelfile  # SmolLM2's ChatML
    for label in ("before", "after"):
        results = json.loads((w / "eval" / label / "results.json").read_text())
        assert "format_compliance" in results["metrics"], results["metrics"]
    assert "chat with it:" in first.stdout and str(gguf) in first.stdout

    again = hegelion_run(w, tmp_path / "cache")
    assert again.returncode == 0, again.stderr[-4000:]
    assert again.stderr.count("unchanged, skipped") == 5
