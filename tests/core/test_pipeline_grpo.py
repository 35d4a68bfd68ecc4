"""A pipeline's GRPO stage: a train stage with ``method: grpo`` that reads prompts (the
format stage's rows or a prompt file) and continues another train stage's adapter
(``init_adapter: stage:NAME``); retraining that adapter reruns it; its figures say what
each reward did over the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hegelion_core.cli import cli
from hegelion_core.errors import HegelionError
from hegelion_core.pipeline import load_pipeline
from hegelion_core.pipeline.kinds import TrainStage
from hegelion_core.pipeline.runner import fingerprint, plan_pipeline
from hegelion_core.pipeline.stages import Artifact, StagePlan, plan_stage

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "self-improve.yaml"

PIPE = """\
name: rl
workdir: {workdir}
stages:
  format: {{format: sft}}
  sft:
    uses: train
    trainer: trl
    model: ./base
    config: {{training: {{max_steps: 2}}}}
  grpo:
    uses: train
    trainer: trl
    method: grpo
    init_adapter: "stage:sft"
{extra}    config:
      grpo: {{num_generations: 2, max_completion_length: 64, rewards: {{format: 1.0}}}}
      training: {{max_steps: 2, per_device_train_batch_size: 2}}
"""


def sft_row(prompt: str) -> dict[str, str]:
    return {
        "instruction": prompt,
        "input": "",
        "output": "<thought>\nTHESIS: x\nANTITHESIS: y\nSYNTHESIS: z\n</thought>\nSo.",
        "system": "You are a dialectical reasoning engine.",
    }


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    """What the stages before the GRPO stage made: the base, the SFT rows, the SFT adapter."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    data = tmp_path / "w" / "format" / "sft.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text("".join(json.dumps(sft_row(f"Is {i} so?")) + "\n" for i in range(4)))
    adapter = tmp_path / "w" / "sft" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text('{"r": 16}')
    (adapter / "adapter_model.safetensors").write_bytes(b"weights after SFT")
    (tmp_path / "prompts.txt").write_text("Is it so?\nWhy is it so?\n")
    return {"base": base, "data": data, "adapter": adapter}


def plan_grpo(tmp_path: Path, site: dict[str, Path], extra: str = "") -> StagePlan:
    path = tmp_path / "rl.yaml"
    path.write_text(PIPE.format(workdir=tmp_path / "w", extra=extra))
    config = load_pipeline(path)
    done: dict[str, Artifact] = {
        "format": {"data": str(site["data"])},
        "sft": {
            "adapter": str(site["adapter"]),
            "model": str(site["adapter"]),
            "base": str(site["base"]),
        },
    }
    return plan_stage(config, "grpo", tmp_path / "w" / "grpo", done, cli)


def flag(argv: list[str], name: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == name]


def test_a_grpo_stage_continues_the_sft_adapter_on_its_base(
    tmp_path: Path, site: dict[str, Path]
) -> None:
    plan = plan_grpo(tmp_path, site)
    argv = plan.invocations[0].argv
    assert argv[0] == "train"
    assert flag(argv, "--method") == ["grpo"]
    assert flag(argv, "--data") == [str(site["data"])]  # the format stage's rows as prompts
    assert flag(argv, "--model") == [str(site["base"])]  # the SFT stage's base
    assert flag(argv, "--set") == [f"init_adapter={site['adapter']}"]
    written = Path(flag(argv, "--config")[0]).read_text()
    assert "num_generations: 2" in written and "format: 1.0" in written
    assert plan.artifact["adapter"] == str(tmp_path / "w" / "grpo" / "adapter")
    assert plan.artifact["base"] == str(site["base"])  # an export of it takes the same base


def test_retraining_the_sft_adapter_reruns_the_grpo_stage(
    tmp_path: Path, site: dict[str, Path]
) -> None:
    plan = plan_grpo(tmp_path, site)
    before, digests = fingerprint(plan)
    assert str(site["adapter"] / "adapter_model.safetensors") in {d.path for d in digests}
    assert fingerprint(plan_grpo(tmp_path, site))[0] == before  # nothing changed: skipped
    # `--set init_adapter=PATH` is no path in the argv: only the input list hashes it.
    (site["adapter"] / "adapter_model.safetensors").write_bytes(b"weights after more SFT")
    assert fingerprint(plan_grpo(tmp_path, site))[0] != before


