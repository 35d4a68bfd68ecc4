"""Core's model-reference scheme: ``stage:NAME``, what an earlier stage made.

Registered under ``hegelion.model_schemes`` like a plugin's (hegelion-gguf's
``packaged:``). A train stage hands on its adapter and base, an export stage its GGUF.
"""

from __future__ import annotations

from hegelion_core.contracts import ModelScheme
from hegelion_core.pipeline.stages import Artifact, Planning


class StageScheme(ModelScheme):
    """``stage:NAME``: the artifact of stage NAME, which must come earlier in the file."""

    name = "stage"

    def resolve(self, ctx: Planning, key: str, name: str) -> Artifact:
        if name not in ctx.config.stages:
            raise ctx.error(key, f"{'stage:' + name!r} names no stage")
        if name not in ctx.done:
            raise ctx.error(key, f"stage {name!r} must run before {ctx.stage!r}")
        return ctx.done[name]
