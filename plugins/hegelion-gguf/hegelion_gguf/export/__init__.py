"""GGUF export: HF safetensors -> GGUF, K-quant quantization, LoRA adapters as GGUF.

The conversion engine. `convert_hf_to_gguf` writes a GGUF model natively with gguf-py
(or through llama.cpp's converter when ``LLAMA_CPP_DIR`` is set), `quantize_gguf`
quantizes it with llama.cpp, and `convert_lora_to_gguf` turns a PEFT LoRA adapter into
a llama.cpp LoRA GGUF for Ollama's ``ADAPTER``. Heavy libraries (gguf, transformers,
sentencepiece, llama_cpp) are imported when a function runs, not here.
"""

from hegelion_gguf.export.convert import (
    LLAMA_CPP_DIR_ENV,
    OUTTYPES,
    SUPPORTED_ARCHITECTURES,
    ModelSpec,
    convert_hf_to_gguf,
    read_model_spec,
)
from hegelion_gguf.export.errors import (
    AdapterBaseMismatch,
    AdapterError,
    ConverterFailed,
    ExportError,
    MissingTokenizer,
    MissingWeights,
    ModelConfigError,
    QuantizeError,
    TokenizerError,
    UnknownPreTokenizer,
    UnsupportedArchitecture,
)
from hegelion_gguf.export.lora import convert_lora_to_gguf
from hegelion_gguf.export.quantize import QTYPES, quantize_gguf

__all__ = [
    "LLAMA_CPP_DIR_ENV",
    "OUTTYPES",
    "QTYPES",
    "SUPPORTED_ARCHITECTURES",
    "AdapterBaseMismatch",
    "AdapterError",
    "ConverterFailed",
    "ExportError",
    "MissingTokenizer",
    "MissingWeights",
    "ModelConfigError",
    "ModelSpec",
    "QuantizeError",
    "TokenizerError",
    "UnknownPreTokenizer",
    "UnsupportedArchitecture",
    "convert_hf_to_gguf",
    "convert_lora_to_gguf",
    "quantize_gguf",
    "read_model_spec",
]
