"""Shared test data and helpers (a module, not conftest, so tests can import it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from hegelion_core.training.config import TrainConfig

# Short canonical traces: (question, thesis, antithesis, synthesis). Ten, so that
# "at least 90% parse" means at most one miss.
TRACES: tuple[tuple[str, str, str, str], ...] = (
    (
        "Is free will real?",
        "We act on reasons.",
        "Reasons have causes.",
        "Freedom is acting on reasons.",
    ),
    (
        "Do markets work?",
        "Prices carry information.",
        "Prices can lie.",
        "Markets need good rules.",
    ),
    (
        "Where does knowledge come from?",
        "From the senses.",
        "Logic needs no senses.",
        "Senses and reason together.",
    ),
    (
        "Trust intuition?",
        "Intuition is fast.",
        "Intuition fails on numbers.",
        "Intuition asks, evidence answers.",
    ),
    (
        "Do ideas drive history?",
        "Ideas move people.",
        "Conditions limit ideas.",
        "Ideas and conditions interact.",
    ),
    (
        "Can good arguments fail?",
        "Sound arguments convince.",
        "People weigh the speaker.",
        "Arguments need trust too.",
    ),
    (
        "Privacy or security?",
        "Security saves lives.",
        "Power grows unchecked.",
        "Security within limits.",
    ),
    (
        "Fund need or curiosity?",
        "Fund urgent needs.",
        "Curiosity brings advances.",
        "Fund a mix of both.",
    ),
    (
        "Is math invented?",
        "Humans write the symbols.",
        "Its truths do not change.",
        "Invented language, found truths.",
    ),
    (
        "Should cities ban cars?",
        "Cars pollute streets.",
        "Some people need cars.",
        "Fewer cars, better transit.",
    ),
)

MAX_LENGTH = 256


def train_config(model: Path, **overrides: Any) -> TrainConfig:
    """A small, fast, deterministic config; ``training``/``lora`` dicts update the defaults."""
    training = {
        "max_steps": 4,
        "learning_rate": 1e-2,
        "per_device_train_batch_size": 4,
        "save_steps": 100,
        "max_seq_length": MAX_LENGTH,
        "warmup_ratio": 0.0,
        "lr_scheduler_type": "constant",
        **overrides.pop("training", {}),
    }
    lora = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, **overrides.pop("lora", {})}
    return TrainConfig.model_validate(
        {"model": str(model), "training": training, "lora": lora, **overrides}
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]
