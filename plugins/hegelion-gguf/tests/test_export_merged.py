"""`hegelion export merged`: the merged safetensors load in transformers and give the
logits of base + adapter (and not those of the base alone)."""

from __future__ import annotations

import json

import pytest
from export_helpers import hegelion, listing, train_lora


@pytest.mark.parametrize("name", ["llama-bpe", "mistral-spm"])
def test_merged_matches_base_plus_adapter(export_models, tmp_path, name):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir = export_models.model(name)
    adapter = train_lora(base_dir, tmp_path / "adapter", steps=2, random_init=True)
    out = tmp_path / "merged"
    result = hegelion("export", "merged", "--model", base_dir, "--adapter", adapter, "--out", out)
    assert result.exit_code == 0, result.output
    assert "merged logits vs base + adapter: max |diff|" in result.output
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer_config.json", "manifest.json"} <= names
    assert not any(n.startswith("adapter") for n in names)
    assert listing(tmp_path / "merged") == sorted(names)

    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template  # kept for serving
    ids = torch.tensor([tokenizer("The synthesis keeps what survives from both.")["input_ids"]])
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
        got = merged(ids).logits[0]
        plain = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
        base_logits = plain(ids).logits[0]
        want = PeftModel.from_pretrained(plain, adapter).eval()(ids).logits[0]
    assert not hasattr(merged, "peft_config")
    assert (got - want).abs().max() < 1e-4
    assert (base_logits - want).abs().max() > 1e-2  # the adapter matters

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "export" and manifest["config"]["exporter"] == "merged"
    assert manifest["report"]["passed"] is True
    digests = {i["path"] for i in manifest["inputs"]}
    assert str(adapter / "adapter_model.safetensors") in digests
    assert str(base_dir / "model.safetensors") in digests


def test_merged_output_exports_to_gguf(export_models, tmp_path):
    """The documented two-step route: merged safetensors, then GGUF from them."""
    base_dir = export_models.model("qwen3-bpe")
    adapter = train_lora(base_dir, tmp_path / "adapter", steps=2, random_init=True)
    merged = tmp_path / "merged"
    assert (
        hegelion(
            "export", "merged", "--model", base_dir, "--adapter", adapter, "--out", merged
        ).exit_code
        == 0
    )
    out = tmp_path / "gguf"
    result = hegelion(
        "export", "gguf", "--model", merged, "--quantization", "q8_0", "--name", "q3", "--out", out
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    top1 = next(c for c in report["checks"] if c["name"] == "top1")["figures"]
    assert report["passed"] and top1["agreement"] >= 0.9
