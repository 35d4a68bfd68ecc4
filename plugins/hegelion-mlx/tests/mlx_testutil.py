"""Shared test data and helpers (a uniquely named module: pytest puts this directory
on sys.path, and other test directories have their own helpers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from hegelion_core.training.config import TrainConfig

# Small and fast: rank 8, no dropout (so MLX and PEFT compute the very same function),
# a learning rate high enough that a few steps move the adapter well away from zero.
BASE_CONFIG: dict[str, Any] = {
    "lora": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0},
    "training": {
        "max_steps": 8,
        "learning_rate": 1e-2,
        "lr_scheduler_type": "constant",
        "warmup_ratio": 0.0,
        "save_steps": 1000,
    },
}


def train_config(model: Path, **overrides: Any) -> TrainConfig:
    """`BASE_CONFIG` for ``model`` with nested ``overrides`` (``training={...}``)."""
    data: dict[str, Any] = {"model": str(model), **{k: dict(v) for k, v in BASE_CONFIG.items()}}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return TrainConfig.model_validate(data)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]
