"""A PEFT LoRA adapter as a llama.cpp LoRA GGUF (Ollama's ``ADAPTER``).

llama.cpp applies ``W x + scale * B (A x)`` with ``scale = adapter.lora.alpha / r``,
the same as PEFT's plain LoRA. What else PEFT can do is folded into B so that the
file stays a plain LoRA: rsLoRA (``alpha / sqrt(r)``) and per-module ``rank_pattern`` /
``alpha_pattern`` become a factor on B. The q/k row permutation that llama-family
weights get in conversion is applied to B (``P W = P B A``), so the adapter fits the
converted base.

The adapter must fit the base given: every target module must exist there with the
shape the adapter expects, and when ``base_model_name_or_path`` names a local model,
its architecture and size must match; otherwise `AdapterBaseMismatch` names both.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hegelion_core import atomic_output
from hegelion_gguf.export.convert import ModelSpec, read_model_spec
from hegelion_gguf.export.errors import AdapterBaseMismatch, AdapterError, ModelConfigError
from hegelion_gguf.export.tensors import SafetensorsReader, encode, gguf_qtype, permute_qk

__all__ = ["convert_lora_to_gguf", "read_adapter_config"]

log = logging.getLogger(__name__)

_PREFIX = "base_model.model."
_LORA_A, _LORA_B = ".lora_A.weight", ".lora_B.weight"


@dataclass(frozen=True)
class AdapterConfig:
    """The fields of PEFT's adapter_config.json that decide the GGUF."""

    path: Path
    r: int
    alpha: float
    use_rslora: bool
    rank_pattern: dict[str, int]
    alpha_pattern: dict[str, float]
    base_model: str | None

    def scaling(self, module: str, rank: int) -> float:
        """PEFT's scale for `module` (rank taken from the tensors themselves)."""
        alpha = float(_pattern_value(self.alpha_pattern, module, self.alpha))
        return alpha / math.sqrt(rank) if self.use_rslora else alpha / rank


