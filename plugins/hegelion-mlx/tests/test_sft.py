"""LoRA SFT on the tiny model: trains, saves both layouts, reloads, converts, merges.

The equalities are the point: mlx-lm's base+adapter, PEFT's base+converted adapter
in torch, the fused MLX model and the fused model loaded by transformers must all
compute the same logits. A wrong transpose, scale or module name breaks them by
orders of magnitude more than the tolerances.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
import pytest
from hegelion_mlx.trainer import MLXTrainer
from mlx_testutil import read_jsonl, train_config

from hegelion_core.contracts import TrainResult

PROMPT = "<|im_start|>user\nIs doubt a virtue?<|im_end|>\n<|im_start|>assistant\n<thought>"


@pytest.fixture(scope="module")
def trained(
    tiny_model: Path, mlx_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainResult, Path]:
    out = tmp_path_factory.mktemp("sft-run")
    result = MLXTrainer({"progress": False}).train(
        mlx_data, out, train_config(tiny_model, merge=True)
    )
    return result, out


@pytest.fixture(scope="module")
def token_ids(tiny_model: Path) -> list[int]:
    from mlx_lm.utils import load_tokenizer

    return load_tokenizer(tiny_model).encode(PROMPT)


def mlx_logits(model_dir: Path, ids: list[int], adapter: Path | None = None) -> np.ndarray:
    from mlx_lm.utils import load

    model, _ = load(str(model_dir), adapter_path=str(adapter) if adapter else None)
    model.eval()
    return np.array(model(mx.array([ids])).astype(mx.float32))


def torch_logits(model: Any, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits.float().numpy()


def test_writes_both_layouts_and_the_result(trained: tuple[TrainResult, Path]) -> None:
    result, out = trained
    assert result.adapter_dir == out / "adapter"
    assert result.merged_dir == out / "merged"
    assert (out / "mlx_adapter" / "adapters.safetensors").is_file()
    mlx_cfg = json.loads((out / "mlx_adapter" / "adapter_config.json").read_text())
    assert mlx_cfg["lora_parameters"]["scale"] == 2.0  # alpha 16 / r 8, under mlx-lm's key
    assert "alpha" not in mlx_cfg["lora_parameters"]

    peft_cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert (peft_cfg["r"], peft_cfg["lora_alpha"], peft_cfg["peft_type"]) == (8, 16, "LORA")
    assert sorted(peft_cfg["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert (out / "adapter" / "tokenizer.json").is_file(), (
        "the adapter directory carries the tokenizer"
    )

    m = result.metrics
    assert m["steps"] == 8 and m["tokens"] > 0 and m["tokens_per_s"] > 0 and m["peak_memory_mb"] > 0
    assert np.isfinite(m["train_loss"]) and np.isfinite(m["val_loss"])
    assert {"mlx", "mlx-lm", "hegelion-mlx"} <= set(result.versions)


def test_peft_tensors_are_the_transposed_mlx_tensors(trained: tuple[TrainResult, Path]) -> None:
    _, out = trained
    a = mx.load(str(out / "mlx_adapter" / "adapters.safetensors"))
    p = mx.load(str(out / "adapter" / "adapter_model.safetensors"))
    assert len(p) == len(a) == 2 * 2 * 4  # 2 blocks x 4 projections x (A, B)
    key = "model.layers.1.self_attn.v_proj"
    assert p[f"base_model.model.{key}.lora_A.weight"].shape == (8, 64)
    assert mx.array_equal(p[f"base_model.model.{key}.lora_A.weight"], a[f"{key}.lora_a"].T)
    assert mx.array_equal(p[f"base_model.model.{key}.lora_B.weight"], a[f"{key}.lora_b"].T)
    assert float(mx.abs(a[f"{key}.lora_b"]).max()) > 1e-3, "training must move lora_b off zero"


def test_metrics_log_every_step(trained: tuple[TrainResult, Path]) -> None:
    _, out = trained
    rows = read_jsonl(out / "metrics.jsonl")
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 9))
    assert all({"loss", "lr", "tokens_per_s", "tokens"} <= set(r) for r in steps)
    assert steps[-1]["lr"] == pytest.approx(1e-2)
    assert [r["step"] for r in rows if "val_loss" in r] == [8]


def test_reloaded_adapter_changes_the_model(
    trained: tuple[TrainResult, Path], tiny_model: Path, token_ids: list[int]
) -> None:
    _, out = trained
    base = mlx_logits(tiny_model, token_ids)
    adapted = mlx_logits(tiny_model, token_ids, out / "mlx_adapter")
    assert np.abs(adapted - base).max() > 0.05, "the trained adapter should change the logits"


def test_peft_loads_the_converted_adapter_and_matches_mlx(
    trained: tuple[TrainResult, Path], tiny_model: Path, token_ids: list[int]
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    _, out = trained
    hf = AutoModelForCausalLM.from_pretrained(tiny_model, dtype="float32")
    peft_model = PeftModel.from_pretrained(hf, out / "adapter").eval()
    adapted = [n for n, _ in peft_model.named_modules() if n.endswith(".lora_A.default")]
    assert len(adapted) == 8
    got = torch_logits(peft_model, token_ids)
    want = mlx_logits(tiny_model, token_ids, out / "mlx_adapter")
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)


def test_merged_equals_base_plus_adapter(
    trained: tuple[TrainResult, Path], tiny_model: Path, token_ids: list[int]
) -> None:
    _, out = trained
    fused = mlx_logits(out / "merged", token_ids)
    want = mlx_logits(tiny_model, token_ids, out / "mlx_adapter")
    np.testing.assert_allclose(fused, want, atol=1e-4, rtol=0)
    assert not any("lora" in k for k in mx.load(str(out / "merged" / "model.safetensors")))


def test_transformers_loads_the_merged_model(
    trained: tuple[TrainResult, Path], tiny_model: Path, token_ids: list[int]
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, out = trained
    merged = AutoModelForCausalLM.from_pretrained(out / "merged", dtype="float32").eval()
    np.testing.assert_allclose(
        torch_logits(merged, token_ids),
        mlx_logits(tiny_model, token_ids, out / "mlx_adapter"),
        atol=1e-3,
        rtol=0,
    )
    assert AutoTokenizer.from_pretrained(out / "merged").encode(PROMPT) == token_ids


def test_adapting_the_last_block_only_converts_exactly(
    tiny_model: Path, mlx_data: Path, tmp_path: Path, token_ids: list[int]
) -> None:
    """``num_layers=1``: PEFT must adapt block 1 alone (``layers_to_transform``), and
    ``all-linear`` must carry the MLP projections over too."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    config = train_config(
        tiny_model, lora={"target_modules": "all-linear"}, training={"max_steps": 3}
    )
    MLXTrainer({"num_layers": 1, "progress": False, "steps_per_eval": 0}).train(
        mlx_data, tmp_path, config
    )
    peft_cfg = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert peft_cfg["layers_to_transform"] == [1]
    assert set(peft_cfg["target_modules"]) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }

    hf = AutoModelForCausalLM.from_pretrained(tiny_model, dtype="float32")
    peft_model = PeftModel.from_pretrained(hf, tmp_path / "adapter").eval()
    adapted = {
        n.split(".lora_A")[0]
        for n, _ in peft_model.named_modules()
        if n.endswith(".lora_A.default")
    }
    assert len(adapted) == 7 and all(".layers.1." in n for n in adapted)
    np.testing.assert_allclose(
        torch_logits(peft_model, token_ids),
        mlx_logits(tiny_model, token_ids, tmp_path / "mlx_adapter"),
        atol=1e-3,
        rtol=0,
    )


def test_qlora_trains_on_a_quantized_base_and_merges_dequantized(
    tiny_model: Path, mlx_data: Path, tmp_path: Path, token_ids: list[int]
) -> None:
    from mlx_lm.utils import load

    config = train_config(tiny_model, quantization="4bit", merge=True, training={"max_steps": 3})
    result = MLXTrainer({"progress": False, "steps_per_eval": 0}).train(mlx_data, tmp_path, config)
    assert (
        json.loads((tmp_path / "mlx_adapter" / "adapter_config.json").read_text())["quantization"]
        == "4bit"
    )
    merged_cfg = json.loads((result.merged_dir / "config.json").read_text())
    assert "quantization" not in merged_cfg and "quantization_config" not in merged_cfg
    model, _ = load(str(result.merged_dir))
    assert (
        model.model.layers[0].self_attn.q_proj.weight.dtype == mx.float32
    )  # de-quantized, HF layout
    np.testing.assert_allclose(
        mlx_logits(result.merged_dir, token_ids),
        mlx_logits(tiny_model, token_ids, tmp_path / "mlx_adapter"),
        atol=1e-4,
        rtol=0,
    )
