"""``init_adapter``: a run continues an earlier LoRA (how the Simplex stages chain).

The earlier adapter may be hegelion-mlx's own (mlx or PEFT layout) or a PEFT adapter
from hegelion-trl or PEFT itself; its rank, scale, targets and blocks win over the
config's, as with ``--trainer trl``.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from hegelion_mlx.trainer import MLXTrainer
from mlx_testutil import read_jsonl, train_config

from hegelion_core.errors import HegelionError

QUIET = {"progress": False, "steps_per_eval": 0}


@pytest.fixture(scope="module")
def first(tiny_model: Path, mlx_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A first stage: rank 8, alpha 16, attention projections, 8 steps."""
    out = tmp_path_factory.mktemp("first-stage")
    MLXTrainer(QUIET).train(mlx_data, out, train_config(tiny_model))
    return out


def first_loss(out: Path) -> float:
    return next(r["loss"] for r in read_jsonl(out / "metrics.jsonl") if "loss" in r)


@pytest.mark.parametrize("layout", ["adapter", "mlx_adapter"])
def test_a_second_stage_starts_from_the_first_stages_adapter(
    first: Path, tiny_model: Path, mlx_data: Path, tmp_path: Path, layout: str
) -> None:
    # A different rank and targets in the config: the earlier adapter's own win.
    config = train_config(
        tiny_model,
        lora={"r": 4, "lora_alpha": 4, "target_modules": ["q_proj"]},
        training={"max_steps": 1, "learning_rate": 1e-9},
    ).model_copy(update={"init_adapter": first / layout})
    MLXTrainer(QUIET).train(mlx_data, tmp_path, config)

    before = mx.load(str(first / "mlx_adapter" / "adapters.safetensors"))
    after = mx.load(str(tmp_path / "mlx_adapter" / "adapters.safetensors"))
    assert set(after) == set(before) and len(after) == 16
    for key, value in before.items():  # one step at lr 1e-9 leaves the loaded weights in place
        np.testing.assert_allclose(np.array(after[key]), np.array(value), atol=1e-6, rtol=0)
    cfg = json.loads((tmp_path / "mlx_adapter" / "adapter_config.json").read_text())
    assert (cfg["lora_parameters"]["rank"], cfg["lora_parameters"]["scale"]) == (8, 2.0)
    # The same first batch (the order comes from the seed): a fresh LoRA (B = 0) would
    # see exactly the first stage's first loss; starting from its adapter, less.
    assert first_loss(tmp_path) < first_loss(first) - 0.05


def test_a_peft_adapter_with_rslora_keeps_its_scale(
    first: Path, tiny_model: Path, mlx_data: Path, tmp_path: Path
) -> None:
    peft = tmp_path / "peft"
    peft.mkdir()
    (peft / "adapter_model.safetensors").write_bytes(
        (first / "adapter" / "adapter_model.safetensors").read_bytes()
    )
    cfg = json.loads((first / "adapter" / "adapter_config.json").read_text()) | {"use_rslora": True}
    (peft / "adapter_config.json").write_text(json.dumps(cfg))
    config = train_config(tiny_model, training={"max_steps": 1, "learning_rate": 1e-9}).model_copy(
        update={"init_adapter": peft}
    )
    MLXTrainer(QUIET).train(mlx_data, tmp_path / "out", config)
    written = json.loads((tmp_path / "out" / "mlx_adapter" / "adapter_config.json").read_text())
    assert written["lora_parameters"]["scale"] == pytest.approx(16 / 8**0.5)  # alpha / sqrt(r)


def test_what_cannot_be_continued_is_a_clear_error(
    first: Path, tiny_model: Path, mlx_data: Path, tmp_path: Path
) -> None:
    def train(init: Path) -> None:
        config = train_config(tiny_model, training={"max_steps": 1}).model_copy(
            update={"init_adapter": init}
        )
        MLXTrainer(QUIET).train(mlx_data, tmp_path / "out", config)

    with pytest.raises(HegelionError, match=r"holds no LoRA adapter.*`adapter` or `mlx_adapter`"):
        train(tmp_path)

    dora = tmp_path / "dora"
    dora.mkdir()
    (dora / "adapter_model.safetensors").write_bytes(
        (first / "adapter" / "adapter_model.safetensors").read_bytes()
    )
    cfg = json.loads((first / "adapter" / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps(cfg | {"use_dora": True}))
    with pytest.raises(HegelionError, match=r"uses use_dora.*--trainer trl"):
        train(dora)

    def peft_copy(name: str, change) -> Path:
        """The first stage's PEFT adapter with its tensors changed by ``change``."""
        dest = tmp_path / name
        dest.mkdir()
        tensors = change(mx.load(str(first / "adapter" / "adapter_model.safetensors")))
        mx.save_safetensors(
            str(dest / "adapter_model.safetensors"), tensors, metadata={"format": "pt"}
        )
        (dest / "adapter_config.json").write_text(
            (first / "adapter" / "adapter_config.json").read_text()
        )
        return dest

    # Trained on a wider base: lora_A (r, in) with in = 128 where this model has 64.
    wider = peft_copy(
        "wider", lambda t: {k: mx.zeros((8, 128)) if ".lora_A." in k else v for k, v in t.items()}
    )
    with pytest.raises(
        HegelionError,
        match=r"does not fit the base model .*\(128, 8\) here, \(64, 8\) in the model",
    ):
        train(wider)

    first_block = peft_copy(
        "first-block", lambda t: {k: v for k, v in t.items() if ".layers.0." in k}
    )
    with pytest.raises(
        HegelionError, match=r"adapts blocks \[0\] of a model with 2.*--trainer trl"
    ):
        train(first_block)