def read_adapter_config(adapter_dir: Path) -> AdapterConfig:
    path = Path(adapter_dir) / "adapter_config.json"
    if not path.is_file():
        raise ModelConfigError(
            path, "not found", hint="pass the directory PeftModel.save_pretrained() wrote"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelConfigError(path, f"not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ModelConfigError(path, "expected a JSON object")
    peft_type = raw.get("peft_type", "LORA")
    if str(peft_type).upper() != "LORA":
        raise AdapterError(f"{path}: peft_type {peft_type!r}; only LoRA adapters become GGUF")
    if raw.get("use_dora"):
        raise AdapterError(
            f"{path}: use_dora is true; llama.cpp LoRA files cannot hold DoRA magnitudes\n"
            "  hint: export a merged model instead (merge, then convert)"
        )
    if raw.get("modules_to_save"):
        raise AdapterError(
            f"{path}: modules_to_save {raw['modules_to_save']!r} are fully trained weights, "
            "which a GGUF LoRA cannot carry\n  hint: export a merged model instead"
        )
    if raw.get("lora_bias"):
        raise AdapterError(f"{path}: lora_bias is true; llama.cpp LoRA has no bias term")
    if raw.get("fan_in_fan_out"):
        raise AdapterError(f"{path}: fan_in_fan_out adapters (Conv1D bases) are not supported")
    for key in ("r", "lora_alpha"):
        value = raw.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ModelConfigError(path, f"expected a non-negative number, got {value!r}", key=key)
    for key in ("rank_pattern", "alpha_pattern"):
        if raw.get(key) is not None and not isinstance(raw.get(key), dict):
            raise ModelConfigError(path, f"expected an object, got {raw.get(key)!r}", key=key)
    base = raw.get("base_model_name_or_path")
    return AdapterConfig(
        path=path,
        r=int(raw["r"]),
        alpha=float(raw["lora_alpha"]),
        use_rslora=bool(raw.get("use_rslora", False)),
        rank_pattern=dict(raw.get("rank_pattern") or {}),
        alpha_pattern=dict(raw.get("alpha_pattern") or {}),
        base_model=base if isinstance(base, str) and base else None,
    )


def _pattern_value(patterns: dict[str, Any], module: str, default: Any) -> Any:
    """PEFT's pattern lookup: a key matches the module name or a dotted suffix of it."""
    for key, value in patterns.items():
        if key == module or re.match(rf"(.*\.)?{key}$", module):
            return value
    return default


@dataclass(frozen=True)
class _Pair:
    module: str  # e.g. model.layers.0.self_attn.q_proj
    gguf_name: str  # e.g. blk.0.attn_q.weight
    a_key: str
    b_key: str


def convert_lora_to_gguf(
    adapter_dir: Path,
    base_dir: Path,
    out_path: Path,
    outtype: Literal["f16", "f32"] = "f16",
) -> Path:
    """Write the PEFT adapter in `adapter_dir` as a llama.cpp LoRA GGUF at `out_path`.

    `base_dir` is the HF base model the adapter was trained on (its config and tensor
    shapes are checked; its weights are not read). Load the result with
    ``llama_cpp.Llama(model_path=base.gguf, lora_path=out_path)`` or Ollama ``ADAPTER``.
    """
    import gguf

    adapter_dir, base_dir, out_path = Path(adapter_dir), Path(base_dir), Path(out_path)
    if outtype not in ("f16", "f32"):
        raise AdapterError(f"outtype {outtype!r} for a LoRA GGUF must be 'f16' or 'f32'")
    config = read_adapter_config(adapter_dir)
    spec = read_model_spec(base_dir)
    _check_named_base(config, adapter_dir, base_dir, spec)
    adapter = SafetensorsReader.for_model(adapter_dir, stem="adapter_model")
    base = SafetensorsReader.for_model(base_dir)
    pairs = _pair_tensors(adapter, base, spec, adapter_dir, base_dir)

    with atomic_output(out_path) as tmp:
        writer = gguf.GGUFWriter(tmp, spec.arch)
        try:
            writer.add_type(gguf.GGUFType.ADAPTER)
            writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
            writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, config.alpha)
            writer.add_name(adapter_dir.resolve().name)
            for pair in pairs:
                a, b = adapter.read(pair.a_key), adapter.read(pair.b_key)
                rank = a.shape[0]
                llama_scale = config.alpha / rank if config.alpha else 1.0
                factor = config.scaling(pair.module, rank) / llama_scale
                if factor != 1.0:
                    b = b * np.float32(factor)
                if spec.permute:
                    if pair.module.endswith("q_proj"):
                        b = permute_qk(b, spec.n_head, spec.n_head)
                    elif pair.module.endswith("k_proj"):
                        b = permute_qk(b, spec.n_head, spec.n_head_kv)
                for suffix, data in ((".lora_a", a), (".lora_b", b)):
                    qtype = gguf_qtype(data.shape, outtype)
                    writer.add_tensor(pair.gguf_name + suffix, encode(data, qtype))
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
        finally:
            writer.close()
            adapter.close()
            base.close()
    log.info("wrote LoRA GGUF %s (%d modules, alpha %s)", out_path, len(pairs), config.alpha)
    return out_path


def _pair_tensors(
    adapter: SafetensorsReader,
    base: SafetensorsReader,
    spec: ModelSpec,
    adapter_dir: Path,
    base_dir: Path,
) -> list[_Pair]:
    """Match lora_A/lora_B pairs to base weights, checking that they fit."""
    import gguf

    tmap = gguf.get_tensor_name_map(spec.gguf_arch(), spec.n_layer)
    modules: dict[str, dict[str, str]] = {}
    for key in adapter.names():
        name = key.removeprefix(_PREFIX)
        if name.endswith(_LORA_A):
            modules.setdefault(name[: -len(_LORA_A)], {})["a"] = key
        elif name.endswith(_LORA_B):
            modules.setdefault(name[: -len(_LORA_B)], {})["b"] = key
        elif "lora_embedding_" in name:
            raise AdapterError(
                f"{adapter_dir}: {key} is a LoRA on the token embeddings, which this exporter "
                "does not write\n  hint: export a merged model instead"
            )
        elif "lora_magnitude_vector" in name:
            raise AdapterError(f"{adapter_dir}: {key} is a DoRA magnitude; export merged instead")
        else:
            raise AdapterError(
                f"{adapter_dir}: {key} is not a LoRA A/B matrix (a fully trained module?); "
                "a GGUF LoRA cannot carry it\n  hint: export a merged model instead"
            )
    if not modules:
        raise AdapterError(f"{adapter_dir}: the adapter has no lora_A/lora_B tensors")

    pairs: list[_Pair] = []
    for module, keys in modules.items():
        if set(keys) != {"a", "b"}:
            raise AdapterError(
                f"{adapter_dir}: {module} has lora_{'A' if 'a' in keys else 'B'} "
                "but not its partner; the adapter file is incomplete"
            )
        weight = module + ".weight"
        if weight == "lm_head.weight" and spec.tied:
            raise AdapterError(
                f"{adapter_dir}: the adapter trains lm_head, which the base ties to the "
                "embeddings; llama.cpp cannot apply it\n  hint: export a merged model instead"
            )
        if weight not in base:
            raise AdapterBaseMismatch(
                adapter_dir, base_dir, f"the adapter targets {weight}, which the base lacks"
            )
        out_dim, in_dim = base.shape(weight)
        a_shape, b_shape = adapter.shape(keys["a"]), adapter.shape(keys["b"])
        if (
            len(a_shape) != 2
            or len(b_shape) != 2
            or a_shape[1] != in_dim
            or b_shape[0] != out_dim
            or a_shape[0] != b_shape[1]
        ):
            raise AdapterBaseMismatch(
                adapter_dir,
                base_dir,
                f"{module}: adapter A {list(a_shape)} / B {list(b_shape)} do not fit the base "
                f"weight {[out_dim, in_dim]}",
            )
        gguf_name = tmap.get_name(weight, try_suffixes=(".weight",))
        if gguf_name is None:
            raise AdapterError(f"{adapter_dir}: {module} has no GGUF {spec.arch} counterpart")
        pairs.append(_Pair(module, gguf_name, keys["a"], keys["b"]))
    return pairs


def _check_named_base(
    config: AdapterConfig, adapter_dir: Path, base_dir: Path, spec: ModelSpec
) -> None:
    """When the adapter names a local base model, it must be the same model as `base_dir`."""
    if config.base_model is None:
        return
    named = Path(config.base_model).expanduser()
    if not (named / "config.json").is_file():
        return  # a hub id or a moved directory: the tensor shapes decide
    if named.resolve() == base_dir.resolve():
        return
    try:
        other = read_model_spec(named)
    except Exception:  # noqa: BLE001 - the named base is only a hint
        return
    fields = ("hf_arch", "n_layer", "n_embd", "n_ff", "n_head", "n_head_kv", "vocab_size")
    diffs = [
        f"{f} {getattr(other, f)} vs {getattr(spec, f)}"
        for f in fields
        if getattr(other, f) != getattr(spec, f)
    ]
    if diffs:
        raise AdapterBaseMismatch(
            adapter_dir,
            base_dir,
            f"it was trained on {named} ({', '.join(diffs)})",
        )
