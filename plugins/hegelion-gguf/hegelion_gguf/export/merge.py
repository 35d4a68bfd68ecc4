"""Fold a PEFT LoRA adapter into its base model and save plain safetensors.

Adapters come from ``hegelion train`` (trl, unsloth) or from MLX adapters converted
to PEFT; all use PEFT's layout (``adapter_config.json`` + ``adapter_model.safetensors``).
Before anything heavy loads, the adapter is checked against the base's tensor shapes
(read from the safetensors headers), because PEFT would otherwise fail deep inside
torch with a size mismatch, or, for a module the base lacks, silently do nothing.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from hegelion_core import HegelionError, atomic_output
from hegelion_gguf.export.errors import AdapterBaseMismatch, ModelConfigError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors",)
_PREFIX = "base_model.model."


def safetensors_shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape for every tensor in ``files``, read from headers only."""
    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        with path.open("rb") as fp:
            (size,) = struct.unpack("<Q", fp.read(8))
            header = json.loads(fp.read(size))
        for name, entry in header.items():
            if name != "__metadata__":
                shapes[name] = tuple(entry["shape"])
    return shapes


def model_weight_files(model_dir: Path) -> list[Path]:
    files = sorted(Path(model_dir).glob("*.safetensors"))
    return [f for f in files if not f.name.startswith("adapter_model")]


def read_adapter_config(adapter_dir: Path) -> dict[str, Any]:
    path = Path(adapter_dir) / ADAPTER_CONFIG
    if not path.is_file():
        raise ModelConfigError(
            path,
            "no PEFT adapter config here",
            hint="--adapter takes the directory `hegelion train` wrote (OUTPUT/adapter), "
            "holding adapter_config.json and adapter_model.safetensors",
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelConfigError(path, f"unreadable JSON ({exc})") from None
    if config.get("peft_type", "LORA") != "LORA":
        raise ModelConfigError(
            path, f"peft_type {config.get('peft_type')!r} is not LoRA", key="peft_type"
        )
    return config


def check_adapter_base(model_dir: Path, adapter_dir: Path) -> dict[str, Any]:
    """Raise `AdapterBaseMismatch` unless every adapter tensor fits the base; return the
    adapter config.

    LoRA ``A`` is (r, in_features) and ``B`` (out_features, r) for a base weight of
    (out_features, in_features); ``modules_to_save`` copies must equal the base's shape.
    """
    model_dir, adapter_dir = Path(model_dir), Path(adapter_dir)
    config = read_adapter_config(adapter_dir)
    weights = adapter_dir / ADAPTER_WEIGHTS[0]
    if not weights.is_file() and (adapter_dir / "adapter_model.bin").is_file():
        from hegelion_core import pickled_adapter_message

        raise HegelionError(pickled_adapter_message(adapter_dir / "adapter_model.bin"))
    if not weights.is_file():
        raise ModelConfigError(
            weights,
            "missing: the adapter directory has no weights",
            hint="copy adapter_model.safetensors beside adapter_config.json",
        )
    base_files = model_weight_files(model_dir)
    if not base_files:
        return config  # the converter reports the missing base weights with its own error
    base = safetensors_shapes(base_files)
    adapter = safetensors_shapes([weights])
    claimed = config.get("base_model_name_or_path") or "(not recorded)"
    names = f"adapter trained on {claimed!r}, --model is {str(model_dir)!r}"
    for key, shape in sorted(adapter.items()):
        module, kind = _split_key(key)
        target = f"{module}.weight"
        if target not in base:
            raise AdapterBaseMismatch(
                adapter_dir,
                model_dir,
                f"{names}; the adapter's tensor {key} targets {target}, which the base does "
                f"not have",
            )
        out_f, in_f = base[target][0], base[target][-1]
        if (
            kind == "lora_A"
            and shape[-1] != in_f
            or kind == "lora_B"
            and shape[0] != out_f
            or kind == "full"
            and shape != base[target]
        ):
            raise AdapterBaseMismatch(
                adapter_dir,
                model_dir,
                f"{names}; {key} has shape {list(shape)} but the base's {target} is "
                f"{list(base[target])}",
            )
    return config


def _split_key(key: str) -> tuple[str, str]:
    """``base_model.model.X.lora_A.weight`` -> (``X``, ``lora_A``); other tensors -> full."""
    name = key.removeprefix(_PREFIX)
    for kind in ("lora_A", "lora_B"):
        marker = f".{kind}."
        if marker in name:
            return name.split(marker)[0], kind
    if ".lora_embedding_" in name:  # (r, vocab) and (dim, r): existence is checked only
        return name.split(".lora_embedding_")[0], "embedding"
    # modules_to_save: base_model.model.X.modules_to_save.default.weight or X.weight
    name = name.replace(".modules_to_save.default", "")
    return name.removesuffix(".weight").removesuffix(".bias"), "full"


def merge_adapter(model_dir: Path, adapter_dir: Path, out_dir: Path) -> Path:
    """Write ``out_dir``: base + adapter merged, as safetensors, with the tokenizer and
    chat template (the adapter's own when it saved one, since training may add tokens
    or a template); ``out_dir`` appears whole or not at all, and replaces only a directory
    Hegelion wrote (never one holding other files, or the inputs).

    The merge runs in float32 and the result is saved in the base's own dtype.
    """
    model_dir, adapter_dir, out_dir = Path(model_dir), Path(adapter_dir), Path(out_dir)
    check_adapter_base(model_dir, adapter_dir)
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    saved_dtype = _saved_dtype(model_dir)
    merged = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    if saved_dtype is not None:
        merged = merged.to(saved_dtype)
        merged.config.dtype = saved_dtype
    tok_source = adapter_dir if _has_tokenizer(adapter_dir) else model_dir
    tokenizer = AutoTokenizer.from_pretrained(tok_source)
    with atomic_output(out_dir, directory=True, inputs=[model_dir, adapter_dir]) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return out_dir


def _has_tokenizer(path: Path) -> bool:
    return any(
        (path / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
    )


def _saved_dtype(model_dir: Path) -> Any:
    import torch

    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    name = config.get("dtype") or config.get("torch_dtype")
    value = getattr(torch, str(name), None) if name else None
    return value if isinstance(value, torch.dtype) else None
