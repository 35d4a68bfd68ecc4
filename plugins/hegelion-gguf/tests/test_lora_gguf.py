"""PEFT LoRA -> llama.cpp LoRA GGUF, applied with `Llama(model_path=base, lora_path=...)`.

The check: llama.cpp's logits with the adapter equal the PEFT model's (within 1e-4
for an f32 base and adapter; measured about 1e-6), and the adapter visibly moves them
away from the base (by more than 0.05), so a silently ignored adapter fails.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hegelion_gguf.export import (
    AdapterBaseMismatch,
    AdapterError,
    ModelConfigError,
    convert_lora_to_gguf,
)

TEXT = "THESIS: The first position states a claim plainly and gives its best reasons."
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_adapter(base_dir: Path, out: Path, *, seed: int = 1, **lora_kwargs) -> Path:
    """A PEFT adapter on `base_dir` with non-zero B (PEFT starts B at zero: a no-op)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    config = LoraConfig(
        r=8, lora_alpha=16, target_modules=TARGETS, init_lora_weights=False, **lora_kwargs
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.mul_(0.05)  # keep the change moderate, like a few training steps
    peft_model.save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def adapters(export_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            cache[name] = make_adapter(export_models.model(name), root / name)
        return cache[name]

    return get


def token_ids(model_dir: Path, text: str = TEXT) -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))(text).input_ids


@pytest.mark.parametrize("name", ["llama-bpe", "mistral-spm", "qwen2-bpe", "qwen3-bpe"])
def test_lora_gguf_changes_logits_like_peft(export_models, adapters, logits, tmp_path, name):
    base_dir, adapter_dir = export_models.model(name), adapters(name)
    out = convert_lora_to_gguf(adapter_dir, base_dir, tmp_path / "lora.gguf", "f32")
    ids = token_ids(base_dir)
    base_gguf = export_models.gguf(name, "f32")
    got = logits.llama_cpp(base_gguf, ids, lora=out)
    want = logits.hf(base_dir, ids, adapter=adapter_dir)
    plain = logits.hf(base_dir, ids)
    assert np.abs(want - plain).max() > 0.05  # the adapter matters
    assert np.abs(got - want).max() < 1e-4


def test_f16_adapter_on_f16_base(export_models, adapters, logits, tmp_path):
    base_dir, adapter_dir = export_models.model("llama-bpe"), adapters("llama-bpe")
    out = convert_lora_to_gguf(adapter_dir, base_dir, tmp_path / "lora.gguf")  # f16 default
    ids = token_ids(base_dir)
    got = logits.llama_cpp(export_models.gguf("llama-bpe", "f16"), ids, lora=out)
    want = logits.hf(base_dir, ids, adapter=adapter_dir)
    assert np.abs(got - want).max() < 1e-2
    assert (got.argmax(-1) == want.argmax(-1)).all()


def test_rslora_and_per_module_rank_and_alpha(export_models, logits, tmp_path):
    """rsLoRA and rank/alpha patterns are folded into B; llama.cpp still matches PEFT."""
    base_dir = export_models.model("llama-bpe")
    adapter_dir = make_adapter(
        base_dir,
        tmp_path / "adapter",
        seed=2,
        use_rslora=True,
        rank_pattern={"down_proj": 4},
        alpha_pattern={"layers.1.self_attn.q_proj": 4},
    )
    out = convert_lora_to_gguf(adapter_dir, base_dir, tmp_path / "lora.gguf", "f32")
    ids = token_ids(base_dir)
    got = logits.llama_cpp(export_models.gguf("llama-bpe", "f32"), ids, lora=out)
    want = logits.hf(base_dir, ids, adapter=adapter_dir)
    assert np.abs(got - want).max() < 1e-4


