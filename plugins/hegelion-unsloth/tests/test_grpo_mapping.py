"""GRPO on the unsloth trainer, up to the GPU boundary: the config's ``grpo:`` section in
TRL's ``GRPOConfig`` names (core's mapping, the one the trl trainer uses) plus what pins
Unsloth's config rewrite; what Unsloth cannot run, refused before the GPU check; the
prompts it reads. Needs neither unsloth nor a GPU."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hegelion_unsloth.data import read_prompt_rows
from hegelion_unsloth.gpu import NoGPUError
from hegelion_unsloth.mapping import (
    TRL_EPSILON,
    UnslothOptions,
    build_plan,
    from_pretrained_kwargs,
    unsloth_grpo_pins,
)
from hegelion_unsloth.trainer import UnslothTrainer

from hegelion_core import DEFAULT_SYSTEM, grpo_arguments
from hegelion_core.errors import HegelionError, InputError
from hegelion_core.training.config import TrainConfig, load_train_config

OUT = Path("/runs/grpo")


def config(**overrides: Any) -> TrainConfig:
    """A GRPO config the way `hegelion train --method grpo` builds one."""
    return load_train_config(
        None, {"model": "Qwen/Qwen2.5-0.5B-Instruct", "method": "grpo", **overrides}
    )


def plan(cfg: TrainConfig, options: UnslothOptions | None = None, **kw: Any) -> Any:
    return build_plan(cfg, options or UnslothOptions(), OUT, bf16_supported=True, **kw)


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("Is free will compatible with determinism?\nWhere does knowledge come from?\n")
    return path


# ----- the mapping ----------------------------------------------------------------------


def test_grpo_keys_are_cores_mapping_plus_the_unsloth_pins() -> None:
    cfg = config(
        **{
            "grpo.num_generations": 8,
            "grpo.max_completion_length": 384,
            "grpo.temperature": 0.7,
            "grpo.beta": 0.04,
            "grpo.loss_type": "grpo",
            "grpo.rewards": {"format": {"weight": 1.0}, "markers": {"weight": 0.25}},
            "training.per_device_train_batch_size": 8,
        }
    )
    args = plan(cfg).args
    core = grpo_arguments(cfg)
    assert {k: args[k] for k in core if k != "scale_rewards"} == {
        k: v for k, v in core.items() if k != "scale_rewards"
    }
    assert (args["num_generations"], args["max_completion_length"]) == (8, 384)
    assert (args["temperature"], args["beta"], args["loss_type"]) == (0.7, 0.04, "grpo")
    assert args["reward_weights"] == [1.0, 0.25], "the order of grpo.rewards"
    assert args["scale_rewards"] == "group"
    assert args["mask_truncated_completions"] is False
    assert args["epsilon_high"] == TRL_EPSILON
    # GRPO samples completions; it has no max_length, and counts its own tokens.
    assert "max_length" not in args
    assert args["include_num_input_tokens_seen"] == "no"
    assert "completion_only_loss" not in args and "packing" not in args


def test_the_trl_trainer_maps_the_same_grpo() -> None:
    """One config, one algorithm: every GRPO key the trl trainer gives GRPOConfig reaches
    Unsloth's with the same value, but the ones Unsloth's rewrite would read differently."""
    config_map = pytest.importorskip("hegelion_trl.config_map")  # not in the unsloth env
    Device, trl_arguments = config_map.Device, config_map.trl_arguments

    for loss_type in ("dapo", "dr_grpo", "grpo", "bnpo"):
        cfg = config(**{"grpo.loss_type": loss_type})
        trl_args = trl_arguments(
            cfg, OUT, device=Device(cuda=True, bf16=True), shape="prompt", has_eval=False
        )
        ours = plan(cfg).args
        grpo_keys = set(grpo_arguments(cfg))
        pinned = set(unsloth_grpo_pins(cfg))
        assert {k: ours[k] for k in grpo_keys - pinned} == {
            k: trl_args[k] for k in grpo_keys - pinned
        }, loss_type
        assert "max_length" not in trl_args and "max_length" not in ours


@pytest.mark.parametrize(
    ("loss_type", "scale_rewards"),
    [("dapo", "group"), ("grpo", "group"), ("bnpo", "group"), ("dr_grpo", None)],
)
def test_pins_keep_unsloths_rewrite_from_changing_the_algorithm(
    loss_type: str, scale_rewards: str | None
) -> None:
    """Unsloth 2026.10's GRPOConfig rewrite sets epsilon_high 0.28 for an explicit dapo
    when none is given, and turns dr_grpo's scale_rewards "group" into False (None means
    "keep scaling" there). TRL's own reading of the unpinned config is epsilon_high =
    epsilon = 0.2 and "group"; the pins give exactly that."""
    args = plan(config(**{"grpo.loss_type": loss_type})).args
    assert args["epsilon_high"] == 0.2
    assert args["scale_rewards"] == scale_rewards
    assert args["mask_truncated_completions"] is False, "given, so Unsloth keeps it"


def test_epsilon_pin_is_trls_own_default() -> None:
    trl = pytest.importorskip("trl")
    defaults = {f.name: f.default for f in dataclasses.fields(trl.GRPOConfig)}
    assert defaults["epsilon"] == TRL_EPSILON
    assert defaults["epsilon_high"] is None, "TRL reads unset as epsilon: the pin is that value"


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "bnpo"])
def test_grpo_args_build_trls_grpo_config(loss_type: str) -> None:
    """The plan's arguments are fields of GRPOConfig and pass its own checks (on this CPU:
    no mixed precision). dr_grpo's scale_rewards None is Unsloth's reading, not TRL's."""
    trl = pytest.importorskip("trl")
    args = plan(config(**{"grpo.loss_type": loss_type})).args
    fields = {f.name for f in dataclasses.fields(trl.GRPOConfig)}
    assert set(args) <= fields, set(args) - fields
    built = trl.GRPOConfig(**{**args, "bf16": False, "fp16": False, "use_cpu": True})
    assert (built.loss_type, built.scale_rewards, built.epsilon_high) == (loss_type, "group", 0.2)
    assert built.num_generations == 4 and built.reward_weights == [1.0]


