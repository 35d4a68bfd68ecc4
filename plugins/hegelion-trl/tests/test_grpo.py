"""``hegelion train --trainer trl --method grpo``: the ``grpo:`` keys as GRPOConfig gets
them, the prompts the policy sees, a run's metrics and manifest, ``init_adapter`` from
an SFT adapter, and ``--resume`` after ``kill -9``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import torch
import trl
from click.testing import CliRunner
from hegelion_trl.checkpoints import checkpoint_step, latest_checkpoint
from hegelion_trl.config_map import Device, build_trl_config, trl_arguments
from hegelion_trl.grpo import prepare_grpo
from hegelion_trl.trainer import TRLTrainer
from safetensors.torch import load_file
from transformers import AutoTokenizer
from trl_helpers import TRACES, read_jsonl, train_config

from hegelion_core.cli import cli
from hegelion_core.errors import HegelionError
from hegelion_core.records import DEFAULT_SYSTEM

CPU = Device(cuda=False, bf16=False)
GPU = Device(cuda=True, bf16=True)


def grpo_config(model: Path, **overrides: object):  # -> TrainConfig
    grpo = {
        "num_generations": 4,
        "max_completion_length": 16,
        "rewards": {"format": 1.0, "markers": 0.5},
        **overrides.pop("grpo", {}),  # type: ignore[dict-item]
    }
    training = {"per_device_train_batch_size": 8, **overrides.pop("training", {})}  # type: ignore[dict-item]
    return train_config(model, method="grpo", grpo=grpo, training=training, **overrides)


@pytest.fixture(scope="module")
def prompts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("grpo-prompts") / "prompts.txt"
    path.write_text("".join(f"{q}\n" for q, *_ in TRACES), encoding="utf-8")
    return path


# ----- the mapping ----------------------------------------------------------------------


def test_every_grpo_key_is_translated(tmp_path: Path) -> None:
    config = grpo_config(
        Path("m"),
        grpo={
            "num_generations": 8,
            "max_completion_length": 200,
            "temperature": 0.7,
            "beta": 0.04,
            "loss_type": "dr_grpo",
            "rewards": {"format": 1.0, "markers": {"weight": 0.25}},
        },
        training={"per_device_train_batch_size": 16, "bf16": True},
    )
    args = trl_arguments(config, tmp_path, device=GPU, shape="prompt", has_eval=False)
    expected = {
        "num_generations": 8,
        "max_completion_length": 200,
        "temperature": 0.7,
        "beta": 0.04,
        "loss_type": "dr_grpo",
        "reward_weights": [1.0, 0.25],  # grpo.rewards' order
        "scale_rewards": "group",
        "mask_truncated_completions": False,
        "log_completions": False,
        "per_device_train_batch_size": 16,
        "bf16": True,
        "use_cpu": False,
    }
    assert {k: args[k] for k in expected} == expected
    # SFT's keys stay out: GRPO truncates completions, not prompts, and packs nothing.
    assert not {"max_length", "packing", "assistant_only_loss", "dataset_text_field"} & set(args)

    built = build_trl_config(config, tmp_path, device=CPU, shape="prompt", has_eval=False)
    assert isinstance(built, trl.GRPOConfig)
    assert (built.num_generations, built.max_completion_length, built.beta) == (8, 200, 0.04)
    assert built.reward_weights == [1.0, 0.25] and built.loss_type == "dr_grpo"
    assert built.use_cpu and not built.bf16  # the SFT path's CPU choices, one mapping
    assert built.activation_checkpointing is False


def test_a_batch_that_splits_a_group_is_refused_with_the_fix(tmp_path: Path) -> None:
    config = grpo_config(Path("m"), training={"per_device_train_batch_size": 6})
    with pytest.raises(HegelionError, match=r"multiple of 4 \(it counts completions"):
        trl_arguments(config, tmp_path, device=CPU, shape="prompt", has_eval=False)


def test_scu_with_grpo_is_refused_saying_why(tiny_model: Path, prompts: Path) -> None:
    config = grpo_config(tiny_model, scu={})
    with pytest.raises(HegelionError, match="GRPO's loss is a policy-gradient surrogate"):
        TRLTrainer().train(prompts, Path("/nonexistent/never-made"), config)


# ----- the prompts ----------------------------------------------------------------------


def test_the_policy_sees_the_sft_rows_conversation(
    hegelion_dataset: Callable[..., Path], tiny_model: Path, prompts: Path
) -> None:
    """The SFT row's prompt and GRPO's, rendered by the tokenizer's template with the
    generation prompt, are the same tokens: GRPO continues the conversation SFT taught."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    sft_row = read_jsonl(hegelion_dataset("chat"))[0]["messages"]
    assert sft_row[0] == {"role": "system", "content": DEFAULT_SYSTEM}
    for data in (prompts, hegelion_dataset("chat"), hegelion_dataset("sft")):
        prepared = prepare_grpo(data, tokenizer)
        assert prepared.shape == "prompt" and len(prepared.train) == len(TRACES)
        grpo_prompt = prepared.train[0]["prompt"]
        assert grpo_prompt == sft_row[:-1]
        assert tokenizer.apply_chat_template(
            grpo_prompt, add_generation_prompt=True, tokenize=False
        ) == tokenizer.apply_chat_template(sft_row[:-1], add_generation_prompt=True, tokenize=False)