def test_adapter_metadata_and_tensor_names(export_models, adapters, tmp_path):
    import gguf

    out = convert_lora_to_gguf(
        adapters("qwen2-bpe"), export_models.model("qwen2-bpe"), tmp_path / "lora.gguf"
    )
    reader = gguf.GGUFReader(str(out))
    assert reader.get_field("general.architecture").contents() == "qwen2"
    assert reader.get_field("general.type").contents() == "adapter"
    assert reader.get_field("adapter.type").contents() == "lora"
    assert reader.get_field("adapter.lora.alpha").contents() == 16.0
    shapes = {t.name: list(t.shape) for t in reader.tensors}  # GGML order: (ne0, ne1)
    assert len(shapes) == 2 * 7 * 2  # 7 modules x 2 layers x (A, B)
    assert shapes["blk.0.attn_q.weight.lora_a"] == [256, 8]  # in, r
    assert shapes["blk.0.attn_q.weight.lora_b"] == [8, 256]  # r, out
    assert shapes["blk.1.ffn_down.weight.lora_a"] == [512, 8]
    assert shapes["blk.1.attn_k.weight.lora_b"] == [8, 128]


def test_adapter_for_another_base_is_refused(export_models, adapters, tmp_path):
    """A llama adapter offered a qwen2 base: same module names and shapes, other model."""
    adapter_dir = adapters("llama-bpe")
    out = tmp_path / "lora.gguf"
    with pytest.raises(AdapterBaseMismatch) as err:
        convert_lora_to_gguf(adapter_dir, export_models.model("qwen2-bpe"), out)
    msg = str(err.value)
    assert str(adapter_dir) in msg and str(export_models.model("qwen2-bpe")) in msg
    assert "LlamaForCausalLM" in msg and "Qwen2ForCausalLM" in msg
    assert not out.exists()


def test_adapter_shapes_must_fit_the_base(export_models, adapters, tmp_path):
    """Without a usable base_model_name_or_path, the tensor shapes decide."""
    from gguf_builders import build_export_model

    adapter_dir = tmp_path / "adapter"
    shutil.copytree(adapters("llama-bpe"), adapter_dir)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "some-org/some-hub-model"
    (adapter_dir / "adapter_config.json").write_text(json.dumps(config))
    narrow = build_export_model(
        tmp_path / "narrow",
        "llama",
        "bpe",
        tied=True,
        dims={"hidden_size": 128, "intermediate_size": 256, "head_dim": 32},
    )
    with pytest.raises(AdapterBaseMismatch) as err:
        convert_lora_to_gguf(adapter_dir, narrow, tmp_path / "lora.gguf")
    assert "do not fit the base weight" in str(err.value) and str(narrow) in str(err.value)

    shallow = build_export_model(
        tmp_path / "shallow", "llama", "bpe", tied=True, dims={"num_hidden_layers": 1}
    )
    with pytest.raises(AdapterBaseMismatch, match=r"model\.layers\.1\..*which the base lacks"):
        convert_lora_to_gguf(adapter_dir, shallow, tmp_path / "lora.gguf")
    assert not (tmp_path / "lora.gguf").exists()


def test_adapters_a_gguf_lora_cannot_hold(export_models, adapters, tmp_path):
    base_dir = export_models.model("llama-bpe")

    def variant(edit) -> Path:
        d = tmp_path / f"v{len(list(tmp_path.iterdir()))}"
        shutil.copytree(adapters("llama-bpe"), d)
        config = json.loads((d / "adapter_config.json").read_text())
        edit(config)
        (d / "adapter_config.json").write_text(json.dumps(config))
        return d

    with pytest.raises(AdapterError, match="DoRA"):
        convert_lora_to_gguf(
            variant(lambda c: c.update(use_dora=True)), base_dir, tmp_path / "a.gguf"
        )
    with pytest.raises(AdapterError, match="modules_to_save"):
        convert_lora_to_gguf(
            variant(lambda c: c.update(modules_to_save=["lm_head"])), base_dir, tmp_path / "b.gguf"
        )
    with pytest.raises(ModelConfigError, match="'lora_alpha'"):
        convert_lora_to_gguf(variant(lambda c: c.pop("lora_alpha")), base_dir, tmp_path / "c.gguf")
    with pytest.raises(ModelConfigError, match=r"adapter_config\.json: not found"):
        convert_lora_to_gguf(tmp_path, base_dir, tmp_path / "d.gguf")
    assert not list(tmp_path.glob("*.gguf"))
