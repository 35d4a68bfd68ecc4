"""The ``shortlist`` stage kind and the ``toy:`` model scheme.

A stage kind says which command a stage runs (its argv built from the stage's options,
checked against the command's flags), what it hands on to later stages, and which
figures it reports. This one reads trace records from the nearest earlier stage that
makes them (generate, curate, or another shortlist) and makes trace records, so a format
stage after it reads its output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from hegelion_core import Artifact, Invocation, ModelScheme, Planning, StageKind, StagePlan

MODELS = Path(__file__).resolve().parent / "models"


class ShortlistStage(StageKind):
    name = "shortlist"
    provides: ClassVar[dict[str, str]] = {"traces": "traces"}

    def plan(self, ctx: Planning, options: dict[str, Any]) -> StagePlan:
        if "judge" not in options:
            raise ctx.error(
                None, "a shortlist stage needs `judge: MODEL`", hint='judge: "toy:short"'
            )
        judge = ctx.model("judge", str(options.pop("judge")))["model"]
        source = ctx.input("traces")
        out = ctx.workdir / "shortlist.jsonl"
        argv = [
            "shortlist",
            source,
            "--output",
            str(out),
            "--judge",
            judge,
            *ctx.argv(ctx.command("shortlist"), options, reserved={"output", "judge"}),
        ]
        return ctx.plan([Invocation(argv)], {"traces": str(out)}, inputs=[Path(source)])

    def figures(self, plan: StagePlan) -> dict[str, Any]:
        out = Path(plan.artifact["traces"])
        try:
            manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text())
        except (OSError, ValueError):
            return {}
        return dict(manifest.get("counts", {}))


class ToyScheme(ModelScheme):
    """``toy:NAME``: a judge model this package ships (``models/NAME.json``)."""

    name = "toy"

    def resolve(self, ctx: Planning, key: str, name: str) -> Artifact:
        path = MODELS / f"{name}.json"
        if not path.is_file():
            known = ", ".join(sorted(f"toy:{p.stem}" for p in MODELS.glob("*.json")))
            raise ctx.error(key, f"no toy model {name!r}", hint=f"known: {known}")
        return {"model": str(path)}
