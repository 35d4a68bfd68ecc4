"""An adapter saved as a pickle (``adapter_model.bin``) is refused with what to do:
loading a pickle can run code, and Hegelion reads only safetensors adapters."""

from __future__ import annotations

import pickle

import pytest
from export_helpers import hegelion


@pytest.mark.parametrize("exporter", ["gguf", "merged"])
def test_a_pickled_adapter_is_refused_with_the_fix(export_models, tmp_path, exporter):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8, "lora_alpha": 16}')
    (adapter / "adapter_model.bin").write_bytes(pickle.dumps({"not": "tensors"}))
    out = tmp_path / "out"
    result = hegelion(
        "export",
        exporter,
        "--model",
        export_models.model("llama-bpe"),
        "--adapter",
        adapter,
        "--out",
        out,
    )
    assert result.exit_code == 1
    assert f"{adapter / 'adapter_model.bin'} is a pickled PyTorch file" in result.output
    assert "safe_serialization=True" in result.output and "Traceback" not in result.output
    assert not out.exists()
