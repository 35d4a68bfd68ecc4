"""The ``transformers`` teacher on the tiny model, and ``hegelion eval`` through it:
contract, greedy output equal to transformers' own generate, adapters, and the
must-show: calibration-stage training lowers ECE on held-out items."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import orjson
import pytest
import torch
from click.testing import CliRunner
from hegelion_trl.teacher import TransformersTeacher, finish_reason
from transformers import AutoModelForCausalLM, AutoTokenizer

from hegelion_core.cli import cli, load_plugin_commands
from hegelion_core.contracts import TeacherError
from hegelion_core.records import Message
from hegelion_core.testing import TeacherContract
from hegelion_core.testing.tiny_models import build_tiny_model


@pytest.fixture(scope="module")
def talking_adapter(
    tiny_model: Path, hegelion_dataset, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A LoRA adapter that makes the tiny model say something: the random model's greedy
    output is only newlines, and a teacher must return text. 40 steps, about 3 s."""
    from hegelion_trl.trainer import TRLTrainer
    from trl_helpers import train_config

    out = tmp_path_factory.mktemp("talking")
    config = train_config(tiny_model, training={"max_steps": 40})
    TRLTrainer().train(hegelion_dataset("chat"), out, config)
    return out / "adapter"


class TestTransformersTeacherContract(TeacherContract):
    max_tokens = 8

    @pytest.fixture
    def driver(self, tiny_model: Path, talking_adapter: Path) -> TransformersTeacher:
        return TransformersTeacher(
            {"model_path": str(tiny_model), "adapter": str(talking_adapter), "device": "cpu"}
        )


def ask(teacher: TransformersTeacher, text: str, max_tokens: int = 12) -> str:
    messages = [Message(role="system", content="Be brief."), Message(role="user", content=text)]
    return asyncio.run(teacher.complete(messages, max_tokens=max_tokens)).text


def test_greedy_output_is_transformers_own(tiny_model: Path) -> None:
    teacher = TransformersTeacher({"model_path": str(tiny_model), "device": "cpu"})
    got = asyncio.run(
        teacher.complete([Message(role="user", content="Is free will real?")], max_tokens=10)
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Is free will real?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=10, do_sample=False)
    want = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    assert got.text == want and got.usage.prompt_tokens == ids["input_ids"].shape[1]
    assert got.usage.completion_tokens == out.shape[1] - ids["input_ids"].shape[1]
    assert ask(teacher, "Is free will real?") == ask(
        teacher, "Is free will real?"
    )  # greedy: stable


def test_length_only_when_max_new_tokens_cut_without_eos(tiny_model: Path, tmp_path: Path) -> None:
    question = [Message(role="user", content="Is free will real?")]
    teacher = TransformersTeacher({"model_path": str(tiny_model), "device": "cpu"})
    cut = asyncio.run(teacher.complete(question, max_tokens=6))  # the random model never ends
    assert cut.finish_reason == "length" and cut.truncated and cut.usage.completion_tokens == 6

    # The same model, its end-of-sequence token now the one it emits first: it ends there.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Is free will real?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        first = int(model.generate(**ids, max_new_tokens=1, do_sample=False)[0, -1])
    model.generation_config.eos_token_id = first
    model.save_pretrained(tmp_path / "ends")
    tokenizer.save_pretrained(tmp_path / "ends")
    ends = TransformersTeacher({"model_path": str(tmp_path / "ends"), "device": "cpu"})
    for limit in (1, 6):  # an end token as the last allowed token is not a cut
        done = asyncio.run(ends.complete(question, max_tokens=limit))
        assert done.finish_reason == "stop" and not done.truncated
        assert done.usage.completion_tokens == 1


def test_finish_reason_rule() -> None:
    assert finish_reason([5, 6, 7], 3, {2}) == "length"  # at the limit, no end token
    assert finish_reason([5, 6, 2], 3, {2}) == "stop"  # the end token came last
    assert finish_reason([5, 2], 3, {2}) == "stop"
    assert finish_reason([5], 3, {2}) == "stop"  # something else ended it first (a stop string)


def test_bad_paths_are_clear_teacher_errors(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match="adapter: .* is not a PEFT adapter directory"):
        ask(TransformersTeacher({"model_path": str(tiny_model), "adapter": str(tmp_path)}), "hi")
    with pytest.raises(TeacherError, match="model_path: .*nowhere does not exist"):
        ask(TransformersTeacher({"model": str(tmp_path / "nowhere")}), "hi")


def hegelion(*args: object) -> str:
    load_plugin_commands(cli)
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def simplex_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("simplex")
    out = {}
    for stage in ("calibration", "belief-revision"):
        hegelion(
            "simplex",
            "generate",
            "--stage",
            stage,
            "-n",
            "1200",
            "--eval-n",
            "100",
            "--seed",
            "0",
            "--out",
            root / stage,
        )
        out[stage] = root / stage
    return out


