"""mlx-lm LoRA adapters <-> PEFT adapters.

mlx-lm stores ``<module>.lora_a`` with shape (in, r) and ``<module>.lora_b`` (r, out)
and computes ``y + scale * x @ A @ B``. PEFT stores ``lora_A.weight`` (r, in) and
``lora_B.weight`` (out, r) and computes ``y + (lora_alpha / r) * B(A(x))``. So
``lora_A = A.T``, ``lora_B = B.T`` and ``lora_alpha = scale * r``: the same function,
which PEFT, transformers and the GGUF exporter all read. `read_adapter` goes the other
way, so a run can continue an adapter from hegelion-mlx, hegelion-trl or PEFT itself.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hegelion_core import HegelionError

PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_CONFIG = "adapter_config.json"
MLX_WEIGHTS = "adapters.safetensors"
MLX_CONFIG = "adapter_config.json"
_LAYER_INDEX = re.compile(r"\.layers\.(\d+)\.")


def safetensors_names(model_dir: Path) -> set[str] | None:
    """Tensor names of a local checkpoint, read from the safetensors headers only
    (no weights loaded); None when ``model_dir`` holds no safetensors."""
    files = sorted(Path(model_dir).glob("*.safetensors")) if Path(model_dir).is_dir() else []
    if not files:
        return None
    names: set[str] = set()
    for f in files:
        with f.open("rb") as fp:
            (size,) = struct.unpack("<Q", fp.read(8))
            names.update(k for k in json.loads(fp.read(size)) if k != "__metadata__")
    return names


def _num_layers(model_dir: Path) -> int | None:
    cfg = Path(model_dir) / "config.json"
    if not cfg.is_file():
        return None
    data = json.loads(cfg.read_text(encoding="utf-8"))
    data = data.get("text_config", data) if "num_hidden_layers" not in data else data
    n = data.get("num_hidden_layers")
    return int(n) if n is not None else None


def _number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def mlx_to_peft(mlx_adapter: Path, dest: Path, *, base_model: str) -> dict[str, Any]:
    """Write ``dest/adapter_model.safetensors`` and ``dest/adapter_config.json`` from an
    mlx-lm adapter directory; return the PEFT config written.

    ``base_model`` goes into ``base_model_name_or_path``; when it is a local directory
    with safetensors, every adapted module is checked to exist there under the same
    name, so a renaming model family fails here rather than loading as a silent no-op.
    """
    import mlx.core as mx

    mlx_adapter, dest = Path(mlx_adapter), Path(dest)
    mlx_cfg = json.loads((mlx_adapter / MLX_CONFIG).read_text(encoding="utf-8"))
    if mlx_cfg.get("fine_tune_type", "lora") != "lora":
        raise HegelionError(
            f"{mlx_adapter}: only LoRA adapters convert to PEFT, "
            f"not {mlx_cfg.get('fine_tune_type')!r}"
        )
    params = mlx_cfg["lora_parameters"]
    rank, scale = int(params["rank"]), float(params["scale"])
    weights = mx.load(str(mlx_adapter / MLX_WEIGHTS))

    modules = sorted({k.rsplit(".", 1)[0] for k in weights})
    unknown = sorted(k for k in weights if k.rsplit(".", 1)[1] not in ("lora_a", "lora_b"))
    if unknown:
        raise HegelionError(f"{mlx_adapter}: tensors PEFT's LoRA has no place for: {unknown[:5]}")
    out: dict[str, Any] = {}
    for module in modules:
        a, b = weights[f"{module}.lora_a"], weights[f"{module}.lora_b"]
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != rank or b.shape[0] != rank:
            raise HegelionError(
                f"{mlx_adapter}: {module} is not a plain linear LoRA "
                f"(lora_a {a.shape}, lora_b {b.shape}, rank {rank})"
            )
        out[f"base_model.model.{module}.lora_A.weight"] = mx.contiguous(a.T)
        out[f"base_model.model.{module}.lora_B.weight"] = mx.contiguous(b.T)

    base_dir = Path(base_model)
    names = safetensors_names(base_dir)
    if names is not None:
        missing = [m for m in modules if f"{m}.weight" not in names]
        if missing:
            raise HegelionError(
                f"the base model at {base_model} has no weights named {missing[0]}.weight "
                f"(and {len(missing) - 1} more): this architecture renames modules between "
                f"mlx-lm and transformers, so the PEFT adapter would not apply. The mlx "
                f"adapter at {mlx_adapter} is complete and works with mlx-lm."
            )

    layers = sorted({int(m.group(1)) for mod in modules if (m := _LAYER_INDEX.search(mod + "."))})
    total = _num_layers(base_dir) if base_dir.is_dir() else None
    partial = total is not None and layers and layers != list(range(total))
    config: dict[str, Any] = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": rank,
        "lora_alpha": _number(scale * rank),
        "lora_dropout": float(params.get("dropout", 0.0)),
        "target_modules": sorted({m.rsplit(".", 1)[-1] for m in modules}),
        "layers_to_transform": layers if partial else None,
        "layers_pattern": "layers" if partial else None,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "modules_to_save": None,
        "use_rslora": False,
        "use_dora": False,
    }
    dest.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(dest / PEFT_WEIGHTS), out, metadata={"format": "pt"})
    (dest / PEFT_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return config


@dataclass(frozen=True)
class LoadedAdapter:
    """An earlier LoRA adapter in mlx-lm's terms: weights named as ``model``'s trainable
    parameters, and the ``lora_parameters`` and block count that recreate its layers."""

    weights: dict[str, Any]
    lora_parameters: dict[str, Any]
    num_layers: int


def read_adapter(path: Path, *, model_layers: int) -> LoadedAdapter:
    """An mlx-lm adapter directory (``adapters.safetensors``) or a PEFT one
    (``adapter_model.safetensors``), as mlx-lm LoRA weights for a model with
    ``model_layers`` blocks. Refuses what mlx-lm's LoRA layers cannot express: DoRA,
    per-module ranks or alphas, biases, extra saved modules, or adapted blocks that are
    not the last N (mlx-lm adapts the last ``num_layers`` blocks)."""
    import mlx.core as mx

    path = Path(path)
    if (path / MLX_WEIGHTS).is_file():
        cfg = json.loads((path / MLX_CONFIG).read_text(encoding="utf-8"))
        if cfg.get("fine_tune_type", "lora") != "lora":
            raise HegelionError(
                f"init_adapter: {path} is a {cfg.get('fine_tune_type')!r} adapter; "
                "only LoRA adapters can be continued"
            )
        weights = dict(mx.load(str(path / MLX_WEIGHTS)))
        params = dict(cfg["lora_parameters"])
    elif (path / PEFT_WEIGHTS).is_file() and (path / PEFT_CONFIG).is_file():
        cfg = json.loads((path / PEFT_CONFIG).read_text(encoding="utf-8"))
        unsupported = [
            k
            for k in ("use_dora", "rank_pattern", "alpha_pattern", "modules_to_save")
            if cfg.get(k)
        ]
        if (
            cfg.get("peft_type", "LORA") != "LORA"
            or cfg.get("bias", "none") != "none"
            or unsupported
        ):
            what = (
                ", ".join(unsupported)
                or f"peft_type {cfg.get('peft_type')}, bias {cfg.get('bias')}"
            )
            raise HegelionError(
                f"init_adapter: {path / PEFT_CONFIG} uses {what}, which mlx-lm's LoRA "
                "layers cannot hold; continue it with --trainer trl"
            )
        rank = int(cfg["r"])
        alpha = float(cfg.get("lora_alpha", rank))
        scale = alpha / rank**0.5 if cfg.get("use_rslora") else alpha / rank
        params = {"rank": rank, "scale": scale, "dropout": float(cfg.get("lora_dropout", 0.0))}
        weights = {}
        for name, tensor in mx.load(str(path / PEFT_WEIGHTS)).items():
            match = re.fullmatch(
                r"base_model\.model\.(.+)\.lora_([AB])(?:\.default)?\.weight", name
            )
            if match is None:
                raise HegelionError(
                    f"init_adapter: {path / PEFT_WEIGHTS} holds {name}, which is not a "
                    "LoRA A or B matrix; continue it with --trainer trl"
                )
            weights[f"{match.group(1)}.lora_{match.group(2).lower()}"] = mx.contiguous(tensor.T)
    else:
        raise HegelionError(
            f"init_adapter: {path} holds no LoRA adapter ({MLX_WEIGHTS} or "
            f"{PEFT_WEIGHTS} with {PEFT_CONFIG}); give the `adapter` or `mlx_adapter` "
            "directory that an earlier `hegelion train` wrote"
        )

    modules = sorted({k.rsplit(".", 1)[0] for k in weights})
    outside = [m for m in modules if not _LAYER_INDEX.search(m + ".")]
    if not modules or outside:
        raise HegelionError(
            f"init_adapter: {path} adapts {outside[:1] or 'nothing'} outside the "
            "transformer blocks; mlx-lm's LoRA covers block layers only"
        )
    layers = sorted({int(m.group(1)) for mod in modules if (m := _LAYER_INDEX.search(mod + "."))})
    if layers != list(range(model_layers - len(layers), model_layers)):
        raise HegelionError(
            f"init_adapter: {path} adapts blocks {layers} of a model with {model_layers}; mlx-lm "
            "adapts a run of last blocks, so this adapter (or this base model) does not fit; "
            "continue it with --trainer trl"
        )
    params["keys"] = sorted(
        {_LAYER_INDEX.split(m + ".", maxsplit=1)[-1].rstrip(".") for m in modules}
    )
    return LoadedAdapter(weights=weights, lora_parameters=params, num_layers=len(layers))
