"""TrainConfig -> SFTConfig / DPOConfig, data shapes, quantization and launch settings.

No training here: these pin down what reaches TRL and accelerate, including the GPU
branches, which run on this CPU machine by passing the device in.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trl
from hegelion_trl.config_map import (
    Device,
    build_trl_config,
    for_installed_transformers,
    trl_arguments,
)
from hegelion_trl.data import ASSISTANT_OPEN, choose_shape, convert_row
from trl_helpers import train_config

from hegelion_core.errors import HegelionError

CPU = Device(cuda=False, bf16=False)
GPU = Device(cuda=True, bf16=True)


def test_every_training_key_is_translated(tmp_path: Path) -> None:
    config = train_config(
        Path("m"),
        training={
            "num_train_epochs": 2,
            "max_steps": 7,
            "learning_rate": 3e-4,
            "per_device_train_batch_size": 3,
            "gradient_accumulation_steps": 5,
            "lr_scheduler_type": "linear",
            "warmup_ratio": 0.1,
            "optim": "adamw_torch_fused",
            "max_seq_length": 512,
            "bf16": True,
            "gradient_checkpointing": True,
            "seed": 7,
            "logging_steps": 2,
            "save_steps": 3,
            "save_total_limit": 4,
            "packing": True,
        },
    )
    args = trl_arguments(config, tmp_path, device=GPU, shape="messages", has_eval=True)
    assert args["output_dir"] == str(tmp_path / "checkpoints")
    expected = {
        "num_train_epochs": 2,
        "max_steps": 7,
        "learning_rate": 3e-4,
        "per_device_train_batch_size": 3,
        "per_device_eval_batch_size": 3,
        "gradient_accumulation_steps": 5,
        "lr_scheduler_type": "linear",
        "warmup_steps": 0.1,
        "optim": "adamw_torch_fused",
        "max_length": 512,
        "bf16": True,
        "fp16": False,
        "use_cpu": False,
        "activation_checkpointing": True,
        "seed": 7,
        "data_seed": 7,
        "logging_steps": 2,
        "save_steps": 3,
        "save_total_limit": 4,
        "save_strategy": "steps",
        "eval_strategy": "steps",
        "eval_steps": 3,
        "packing": True,
        "assistant_only_loss": True,
        "completion_only_loss": False,
        "report_to": [],
    }
    assert {k: args[k] for k in expected} == expected


def test_cpu_never_gets_bf16_or_trls_defaults(tmp_path: Path) -> None:
    config = train_config(Path("m"), training={"bf16": True})
    sft = build_trl_config(config, tmp_path, device=CPU, shape="messages", has_eval=False)
    assert isinstance(sft, trl.SFTConfig)
    assert sft.use_cpu and not sft.bf16 and not sft.fp16
    assert sft.activation_checkpointing is False  # TRL's default is True
    assert sft.eval_strategy == "no"
    assert sft.max_length == config.training.max_seq_length
    assert sft.learning_rate == config.training.learning_rate  # TRL's default is 2e-5


@pytest.mark.parametrize(
    ("shape", "assistant_only", "completion_only"),
    [("messages", True, False), ("prompt_completion", False, True), ("text", False, False)],
)
def test_loss_mask_follows_the_shape(
    tmp_path: Path, shape: str, assistant_only: bool, completion_only: bool
) -> None:
    on = trl_arguments(train_config(Path("m")), tmp_path, device=CPU, shape=shape, has_eval=False)  # type: ignore[arg-type]
    assert (on["assistant_only_loss"], on["completion_only_loss"]) == (
        assistant_only,
        completion_only,
    )
    off = trl_arguments(
        train_config(Path("m"), training={"completion_only_loss": False}),
        tmp_path,
        device=CPU,
        shape=shape,
        has_eval=False,
    )  # type: ignore[arg-type]
    assert (off["assistant_only_loss"], off["completion_only_loss"]) == (False, False)


def test_dpo_gets_beta_and_no_sft_keys(tmp_path: Path) -> None:
    config = train_config(Path("m"), method="dpo", training={"beta": 0.25})
    dpo = build_trl_config(config, tmp_path, device=CPU, shape="preference", has_eval=False)
    assert isinstance(dpo, trl.DPOConfig)
    assert dpo.beta == 0.25 and dpo.max_length == config.training.max_seq_length
    assert not hasattr(dpo, "assistant_only_loss")


def test_multi_process_backend(tmp_path: Path) -> None:
    config = train_config(Path("m"), num_processes=2)
    cpu = trl_arguments(config, tmp_path, device=CPU, shape="messages", has_eval=False)
    gpu = trl_arguments(config, tmp_path, device=GPU, shape="messages", has_eval=False)
    assert (cpu["ddp_backend"], gpu["ddp_backend"]) == ("gloo", "nccl")
    assert cpu["ddp_find_unused_parameters"] is False
    single = trl_arguments(
        train_config(Path("m")), tmp_path, device=CPU, shape="messages", has_eval=False
    )
    assert single["ddp_backend"] is None


def test_qlora_config_on_gpu_and_a_clear_error_on_cpu() -> None:
    from hegelion_trl.engine import quantization_config
    from transformers import BitsAndBytesConfig

    assert quantization_config("none", CPU) is None
    q = quantization_config("4bit", GPU)
    assert isinstance(q, BitsAndBytesConfig)
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    import torch

    assert q.bnb_4bit_compute_dtype == torch.bfloat16
    assert (
        quantization_config("4bit", Device(cuda=True, bf16=False), "fp4").bnb_4bit_compute_dtype
        == torch.float16
    )
    with pytest.raises(HegelionError, match=r"needs an NVIDIA GPU.*quantization: none"):
        quantization_config("4bit", CPU)


# ----- rows -> TRL shapes -------------------------------------------------------------


def test_shapes_by_format_and_template() -> None:
    assert (
        choose_shape("dpo", completion_only=True, markers=True, chat_template=True) == "preference"
    )
    assert (
        choose_shape("chat", completion_only=True, markers=True, chat_template=True) == "messages"
    )
    # A real model's template without {% generation %}: TRL could not mask, so prompt/completion.
    assert (
        choose_shape("chat", completion_only=True, markers=False, chat_template=True)
        == "prompt_completion"
    )
    assert (
        choose_shape("sft", completion_only=True, markers=False, chat_template=False)
        == "prompt_completion"
    )
    assert (
        choose_shape("scu", completion_only=True, markers=True, chat_template=True)
        == "prompt_completion"
    )
    assert choose_shape("scu", completion_only=False, markers=True, chat_template=True) == "text"


def test_sft_rows_become_conversations_and_scu_rows_split_at_the_answer() -> None:
    row = {"instruction": "Q?", "input": "ctx", "output": "A.", "system": "S"}
    conv = convert_row(row, "sft", "prompt_completion", chat_template=True)
    assert conv == {
        "prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q?\n\nctx"}],
        "completion": [{"role": "assistant", "content": "A."}],
    }
    plain = convert_row(row, "sft", "prompt_completion", chat_template=False)
    assert plain == {"prompt": "Q?\n\nctx\n\n", "completion": "A."}

    text = "<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\nA.<|im_end|>\n"
    split = convert_row({"text": text}, "scu", "prompt_completion", chat_template=True)
    assert split["prompt"].endswith(ASSISTANT_OPEN) and split["completion"] == "A.<|im_end|>"
    assert split["prompt"] + split["completion"] + "\n" == text
    with pytest.raises(ValueError, match="no assistant turn"):
        convert_row(
            {"text": "<|im_start|>user\nQ?<|im_end|>\n"},
            "scu",
            "prompt_completion",
            chat_template=True,
        )


def test_chat_rows_without_markers_keep_the_last_assistant_turn_as_completion() -> None:
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A"},
    ]
    out = convert_row({"messages": messages}, "chat", "prompt_completion", chat_template=True)
    assert out == {"prompt": messages[:2], "completion": messages[2:]}


def test_checkpointing_takes_the_name_the_installed_transformers_knows() -> None:
    # transformers 5.17 (NVIDIA images) has only gradient_checkpointing; 5.2x adds the new name.
    old = for_installed_transformers(
        {"activation_checkpointing": True, "seed": 1}, {"gradient_checkpointing", "seed"}
    )
    assert old == {"gradient_checkpointing": True, "seed": 1}
    new_fields = {"activation_checkpointing", "gradient_checkpointing", "seed"}
    assert for_installed_transformers({"activation_checkpointing": True}, new_fields) == {
        "activation_checkpointing": True
    }