def test_eval_runs_each_suite_on_a_model_directory(
    tiny_model: Path, simplex_data: dict[str, Path], tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Is free will real?\nDo markets work?\nTrust intuition?\nA fourth?\n")
    runs = (
        ("dialectic", prompts),
        ("calibration", simplex_data["calibration"] / "eval.jsonl"),
        ("belief-revision", simplex_data["belief-revision"] / "eval.jsonl"),
    )
    for suite, data in runs:
        out = tmp_path / suite
        printed = hegelion(
            "eval",
            "--model",
            tiny_model,
            "--suite",
            suite,
            "--data",
            data,
            "--limit",
            "3",
            "--max-tokens",
            "8",
            "--out",
            out,
            "-t",
            "device=cpu",
        )
        result = json.loads((out / "results.json").read_text())
        assert result["suite"] == suite and result["teacher"] == "transformers"
        assert result["counts"]["items"] == 3 and result["counts"]["errors"] == 0
        assert len((out / "items.jsonl").read_bytes().splitlines()) == 3
        assert f"results: {out / 'results.json'}" in printed
    assert (tmp_path / "calibration" / "reliability.png").is_file()


@pytest.mark.slow
def test_calibration_training_lowers_ece_on_held_out_items(
    simplex_data: dict[str, Path], tmp_path: Path
) -> None:
    """The must-show: train the tiny model on the calibration stage's train.jsonl, then
    compare ECE on the held-out eval.jsonl before and after (same greedy decoding)."""
    data = simplex_data["calibration"]
    # A tiny model whose tokenizer knows the stage's words (shorter sequences, faster steps).
    rows = [orjson.loads(x) for x in (data / "train.jsonl").read_bytes().splitlines()[:300]]
    model = build_tiny_model(
        tmp_path / "tiny", seed=0, corpus=[m["content"] for r in rows for m in r["messages"]]
    )
    common = [
        "--suite",
        "calibration",
        "--data",
        data / "eval.jsonl",
        "--max-tokens",
        "48",
        "-t",
        "device=cpu",
        "-q",
    ]
    hegelion("eval", "--model", model, "--out", tmp_path / "before", *common)
    hegelion(
        "train",
        "--trainer",
        "trl",
        "--model",
        model,
        "--data",
        data,
        "--output",
        tmp_path / "run",
        *TRAIN_OVERRIDES,
    )
    hegelion(
        "eval",
        "--model",
        model,
        "--adapter",
        tmp_path / "run" / "adapter",
        "--out",
        tmp_path / "after",
        *common,
    )
    before = json.loads((tmp_path / "before" / "results.json").read_text())["metrics"]
    after = json.loads((tmp_path / "after" / "results.json").read_text())["metrics"]
    print(
        f"\nECE before {before['ece']:.4f} after {after['ece']:.4f}; parse rate "
        f"{before['parse_rate']:.2f} -> {after['parse_rate']:.2f}; accuracy "
        f"{before['accuracy']:.2f} -> {after['accuracy']:.2f}; ece_parsed after {after['ece_parsed']}"
    )
    assert after["parse_rate"] >= 0.7, "training taught the [confidence: x] format"
    assert after["ece"] < before["ece"] - 0.2
    # Not only the format: the stated confidences beat claiming certainty on the same answers...
    assert after["ece"] < 1 - after["accuracy"] - 0.1
    # ...because they follow the kind of question: low where nothing decides the answer.
    stated: dict[str, list[float]] = {}
    for line in (tmp_path / "after" / "items.jsonl").read_bytes().splitlines():
        r = orjson.loads(line)
        if r["confidence"] is not None:
            stated.setdefault(r["category"], []).append(r["confidence"])
    mean = {k: sum(v) / len(v) for k, v in stated.items()}
    print("mean stated confidence by category:", {k: round(v, 2) for k, v in sorted(mean.items())})
    assert mean["unknowable"] < mean["factual"] - 0.3


TRAIN_OVERRIDES = [
    "-c",
    "training.max_steps=450",
    "-c",
    "training.learning_rate=2e-3",
    "-c",
    "training.per_device_train_batch_size=8",
    "-c",
    "training.max_seq_length=512",
    "-c",
    "training.warmup_ratio=0.0",
    "-c",
    "training.lr_scheduler_type=constant",
    "-c",
    "training.save_steps=100000",
    "-c",
    "lora.r=16",
    "-c",
    "lora.lora_alpha=32",
    "-c",
    "lora.lora_dropout=0.0",
    "-c",
    'lora.target_modules=["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]',
]