def test_init_adapter_continues_the_sft_adapter(tmp_path: Path) -> None:
    adapter = tmp_path / "sft" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    p = plan(config(init_adapter=str(adapter)))
    assert p.peft is None, "from_pretrained loads the adapter trainable; no second LoRA"
    assert p.load["model_name"] == str(adapter)
    assert p.method == "grpo" and p.args["num_generations"] == 4


def test_resume_and_checkpoints_as_for_sft(tmp_path: Path) -> None:
    (tmp_path / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    (tmp_path / "checkpoints" / "checkpoint-4" / "trainer_state.json").write_text("{}")
    p = build_plan(config(resume=True), UnslothOptions(), tmp_path, bf16_supported=True)
    assert p.resume_from == str(tmp_path / "checkpoints" / "checkpoint-4")
    assert p.args["output_dir"] == str(tmp_path / "checkpoints")


# ----- fast_inference (vLLM), off by default ----------------------------------------------


def test_fast_inference_is_off_by_default() -> None:
    load = from_pretrained_kwargs(config(), UnslothOptions(), "bfloat16")
    assert load["fast_inference"] is False
    assert "max_lora_rank" not in load and "gpu_memory_utilization" not in load


def test_fast_inference_sizes_vllm_for_the_lora() -> None:
    options = UnslothOptions(fast_inference=True, gpu_memory_utilization=0.4)
    load = plan(config(**{"lora.r": 32}), options).load
    assert load["fast_inference"] is True
    assert load["max_lora_rank"] == 32 and load["gpu_memory_utilization"] == 0.4


@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_fast_inference_is_refused_where_nothing_is_sampled(method: str) -> None:
    cfg = load_train_config(None, {"model": "m", "method": method})
    with pytest.raises(HegelionError, match="--method grpo"):
        plan(cfg, UnslothOptions(fast_inference=True))


# ----- refused before the GPU check -------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"grpo.temperature": 12.0}, "grpo.temperature 12: Unsloth samples .* below 10"),
        (
            {"grpo.max_completion_length": 2048, "training.max_seq_length": 2048},
            "grpo.max_completion_length 2048 leaves no room for the prompt",
        ),
        (
            {"training.per_device_train_batch_size": 6},
            "grpo.num_generations 4 must divide the completions per step",
        ),
        ({"scu": {}}, "no SCU regularisation"),
    ],
)
def test_what_unsloth_cannot_run_is_refused_before_the_gpu_check(
    prompts: Path, tmp_path: Path, overrides: dict[str, Any], match: str
) -> None:
    with pytest.raises(HegelionError, match=match) as caught:
        UnslothTrainer().train(prompts, tmp_path / "run", config(**overrides))
    assert not isinstance(caught.value, NoGPUError)


