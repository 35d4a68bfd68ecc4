"""A pipeline's generate stage cannot be a batch run: ``generate --batch`` exits 0 with
its jobs in flight and no record written, so the next stage would find nothing. The
plan refuses it at its line, saying what to do instead."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import hegelion


def test_a_generate_stage_with_batch_is_refused_at_its_line(
    plugin_site: Path, tmp_path: Path
) -> None:
    (tmp_path / "prompts.txt").write_text("Is it so?\n")
    config = tmp_path / "pipe.yaml"
    config.write_text(
        f"""\
name: demo
workdir: {tmp_path / "w"}
stages:
  generate:
    teacher: openai
    model: gpt-4o-mini
    prompt_file: prompts.txt
    batch: true
  format: {{format: sft}}
"""
    )
    out = hegelion(plugin_site, "run", config, "--dry-run")
    assert out.returncode != 0, out.stdout
    assert f"{config}:8:" in out.stderr and "cannot wait for a batch run" in out.stderr
    assert "hegelion batch collect" in out.stderr and "input: OUT" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "w" / "generate" / "traces.jsonl.batch").exists()
