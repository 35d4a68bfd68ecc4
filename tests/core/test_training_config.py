"""The one training config: the Simplex YAML layout, LoRA translation, clear errors,
and data that must fit the method."""

from __future__ import annotations

import pytest

from hegelion_core.errors import HegelionError, InputError
from hegelion_core.training.config import LoraConfig, load_train_config
from hegelion_core.training.data import check_data
from hegelion_core.training.metrics import MetricsLog, plot_metrics
from tests.conftest import write_jsonl

SIMPLEX_YAML = """\
model: Qwen/Qwen3-8B
lora:
  r: 16
  lora_alpha: 32
  lora_dropout: 0.05
  target_modules: [q_proj, k_proj, v_proj, o_proj]
training:
  num_train_epochs: 3
  learning_rate: 2.0e-4
  per_device_train_batch_size: 4
  gradient_accumulation_steps: 4
  lr_scheduler_type: cosine
  warmup_ratio: 0.03
  optim: adamw_torch
  max_seq_length: 2048
  bf16: true
  gradient_checkpointing: true
"""


def test_reads_the_simplex_layout(tmp_path) -> None:
    path = tmp_path / "training_config.yaml"
    path.write_text(SIMPLEX_YAML)
    cfg = load_train_config(path)
    assert cfg.model == "Qwen/Qwen3-8B" and cfg.lora.r == 16 and cfg.lora.lora_alpha == 32
    assert cfg.training.bf16 is True and cfg.training.max_seq_length == 2048


def test_cli_overrides_win(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(SIMPLEX_YAML)
    cfg = load_train_config(path, {"training.learning_rate": 1e-5, "lora.r": 8, "model": "./tiny"})
    assert (cfg.training.learning_rate, cfg.lora.r, cfg.model) == (1e-5, 8, "./tiny")


def test_a_wrong_key_names_file_line_and_key(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(SIMPLEX_YAML.replace("  warmup_ratio: 0.03", "  warmup_ratoi: 0.03"))
    with pytest.raises(InputError) as info:
        load_train_config(path)
    assert str(info.value).startswith(
        f"{path}:13: field 'training.warmup_ratoi': training.warmup_ratoi: unknown field"
    )


def test_a_wrong_type_names_the_key(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(SIMPLEX_YAML.replace("  r: 16", "  r: sixteen"))
    with pytest.raises(InputError, match=r":3: field 'lora.r'"):
        load_train_config(path)


def test_lora_translation_per_backend() -> None:
    lora = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "down_proj"]
    )
    assert lora.to_mlx() == {
        "rank": 16,
        "scale": 2.0,
        "dropout": 0.0,
        "keys": ["self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"],
    }
    assert lora.to_peft()["lora_alpha"] == 32 and lora.to_peft()["r"] == 16


def test_dpo_rows_given_to_sft_say_which_format_is_needed(tmp_path) -> None:
    dpo = write_jsonl(tmp_path / "dpo.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"}])
    with pytest.raises(
        HegelionError, match="holds dpo rows, but --method sft needs chat or sft or scu rows"
    ):
        check_data(dpo, "sft")
    chat = write_jsonl(tmp_path / "chat.jsonl", [{"messages": [{"role": "user", "content": "x"}]}])
    with pytest.raises(HegelionError, match="--format dpo"):
        check_data(chat, "dpo")
    assert check_data(chat, "sft") == "chat"
    with pytest.raises(HegelionError, match="needs chat rows"):
        check_data(
            write_jsonl(tmp_path / "s.jsonl", [{"text": "t"}]), "sft", accepts=("chat", "dpo")
        )


def test_a_method_the_trainer_cannot_train_names_one_that_can(tmp_path) -> None:
    dpo = write_jsonl(tmp_path / "dpo.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"}])
    with pytest.raises(HegelionError, match="cannot train --method dpo .* use --trainer trl"):
        check_data(dpo, "dpo", accepts=("chat", "sft"))


def test_split_directory_needs_train(tmp_path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(InputError, match="no train.jsonl"):
        check_data(tmp_path / "d", "sft")


def test_metrics_log_and_plot(tmp_path) -> None:
    log = MetricsLog(tmp_path)
    for step in range(1, 4):
        log.log(step, {"loss": 3.0 / step, "lambda": 1.0 + step, "note": "x"})
    assert (tmp_path / "metrics.jsonl").read_text().splitlines()[
        0
    ] == '{"step":1,"loss":3.0,"lambda":2.0}'
    png = plot_metrics(tmp_path / "metrics.jsonl", tmp_path / "metrics.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_to_takes_a_comma_list_as_trl_does() -> None:
    from hegelion_core.training.config import load_train_config

    config = load_train_config(None, {"tracking.report_to": "tensorboard, wandb"})
    assert config.tracking.report_to == ["tensorboard", "wandb"]
    assert load_train_config(None, {"tracking.report_to": "none"}).tracking.report_to == []
