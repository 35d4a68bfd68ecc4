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
    """``hegelion simplex generate --out WORKDIR/data``: seeded data, no input stage.

    A directory of its own inside the stage's: `simplex generate` replaces its output
    directory whole, and the stage directory holds the pipeline's mark, which it must keep."""

    name = "simplex"
    provides: ClassVar[dict[str, str]] = {"dataset": "data", "eval_items": "eval_data"}

    def plan(self, ctx: Planning, options: dict[str, Any]) -> StagePlan:
        out = ctx.workdir / "data"
        argv = [
            "simplex",
            "generate",
            "--out",
            str(out),
            *ctx.argv(ctx.command("simplex", "generate"), options, reserved={"out"}),
        ]
        return ctx.plan([Invocation(argv)], {"data": str(out), "eval_data": str(out / "eval.jsonl")})

    def figures(self, plan: StagePlan) -> dict[str, Any]:
        return dataset_counts(Path(plan.artifact["data"]))
