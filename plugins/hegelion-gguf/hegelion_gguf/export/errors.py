"""Errors of the export package: each names the file, key or tensor at fault and the fix.

All subclass `hegelion_core.errors.HegelionError`, so the CLI prints them without a
traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hegelion_core import HegelionError, InputError


class ExportError(HegelionError):
    """Base of every export failure."""


class UnsupportedArchitecture(ExportError):
    """The checkpoint's ``architectures[0]`` is not one this converter knows."""

    def __init__(self, config_path: Path, architecture: str, supported: Iterable[str]) -> None:
        self.architecture = architecture
        self.supported = sorted(supported)
        super().__init__(
            f"{config_path}: architecture {architecture!r} is not supported for GGUF export; "
            f"supported: {', '.join(self.supported)}\n"
            "  hint: point LLAMA_CPP_DIR at a llama.cpp checkout to use its own converter, "
            "which knows more architectures"
        )


class ModelConfigError(ExportError, InputError):
    """config.json (or adapter_config.json) is missing, unreadable or lacks a key: core's
    `InputError` (file, field, hint) without a line, as JSON configs are read whole."""

    def __init__(
        self, path: Path, problem: str, *, key: str | None = None, hint: str | None = None
    ) -> None:
        InputError.__init__(self, path, None, problem, field=key, hint=hint)
        self.key = key


class TokenizerError(ExportError):
    """The tokenizer files are there but cannot be exported as they are."""


class MissingTokenizer(TokenizerError):
    """No tokenizer file in the model directory: GGUF embeds the tokenizer, so it is needed."""

    def __init__(self, model_dir: Path, looked_for: Iterable[str]) -> None:
        self.model_dir = model_dir
        self.looked_for = list(looked_for)
        super().__init__(
            f"{model_dir}: no tokenizer found (looked for {', '.join(self.looked_for)})\n"
            "  hint: save the tokenizer beside the weights: "
            "AutoTokenizer.from_pretrained(BASE).save_pretrained(MODEL_DIR)"
        )


class UnknownPreTokenizer(TokenizerError):
    """A BPE tokenizer whose pre-tokenizer llama.cpp would not reproduce."""


class MissingWeights(ExportError):
    """No safetensors weights where they should be (or only a pickle checkpoint)."""


class ConverterFailed(ExportError):
    """llama.cpp's own converter (LLAMA_CPP_DIR) exited with an error."""


class QuantizeError(ExportError):
    """llama.cpp refused or failed to quantize a GGUF file."""


class AdapterError(ExportError):
    """A PEFT adapter that cannot become a GGUF LoRA (bad config, DoRA, full weights...)."""


class AdapterBaseMismatch(ExportError):
    """The adapter was trained on a different base model than the one given."""

    def __init__(self, adapter_dir: Path, base_dir: Path, problem: str) -> None:
        self.adapter_dir, self.base_dir = adapter_dir, base_dir
        super().__init__(
            f"adapter {adapter_dir} does not fit base model {base_dir}: {problem}\n"
            "  hint: pass --model the base the adapter was trained on "
            "(adapter_config.json 'base_model_name_or_path')"
        )
