"""TrainConfig -> Unsloth's and TRL's arguments: the decisions CI can check without a GPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hegelion_unsloth.mapping import (
    UnslothOptions,
    build_plan,
    from_pretrained_kwargs,
    get_peft_model_kwargs,
    latest_checkpoint,
    resume_from,
    trainer_args,
)
from hegelion_unsloth.trainer import UnslothTrainer

from hegelion_core.errors import HegelionError, OptionsError
from hegelion_core.training.config import TrainConfig, load_train_config
from hegelion_core.training.scu import SCUConfig

OUT = Path("/runs/a")
# Unsloth 2026.10's own defaults (FastLlamaModel.get_peft_model): Hegelion must not inherit them.
UNSLOTH_LORA_DEFAULTS = {"r": 16, "lora_alpha": 16, "lora_dropout": 0.0}


def config(overrides: dict[str, Any] | None = None, **kwargs: Any) -> TrainConfig:
    """A config the way `hegelion train` builds one: YAML/CLI keys through load_train_config."""
    return load_train_config(
        None, {"model": "Qwen/Qwen2.5-0.5B-Instruct", **(overrides or {}), **kwargs}
    )


def plan(cfg: TrainConfig, options: UnslothOptions | None = None, *, bf16: bool = True, **kw: Any):
    return build_plan(cfg, options or UnslothOptions(), OUT, bf16_supported=bf16, **kw)


def load_flags(load: dict[str, Any]) -> dict[str, bool]:
    return {k: v for k, v in load.items() if k.startswith("load_in_")}


# ----- LoRA ---------------------------------------------------------------------------


def test_hegelion_lora_is_passed_explicitly_not_unsloths_defaults() -> None:
    peft = plan(config()).peft
    assert (peft["r"], peft["lora_alpha"], peft["lora_dropout"]) == (16, 32, 0.05)
    assert peft["lora_alpha"] != UNSLOTH_LORA_DEFAULTS["lora_alpha"]
    assert isinstance(peft["lora_alpha"], int), "adapter_config.json should say 32, not 32.0"


def test_lora_from_the_config_reaches_get_peft_model() -> None:
    cfg = config(
        {
            "lora.r": 8,
            "lora.lora_alpha": 12.5,
            "lora.lora_dropout": 0.0,
            "lora.target_modules": ["q_proj", "v_proj", "gate_proj"],
        }
    )
    peft = get_peft_model_kwargs(cfg, UnslothOptions(), OUT)
    assert peft["r"] == 8 and peft["lora_alpha"] == 12.5 and peft["lora_dropout"] == 0.0
    assert peft["target_modules"] == ["q_proj", "v_proj", "gate_proj"]
    assert peft["bias"] == "none" and peft["use_rslora"] is False


def test_all_linear_target_modules_pass_as_the_string() -> None:
    peft = plan(config({"lora.target_modules": "all-linear"})).peft
    assert peft["target_modules"] == "all-linear"


def test_seed_is_unsloths_random_state_everywhere() -> None:
    p = plan(config({"training.seed": 7}))
    assert p.load["random_state"] == p.peft["random_state"] == p.args["seed"] == 7


def test_rslora_option() -> None:
    assert plan(config(), UnslothOptions(use_rslora=True)).peft["use_rslora"] is True


def test_unsloth_temporary_files_stay_under_the_output() -> None:
    assert Path(plan(config()).peft["temporary_location"]).is_relative_to(OUT)


# ----- quantization -------------------------------------------------------------------


def test_4bit_qlora_by_default() -> None:
    cfg = config()
    assert cfg.quantization == "none"  # TrainConfig's own default, right for TRL on CPU...
    p = plan(cfg)
    assert p.quantization == "4bit"  # ...but unset means QLoRA for Unsloth
    assert load_flags(p.load) == {
        "load_in_4bit": True,
        "load_in_8bit": False,
        "load_in_16bit": False,
    }


@pytest.mark.parametrize(
    ("value", "flag"),
    [("none", "load_in_16bit"), ("8bit", "load_in_8bit"), ("4bit", "load_in_4bit")],
)
def test_explicit_quantization_sets_exactly_one_load_flag(value: str, flag: str) -> None:
    flags = load_flags(plan(config(quantization=value)).load)
    assert [k for k, v in flags.items() if v] == [flag]  # Unsloth rejects two


def test_quantization_none_from_a_yaml_file_is_16bit_lora(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("model: ./base\nquantization: none\nlora: {r: 8, lora_alpha: 16}\n")
    p = plan(load_train_config(path))
    assert p.quantization == "none" and p.load["load_in_16bit"] and not p.load["load_in_4bit"]
    assert (p.peft["r"], p.peft["lora_alpha"]) == (8, 16)


def test_no_model_is_an_error() -> None:
    with pytest.raises(HegelionError, match="--model"):
        from_pretrained_kwargs(TrainConfig(), UnslothOptions(), "bfloat16")


# ----- sequence length and dtype ------------------------------------------------------


def test_max_seq_length_reaches_loader_and_trainer() -> None:
    p = plan(config({"training.max_seq_length": 4096}))
    assert p.load["max_seq_length"] == 4096 and p.args["max_length"] == 4096
    assert p.load["model_name"] == "Qwen/Qwen2.5-0.5B-Instruct"


def test_bfloat16_where_the_gpu_has_it() -> None:
    p = plan(config(), bf16=True)
    assert p.dtype == "bfloat16" and p.load["dtype"] == "bfloat16"
    assert p.args["bf16"] is True and p.args["fp16"] is False


def test_float16_on_a_gpu_without_bfloat16() -> None:
    p = plan(config(), bf16=False)
    assert p.dtype == "float16" and p.args["fp16"] is True and p.args["bf16"] is False


def test_config_bf16_false_means_float16() -> None:
    assert plan(config({"training.bf16": False}), bf16=True).dtype == "float16"


def test_bf16_asked_on_a_gpu_without_it_is_an_error_with_the_fix() -> None:
    with pytest.raises(HegelionError, match="-o dtype=float16"):
        plan(config({"training.bf16": True}), bf16=False)


def test_dtype_option_wins_over_the_config() -> None:
    assert plan(config({"training.bf16": True}), UnslothOptions(dtype="float16")).dtype == "float16"


# ----- gradient checkpointing ---------------------------------------------------------


def test_unsloth_gradient_checkpointing_by_default() -> None:
    p = plan(config())
    assert p.load["use_gradient_checkpointing"] == "unsloth"
    assert p.peft["use_gradient_checkpointing"] == "unsloth"
    assert p.args["gradient_checkpointing"] is True


def test_config_can_turn_checkpointing_off() -> None:
    p = plan(config({"training.gradient_checkpointing": False}))
    assert (
        p.peft["use_gradient_checkpointing"] is False and p.args["gradient_checkpointing"] is False
    )


@pytest.mark.parametrize(
    ("given", "expected"), [(False, False), (True, True), ("unsloth", "unsloth")]
)
def test_checkpointing_option_as_the_cli_parses_it(given: Any, expected: Any) -> None:
    # `-o gradient_checkpointing=false` arrives as JSON false; `=unsloth` as a string.
    driver = UnslothTrainer({"gradient_checkpointing": given})
    p = plan(config({"training.gradient_checkpointing": True}), driver.options)
    assert p.peft["use_gradient_checkpointing"] == expected
    assert p.load["use_gradient_checkpointing"] == expected


def test_misspelled_option_is_an_error() -> None:
    with pytest.raises(OptionsError, match="gradient_checkpoint"):
        UnslothTrainer({"gradient_checkpoint": "unsloth"})


# ----- trainer arguments --------------------------------------------------------------


def test_sft_arguments() -> None:
    cfg = config(
        {
            "training.learning_rate": 1e-4,
            "training.per_device_train_batch_size": 2,
            "training.gradient_accumulation_steps": 8,
            "training.max_steps": 30,
            "training.save_steps": 10,
            "training.optim": "adamw_8bit",
        }
    )
    args = plan(cfg).args
    assert args["learning_rate"] == 1e-4 and args["per_device_train_batch_size"] == 2
    assert args["gradient_accumulation_steps"] == 8 and args["max_steps"] == 30
    assert (
        args["save_steps"] == 10
        and args["save_strategy"] == "steps"
        and args["optim"] == "adamw_8bit"
    )
    assert args["completion_only_loss"] is True and args["packing"] is False
    assert "beta" not in args
    assert args["output_dir"] == str(OUT / "checkpoints")


def test_warmup_ratio_becomes_a_fractional_warmup_steps() -> None:
    args = plan(config({"training.warmup_ratio": 0.1})).args
    assert args["warmup_steps"] == 0.1 and "warmup_ratio" not in args  # transformers 5 dropped it


def test_completion_only_loss_can_be_turned_off() -> None:
    assert (
        plan(config({"training.completion_only_loss": False})).args["completion_only_loss"] is False
    )


def test_dpo_beta_and_no_sft_only_keys() -> None:
    args = plan(config(method="dpo", **{"training.beta": 0.25})).args
    assert args["beta"] == 0.25
    assert "completion_only_loss" not in args and "packing" not in args


def test_eval_only_with_a_valid_split() -> None:
    assert "eval_strategy" not in plan(config()).args
    args = plan(config({"training.save_steps": 20}), has_eval=True).args
    assert args["eval_strategy"] == "steps" and args["eval_steps"] == 20


def test_trainer_args_never_report_to_trackers() -> None:
    assert trainer_args(config(), UnslothOptions(), OUT, "bfloat16")["report_to"] == "none"


# ----- outputs, checkpoints and resume -------------------------------------------------


def test_outputs_follow_the_trainer_contract() -> None:
    assert plan(config()).adapter_dir == OUT / "adapter"
    assert plan(config()).merged_dir is None
    assert plan(config(merge=True)).merged_dir == OUT / "merged"


def _checkpoint(root: Path, step: int, complete: bool = True) -> Path:
    path = root / "checkpoints" / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if complete:
        (path / "trainer_state.json").write_text("{}")
    return path


def test_resume_picks_the_newest_complete_checkpoint_by_step(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 9)
    newest = _checkpoint(tmp_path, 10)  # after 9 by number, before it as text
    _checkpoint(tmp_path, 11, complete=False)  # killed while saving
    (tmp_path / "checkpoints" / "unsloth_compiled_cache").mkdir()
    assert latest_checkpoint(tmp_path / "checkpoints") == newest
    assert resume_from(config(resume=True), tmp_path) == str(newest)
    assert build_plan(
        config(resume=True), UnslothOptions(), tmp_path, bf16_supported=True
    ).resume_from == str(newest)


def test_no_resume_without_the_flag_or_without_checkpoints(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 5)
    assert resume_from(config(), tmp_path) is None
    assert resume_from(config(resume=True), tmp_path / "fresh") is None


# ----- what this trainer refuses ------------------------------------------------------


def test_scu_is_refused_before_any_gpu_work() -> None:
    cfg = config().model_copy(update={"scu": SCUConfig()})
    with pytest.raises(HegelionError, match="mlx-scu"):
        plan(cfg)


def test_several_processes_are_refused_with_the_alternative() -> None:
    with pytest.raises(HegelionError, match="--trainer trl --num-processes"):
        plan(config(num_processes=2))


def test_continuing_an_earlier_adapter_loads_it_instead_of_a_new_lora(tmp_path: Path) -> None:
    """Unsloth's own route: from_pretrained on the adapter directory loads its base and
    the adapter, trainable; get_peft_model must not wrap it in a second LoRA."""
    with pytest.raises(HegelionError, match=r"not a PEFT adapter.*`adapter` directory"):
        plan(config().model_copy(update={"init_adapter": tmp_path}))
    (tmp_path / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8}')
    continued = plan(config(quantization="4bit").model_copy(update={"init_adapter": tmp_path}))
    assert continued.load["model_name"] == str(tmp_path)
    assert continued.peft is None
    assert load_flags(continued.load) == {
        "load_in_4bit": True,
        "load_in_8bit": False,
        "load_in_16bit": False,
    }
    assert plan(config()).peft is not None  # a fresh run still makes its LoRA
