"""The README's main job, examples/quickstart.yaml, end to end at a small size: the real
llama-cpp teacher on SmolLM2, TRL LoRA on its transformers copy, q4_k_m GGUF with a
Modelfile, and format compliance before and after. Then a rerun skips every stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hegelion_core.pipeline.side_by_side import cpu_shares


@pytest.mark.slow
def test_quickstart_runs_end_to_end_then_skips_everything(quickstart_run: Any) -> None:
    w, first = quickstart_run.workdir, quickstart_run.first
    for stage in ("generate", "curate", "format", "train", "export", "eval"):
        assert (w / stage / "stage.json").is_file(), stage
    assert len((w / "generate" / "traces.jsonl").read_text().splitlines()) == 2
    curated = json.loads((w / "curate" / "stage.json").read_text())
    manifest = json.loads(Path(curated["artifact"]["traces"] + ".manifest.json").read_text())
    filters = {f["name"] for f in manifest["filters"]}
    assert "decontaminate" in filters, filters  # against the quickstart's own eval prompts
    assert curated["figures"]["rows_out"] == 2, curated["figures"]
    export = json.loads((w / "export" / "stage.json").read_text())["artifact"]
    gguf = Path(export["gguf"])
    assert gguf.suffix == ".gguf" and gguf.stat().st_size > 50_000_000
    modelfile = Path(export["modelfile"]).read_text()
    assert modelfile.startswith("FROM ") and "<|im_start|>" in modelfile  # SmolLM2's ChatML
    for label in ("before", "after"):
        results = json.loads((w / "eval" / label / "results.json").read_text())
        assert "format_compliance" in results["metrics"], results["metrics"]
    before, after = json.loads((w / "eval" / "stage.json").read_text())["runs"]
    assert (before["label"], after["label"]) == ("before", "after")
    if cpu_shares(2) is not None:  # two cores or more: both evals at once, on their own cores
        assert before["cpus"] and after["cpus"] and not set(before["cpus"]) & set(after["cpus"])
        assert after["started_s"] < before["started_s"] + before["elapsed_s"]
        assert "  [before]   1/1 answered" in first.stderr, first.stderr[-3000:]
        assert "  [after]   1/1 answered" in first.stderr
    else:  # one core: one after the other, on the whole machine
        assert not before["cpus"] and after["started_s"] >= before["elapsed_s"]
    assert "chat with it:" in first.stdout and str(gguf) in first.stdout
    report = w / "report.html"
    assert f"report: {report}" in first.stdout
    page = report.read_text()
    assert "<h2>Curation</h2>" in page and "<h2>Evaluation</h2>" in page

    again = quickstart_run.again()
    assert again.returncode == 0, again.stderr[-4000:]
    assert again.stderr.count("unchanged, skipped") == 6
