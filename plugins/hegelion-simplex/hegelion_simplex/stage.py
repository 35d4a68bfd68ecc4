"""The ``simplex`` stage kind of `hegelion run`: `hegelion simplex generate` in a stage.

Registered under ``hegelion.stage_kinds``; core knows nothing of it. Its stages hand on a
dataset (train.jsonl, valid.jsonl) that a train stage reads, and eval items that an eval
stage scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from hegelion_core import Invocation, Planning, StageKind, StagePlan, dataset_counts


class SimplexStage(StageKind):
    """``hegelion simplex generate --out WORKDIR``: seeded data, no input stage."""

    name = "simplex"
    provides: ClassVar[dict[str, str]] = {"dataset": "data", "eval_items": "eval_data"}

    def plan(self, ctx: Planning, options: dict[str, Any]) -> StagePlan:
        argv = ["simplex", "generate", "--out", str(ctx.workdir),
                *ctx.argv(ctx.command("simplex", "generate"), options, reserved={"out"})]
        return ctx.plan([Invocation(argv)],
                        {"data": str(ctx.workdir), "eval_data": str(ctx.workdir / "eval.jsonl")})

    def figures(self, plan: StagePlan) -> dict[str, Any]:
        return dataset_counts(Path(plan.artifact["data"]))
