"""``mlx``: a train/valid(/test) directory of ``messages`` rows for ``mlx_lm.lora``.

mlx-lm raises when a split holds fewer rows than its batch size, so the writer
checks that up front (``--batch-size``, default mlx-lm's 4) and says what to change.
"""

from __future__ import annotations

from typing import ClassVar

from hegelion_core.contracts import SplitDefaults
from hegelion_core.data.formatters.chat import ChatFormatter

MLX_DEFAULT_BATCH_SIZE = 4


class MLXFormatter(ChatFormatter):
    name = "mlx"
    default_split: ClassVar[SplitDefaults | None] = SplitDefaults(
        valid_ratio=0.1, test_ratio=0.0, min_rows=MLX_DEFAULT_BATCH_SIZE
    )

    def describe(self) -> str:
        return "mlx-lm data directory (train/valid/test.jsonl) of chat `messages` rows"
