"""The unsloth trainer against core's trainer contract (registration, options, formats)."""

from __future__ import annotations

import pytest
from hegelion_unsloth.trainer import UnslothTrainer

from hegelion_core.testing import TrainerContract


class TestUnslothTrainer(TrainerContract):
    @pytest.fixture
    def driver(self) -> UnslothTrainer:
        return UnslothTrainer(
            {"dtype": "bfloat16", "gradient_checkpointing": "unsloth", "use_rslora": True}
        )
