"""examples/self-improve.yaml end to end at a tiny size: the quickstart's generate, curate
and format, SFT on the transformers copy of SmolLM2, GRPO continuing the SFT adapter
with the format reward, both adapters exported to GGUF, and one eval row per model
(the base, the SFT model, the GRPO model). Then a rerun skips every stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "self-improve.yaml"
STAGES = (
    "generate",
    "curate",
    "format",
    "sft",
    "grpo",
    "export-sft",
    "export-grpo",
    "eval",
)
#: Two records, two SFT steps, two GRPO steps of one prompt's two short completions,
#: one eval prompt. The phases keep the example's own max_tokens, so they finish as
#: they do in the real run.
SMALL = [
    "stages.generate.limit=2",
    "stages.sft.config.training.max_steps=2",
    "stages.sft.config.training.save_steps=1",
    "stages.grpo.config.grpo.num_generations=2",
    "stages.grpo.config.grpo.max_completion_length=32",
    "stages.grpo.config.training.max_steps=2",
    "stages.grpo.config.training.per_device_train_batch_size=2",
    "stages.grpo.config.training.save_steps=1",
    "stages.eval.limit=1",
    "stages.eval.max_tokens=48",
]


def hegelion_run(workdir: Path, cache: Path) -> subprocess.CompletedProcess:
    overrides = [x for o in [f"workdir={workdir}", *SMALL] for x in ("-c", o)]
    return subprocess.run(
        [sys.executable, "-m", "hegelion_core", "run", str(EXAMPLE), *overrides],
        capture_output=True,
        text=True,
        timeout=2400,
        check=False,
        # One OpenMP thread: GRPO's token-by-token sampling ran 7 times slower with two
        # whenever the other core was busy (spinning threads), 100 s a step instead of 14.
        env=os.environ | {"HEGELION_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"},
    )


def record(w: Path, stage: str) -> dict:
    return json.loads((w / stage / "stage.json").read_text())


@pytest.mark.slow
def test_self_improve_runs_every_stage_and_evals_each_model(tmp_path: Path) -> None:
    w, cache = tmp_path / "run", tmp_path / "cache"
    first = hegelion_run(w, cache)
    assert first.returncode == 0, first.stderr[-4000:]
    for stage in STAGES:
        assert (w / stage / "stage.json").is_file(), stage

    # GRPO continued the SFT adapter: its LoRA (all seven projections), not the default
    # fresh one (q, k, v, o), and the SFT adapter's path is in its config.
    sft, grpo = w / "sft" / "adapter", w / "grpo" / "adapter"
    grpo_manifest = json.loads((w / "grpo" / "manifest.json").read_text())
    assert grpo_manifest["config"]["method"] == "grpo"
    assert grpo_manifest["config"]["init_adapter"] == str(sft)
    modules = [
        set(json.loads((a / "adapter_config.json").read_text())["target_modules"])
        for a in (sft, grpo)
    ]
    assert modules[0] == modules[1] and {"gate_proj", "up_proj", "down_proj"} <= modules[1]
    rows = [json.loads(x) for x in (w / "grpo" / "metrics.jsonl").read_text().splitlines() if x]
    assert [r["step"] for r in rows if "rewards/format/mean" in r] == [1, 2]
    figures = record(w, "grpo")["figures"]
    assert figures["steps"] == 2 and 0 <= figures["format_first"] <= 1, figures
    assert 0 <= figures["format_last"] <= 1, figures

    # Each adapter exported on its own; the eval has a row per model, on the same prompt.
    ggufs = {s: Path(record(w, s)["artifact"]["gguf"]) for s in ("export-sft", "export-grpo")}
    assert ggufs["export-sft"].parent == w / "export-sft"
    assert ggufs["export-grpo"].parent == w / "export-grpo"
    assert all(g.stat().st_size > 50_000_000 for g in ggufs.values())
    evals = record(w, "eval")["figures"]
    assert list(evals) == ["base", "sft", "grpo"], evals
    for label in ("base", "sft", "grpo"):
        results = json.loads((w / "eval" / label / "results.json").read_text())
        assert "format_compliance" in results["metrics"], (label, results["metrics"])
    page = (w / "report.html").read_text()
    assert "<h2>Evaluation</h2>" in page and ">grpo<" in page and ">sft<" in page

    again = hegelion_run(w, cache)
    assert again.returncode == 0, again.stderr[-4000:]
    assert again.stderr.count("unchanged, skipped") == len(STAGES)
