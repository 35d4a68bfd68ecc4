"""Fold an mlx adapter into its base, as ``mlx_lm fuse --dequantize`` does.

The base is loaded afresh from disk with the saved adapter (so the merged model is
built from exactly the files a user has), every LoRA layer's ``fuse`` adds
``scale · Bᵀ Aᵀ`` to its weight, quantized layers are de-quantized, and mlx-lm's
``save`` writes the Hugging Face layout: ``config.json``, ``model.safetensors``
(``model-0000x-of-0000y.safetensors`` when sharded) and the tokenizer.
"""

from __future__ import annotations

from pathlib import Path

from hegelion_core import atomic_output


def fuse_adapter(
    base_model: str, mlx_adapter: Path, dest: Path, *, trust_remote_code: bool = False
) -> Path:
    """Write the merged, de-quantized model to ``dest`` (atomically); return ``dest``."""
    from mlx.utils import tree_unflatten
    from mlx_lm.utils import dequantize_model, load, save

    model, tokenizer, config = load(
        base_model,
        adapter_path=str(mlx_adapter),
        return_config=True,
        tokenizer_config={"trust_remote_code": trust_remote_code},
        trust_remote_code=trust_remote_code,
    )
    fused = [
        (name, module.fuse(dequantize=True))
        for name, module in model.named_modules()
        if hasattr(module, "fuse")
    ]
    if fused:
        model.update_modules(tree_unflatten(fused))
    model = dequantize_model(model)
    config.pop("quantization", None)
    config.pop("quantization_config", None)
    from hegelion_mlx.trainer import earlier_output

    with atomic_output(dest, directory=True, earlier=earlier_output, inputs=[mlx_adapter]) as tmp:
        save(tmp, base_model, model, tokenizer, config, donate_model=False)
    return dest