def test_simplex_items_keep_their_answers_as_columns(tiny_model: Path, tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    system = {"role": "system", "content": "You are a Simplex agent."}
    rows = [
        {
            "id": f"c{i}",
            "messages": [system, {"role": "user", "content": f"Question {i}?"}],
            "answer": str(i),
            "expected_confidence": 0.5 + i / 10,
        }
        for i in range(3)
    ]
    items.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    prepared = prepare_grpo(items, AutoTokenizer.from_pretrained(tiny_model))
    assert prepared.train.column_names == ["prompt", "id", "answer", "expected_confidence"]
    assert prepared.train[2]["answer"] == "2" and prepared.train[2]["prompt"][0] == system


# ----- a run: metrics, manifest, init_adapter ----------------------------------------------


def _train(argv: list[str]) -> str:
    result = CliRunner().invoke(cli, ["train", *argv], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_grpo_from_an_sft_adapter_logs_each_reward_and_records_them(
    hegelion_dataset: Callable[..., Path], tiny_model: Path, prompts: Path, tmp_path: Path
) -> None:
    sft = tmp_path / "sft"
    _train(
        ["--trainer", "trl", "--model", str(tiny_model), "--data", str(hegelion_dataset("chat"))]
        + ["--output", str(sft), "-c", "training.max_steps=2", "-c", "lora.r=4"]
    )
    sft_weights = load_file(str(sft / "adapter" / "adapter_model.safetensors"))

    out = tmp_path / "grpo"
    output = _train(
        ["--trainer", "trl", "--method", "grpo", "--model", str(tiny_model)]
        + ["--data", str(prompts), "--output", str(out)]
        + ["-c", f"init_adapter={sft / 'adapter'}", "-c", "training.max_steps=2"]
        + ["-c", "training.per_device_train_batch_size=8", "-c", "training.learning_rate=1e-2"]
        + ["-c", "grpo.num_generations=4", "-c", "grpo.max_completion_length=12"]
        + ["-c", "grpo.rewards.format=1.0", "-c", "grpo.rewards.markers=0.5"]
    )
    assert "adapter:" in output

    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        for name in ("format", "markers"):
            assert 0.0 <= row[f"rewards/{name}/mean"] <= 1.0
            assert row[f"rewards/{name}/std"] >= 0.0
        assert "reward" in row and "completions/mean_length" in row
    assert (out / "metrics.png").is_file()

    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["config"]["method"] == "grpo"
    assert manifest["config"]["grpo"]["rewards"]["format"]["weight"] == 1.0
    assert manifest["config"]["grpo"]["rewards"]["markers"]["weight"] == 0.5
    assert manifest["metrics"]["steps"] == 2
    assert manifest["metrics"]["tokens"] > 0  # prompt and completion tokens of 2 x 8 samples

    # Chaining: GRPO saved the SFT adapter (its r=4, the CLI's default is 16), not a fresh LoRA.
    adapter_cfg = orjson.loads((out / "adapter" / "adapter_config.json").read_bytes())
    assert adapter_cfg["r"] == 4
    assert set(load_file(str(out / "adapter" / "adapter_model.safetensors"))) == set(sft_weights)

    # ...and trains it: the policy starts from the SFT weights, and they are what is trainable.
    from hegelion_trl.engine import build_trainer

    config = grpo_config(tiny_model, init_adapter=sft / "adapter")
    built = build_trainer(prompts, tmp_path / "built", config, device=CPU)
    trainable = {name: p for name, p in built.trainer.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    assert len(trainable) == len(sft_weights)
    policy = {k.replace(".default", ""): v for k, v in trainable.items()}
    for key, tensor in sft_weights.items():
        match = [v for k, v in policy.items() if k.endswith(key.removeprefix("base_model."))]
        assert len(match) == 1 and torch.equal(match[0].detach(), tensor), key


# ----- resume after kill -9 -------------------------------------------------------------

MAX_STEPS = 20


def test_resume_after_kill_9_continues_the_grpo_run(
    tiny_model: Path, prompts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "hegelion_core", "train", "--trainer", "trl"]
    cmd += ["--method", "grpo", "--model", str(tiny_model), "--data", str(prompts)]
    cmd += ["--output", str(out), "-c", f"training.max_steps={MAX_STEPS}"]
    cmd += ["-c", "training.save_steps=4", "-c", "training.per_device_train_batch_size=4"]
    cmd += ["-c", "grpo.num_generations=2", "-c", "grpo.max_completion_length=8", "-c", "lora.r=4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = (tmp_path / "first.log").open("wb")
    first = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 300
    while latest_checkpoint(out) is None:
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    log.close()
    assert not (out / "manifest.json").exists(), "the run finished before the kill"
    killed_at = latest_checkpoint(out)
    assert killed_at is not None
    step = checkpoint_step(killed_at)
    assert 4 <= step < MAX_STEPS and step % 4 == 0
    before = [r for r in read_jsonl(out / "metrics.jsonl") if r["step"] <= step]
    assert [r["step"] for r in before] == list(range(1, step + 1))

    second = subprocess.run(
        [*cmd, "--resume"], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resuming from {killed_at} (step {step})" in second.stderr

    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, MAX_STEPS + 1))  # each step once
    assert rows[:step] == before  # the killed run's curve is kept, not re-logged
    assert all("rewards/format/mean" in r for r in rows)
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["metrics"]["steps"] == MAX_STEPS
    state = orjson.loads(
        (out / "checkpoints" / f"checkpoint-{MAX_STEPS}" / "trainer_state.json").read_bytes()
    )
    assert state["global_step"] == MAX_STEPS