def test_fast_inference_without_vllm_names_the_install(prompts: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    trainer = UnslothTrainer({"fast_inference": True})
    with pytest.raises(HegelionError, match="pip install vllm") as caught:
        trainer.train(prompts, tmp_path / "run", config())
    assert not isinstance(caught.value, NoGPUError)


@pytest.mark.parametrize("fmt", ["prompts", "chat", "sft"])
def test_grpo_data_is_accepted_and_only_the_gpu_is_missing(
    prompts: Path, formatted: Any, tmp_path: Path, fmt: str
) -> None:
    data = prompts if fmt == "prompts" else formatted(fmt)
    with pytest.raises(NoGPUError, match="--trainer trl"):
        UnslothTrainer().train(data, tmp_path / "run", config(model=str(tmp_path / "never")))


def test_dpo_rows_are_not_grpo_data(formatted: Any, tmp_path: Path) -> None:
    with pytest.raises(HegelionError, match="--method grpo needs prompts or chat or sft rows"):
        UnslothTrainer().train(formatted("dpo"), tmp_path / "run", config())


def test_cli_takes_method_grpo_for_unsloth(prompts: Path, tmp_path: Path) -> None:
    """`hegelion train --trainer unsloth --method grpo` passes the method check (unsloth
    lists grpo) and stops at the GPU, naming the alternatives."""
    exe = Path(sys.executable).parent / "hegelion"
    result = subprocess.run(
        [
            str(exe),
            "train",
            "--trainer",
            "unsloth",
            "--method",
            "grpo",
            "--model",
            str(tmp_path / "never-loaded"),
            "--data",
            str(prompts),
            "--output",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cannot train --method grpo" not in result.stderr
    assert "the unsloth trainer needs an NVIDIA GPU" in result.stderr
    assert "Traceback" not in result.stderr


# ----- the prompts ----------------------------------------------------------------------------


def test_prompt_rows_are_the_sft_conversation(prompts: Path) -> None:
    train, valid = read_prompt_rows(prompts)
    assert valid is None
    assert train[0]["prompt"] == [
        {"role": "system", "content": DEFAULT_SYSTEM},
        {"role": "user", "content": "Is free will compatible with determinism?"},
    ]
    plain, _ = read_prompt_rows(prompts, chat_template=False)
    assert plain[1]["prompt"] == "Where does knowledge come from?\n\n"


def test_prompt_rows_keep_columns_and_the_valid_split(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for split, question in (("train", "Q1?"), ("valid", "Q2?")):
        row = {"prompt": question, "answer": "yes", "expected_confidence": 0.8}
        (data / f"{split}.jsonl").write_bytes(orjson.dumps(row) + b"\n")
    train, valid = read_prompt_rows(data)
    assert train[0]["answer"] == "yes" and train[0]["expected_confidence"] == 0.8
    assert valid is not None and valid[0]["prompt"][-1]["content"] == "Q2?"


def test_a_bad_prompt_row_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(b'{"prompt": "fine"}\n{"prompt": "   "}\n')
    with pytest.raises(InputError, match=r"prompts\.jsonl:2"):
        read_prompt_rows(path)