def test_a_grpo_stage_reads_a_prompt_file_and_its_command_accepts_the_plan(
    tmp_path: Path, site: dict[str, Path]
) -> None:
    plan = plan_grpo(tmp_path, site, extra="    input: prompts.txt\n")
    argv = plan.invocations[0].argv
    assert flag(argv, "--data") == [str(tmp_path / "prompts.txt")]
    result = CliRunner().invoke(cli, [*argv, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"--method grpo on {tmp_path / 'prompts.txt'} (prompts rows)" in result.output
    assert str(site["adapter"]) in result.output  # init_adapter reached the config


def test_grpo_figures_are_each_rewards_first_and_last_mean(tmp_path: Path) -> None:
    out = tmp_path / "grpo"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"metrics": {"steps": 3.0, "train_loss": 0.0}}))
    rows = [
        {"step": 1, "loss": 0.0, "rewards/format/mean": 0.125, "rewards/judge/mean": 0.5},
        {"step": 2, "loss": 0.0, "rewards/format/mean": 0.4, "rewards/format/std": 0.2},
        {"step": 3, "loss": 0.0, "rewards/format/mean": 0.75, "rewards/judge/mean": 0.625},
        {"step": 3, "train_runtime": 9.0},  # the closing summary row
    ]
    torn = b'{"step": 4, "rewards/format/me'  # kill -9 mid-append
    (out / "metrics.jsonl").write_bytes(
        b"".join(json.dumps(r).encode() + b"\n" for r in rows) + torn
    )
    plan = StagePlan("grpo", "train", out, [], {})
    assert TrainStage().figures(plan) == {
        "train_loss": 0.0,
        "steps": 3.0,
        "format_first": 0.125,
        "format_last": 0.75,
        "judge_first": 0.5,
        "judge_last": 0.625,
    }
    (out / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 2.0}) + "\n")  # SFT
    assert TrainStage().figures(plan) == {"train_loss": 0.0, "steps": 3.0}


def test_the_self_improve_example_evals_the_base_and_both_trained_models(tmp_path: Path) -> None:
    config = load_pipeline(EXAMPLE, {"workdir": str(tmp_path)})
    assert [config.kind(s) for s in config.stages] == [
        "generate",
        "curate",
        "format",
        "train",
        "train",
        "export",
        "export",
        "eval",
    ]
    try:
        plans = {p.name: p for p in plan_pipeline(config, cli)}
    except HegelionError as exc:  # packaged: and the gguf exporter are hegelion-gguf's
        if "pip install" not in str(exc) and "not installed" not in str(exc):
            raise
        pytest.skip(f"needs hegelion-gguf: {exc}")
    sft, grpo = (plans[s].invocations[0].argv for s in ("sft", "grpo"))
    assert flag(sft, "--method") == ["sft"] and flag(grpo, "--method") == ["grpo"]
    assert flag(grpo, "--set") == [f"init_adapter={tmp_path / 'sft' / 'adapter'}"]
    assert flag(grpo, "--data") == flag(sft, "--data")  # the curated rows, decontaminated
    exported = {
        s: flag(plans[s].invocations[0].argv, "--adapter")[0] for s in ("export-sft", "export-grpo")
    }
    assert exported == {
        "export-sft": str(tmp_path / "sft" / "adapter"),
        "export-grpo": str(tmp_path / "grpo" / "adapter"),
    }
    evals = {inv.label: flag(inv.argv, "--model")[0] for inv in plans["eval"].invocations}
    assert list(evals) == ["base", "sft", "grpo"]
    assert evals["sft"].startswith(str(tmp_path / "export-sft"))
    assert evals["grpo"].startswith(str(tmp_path / "export-grpo"))
