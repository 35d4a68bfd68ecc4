"""GRPO's prompts as TRL reads them. The rest of GRPO (the ``grpo:`` mapping, the
rewards and their counters) is core's `hegelion_core.training.grpo`, shared with the
unsloth trainer, so one config trains one algorithm whichever trainer runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hegelion_core import data_files, detect_format, grpo_rows
from hegelion_trl.data import Prepared


def prepare_grpo(data: Path, tokenizer: Any) -> Prepared:
    """The train (and valid) prompts of ``data`` as TRL's ``prompt`` rows: the system and
    user turns the SFT rows hold, rendered by TRL through the tokenizer's own chat
    template with the generation prompt, so GRPO continues the conversation SFT taught;
    a row's other columns are kept for the rewards."""
    import datasets

    files = data_files(data)
    template = bool(getattr(tokenizer, "chat_template", None))

    def load(split: str) -> datasets.Dataset:
        return datasets.Dataset.from_list(grpo_rows(data, split=split, chat_template=template))

    return Prepared(
        train=load("train"),
        eval=load("valid") if "valid" in files else None,
        shape="prompt",
        source_format=detect_format(files["train"]),
    )
