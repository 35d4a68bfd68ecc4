"""`hegelion eval` on a GGUF file: the model runs on the llama-cpp teacher (real SmolLM2)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from hegelion_core.cli import cli


def test_eval_dialectic_on_smollm2_gguf(smollm2: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(
        "Is free will real?\nShould cities ban cars?\nA third prompt, not evaluated.\n"
    )
    out = tmp_path / "eval"
    args = [
        "eval",
        "--model",
        str(smollm2),
        "--suite",
        "dialectic",
        "--data",
        str(prompts),
        "--limit",
        "2",
        "--max-tokens",
        "48",
        "--system",
        "format",
        "--out",
        str(out),
        "-t",
        "n_ctx=2048",
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())
    assert saved["teacher"] == "llama-cpp" and saved["suite"] == "dialectic"
    assert saved["counts"]["items"] == 2 and saved["counts"]["errors"] == 0
    assert saved["generation"]["max_tokens"] == 48 and "THESIS" in saved["generation"]["system"]
    records = [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(
        r["response"].strip() for r in records
    )  # SmolLM2 really answered
    # 48 tokens cut a whole trace: llama.cpp's own finish reason says which answers were
    # cut, and a cut answer is counted apart, never scored as non-compliant.
    cut = [r for r in records if r["truncated"]]
    assert all(r["format_ok"] is None for r in cut)
    assert all(r["format_ok"] == (r["missing"] is None) for r in records if not r["truncated"])
    metrics = saved["metrics"]
    assert metrics["truncation_rate"] == len(cut) / 2 and saved["counts"]["truncated"] == len(cut)
    assert 0.0 <= metrics["format_compliance_all"] <= 1.0
    if len(cut) < 2:
        assert 0.0 <= metrics["format_compliance"] <= 1.0
    else:
        assert metrics["format_compliance"] is None  # no finished answer to score
    assert "format_compliance" in result.output


def test_eval_gguf_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("Hello?\n")
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--model",
            str(tmp_path / "none.gguf"),
            "--suite",
            "dialectic",
            "--data",
            str(prompts),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 1 and "GGUF file not found" in result.output, result.output
    assert not (tmp_path / "o").exists()
