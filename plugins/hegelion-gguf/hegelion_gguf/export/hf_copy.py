"""A trainable Hugging Face copy of a GGUF model.

transformers can read a GGUF file (``from_pretrained(dir, gguf_file=...)``), dequantizing
its weights, but the model it returns still carries a ``quantization_config`` that makes
PEFT and ``save_pretrained`` treat it as quantized. Loading its state dict into a fresh
model built from the same config (without that key) gives an ordinary float32
checkpoint that trains, merges and converts back to GGUF like any other.
"""

from __future__ import annotations

from pathlib import Path

from hegelion_core import HegelionError, atomic_output


def gguf_to_hf(gguf_path: Path, out_dir: Path) -> Path:
    """Write ``out_dir`` (safetensors, config, tokenizer, chat template) from ``gguf_path``.

    The weights are dequantized to float32. ``out_dir`` appears whole or not at all, and
    replaces only a directory Hegelion wrote (never one holding other files).
    """
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if not gguf_path.is_file():
        raise HegelionError(f"{gguf_path}: no such GGUF file")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(where, gguf_file=name, dtype=torch.float32)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise HegelionError(
            f"{gguf_path}: transformers cannot load this GGUF file ({exc})\n"
            "  hint: transformers reads GGUF for llama, mistral, qwen2 and a few other "
            "architectures, dequantizing F32/F16/BF16/Q4_x/Q5_x/Q8_0/K-quants"
        ) from exc
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    with torch.device("meta"):
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict(), assign=True, strict=True)
    fresh.tie_weights()
    fresh.generation_config = loaded.generation_config
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        # Training needs a pad token; the eos is the usual choice and changes no ids.
        tokenizer.pad_token = tokenizer.eos_token
    with atomic_output(out_dir, directory=True, inputs=[gguf_path]) as tmp:
        fresh.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return out_dir
