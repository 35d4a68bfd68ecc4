"""The generators as prompt sources, so a teacher can answer the same prompts.

``hegelion generate --source simplex-calibration -s n=500 -s seed=1`` sends the
generated prompts (with the stage's system prompt) to any teacher. Each prompt's
``meta`` keeps the template, the ground truth and the generator's own answer, so a
teacher's answers can be checked the way `hegelion eval` checks a model's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

from pydantic import Field

from hegelion_core import DriverOptions, Prompt, PromptSource
from hegelion_simplex.generate import Stage, generate


class _SimplexSource(PromptSource):
    stage: ClassVar[Stage]

    class Options(DriverOptions):
        n: int = Field(1000, ge=1)
        seed: int = 0
        #: "eval" draws from the held-out stream that `hegelion simplex generate` uses for eval.jsonl.
        stream: Literal["train", "eval"] = "train"

    def iter_prompts(self) -> Iterator[Prompt]:
        opts = self.options
        for i, ex in enumerate(generate(self.stage, opts.n, opts.seed, stream=opts.stream)):
            yield Prompt(
                text=ex.user,
                system=ex.system,
                source=f"{self.name}:{opts.seed}:{i}",
                meta={
                    "stage": self.stage,
                    "template": ex.template,
                    "truth": ex.truth,
                    "reference": ex.assistant,
                },
            )


class ContextSource(_SimplexSource):
    name = "simplex-context"
    stage = "context"


class CalibrationSource(_SimplexSource):
    name = "simplex-calibration"
    stage = "calibration"


class BeliefRevisionSource(_SimplexSource):
    name = "simplex-belief-revision"
    stage = "belief-revision"
