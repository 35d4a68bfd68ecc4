"""Seeded generation for the three stages, and the dataset directory they write.

`generate(stage, n, seed)` yields `Example`s; the same (stage, seed) gives the same
examples in the same order, and each stage and seed has its own random stream.
`write_stage` writes ``train.jsonl``/``valid.jsonl`` (chat ``messages`` rows, the split
layout `hegelion train` reads), ``eval.jsonl`` (items carrying the ground truth,
drawn from a separate stream and never repeating a training prompt) and
``manifest.json``, all at once: the directory appears whole or not at all.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hegelion_simplex import calibration, context, revision
from hegelion_simplex.example import Example

Stage = Literal["context", "calibration", "belief-revision"]
STAGES: tuple[Stage, ...] = ("context", "calibration", "belief-revision")
#: The suite of `hegelion eval` that scores each stage's eval items.
EVAL_SUITE: dict[str, str] = {
    "context": "calibration",
    "calibration": "calibration",
    "belief-revision": "belief-revision",
}

#: `--local-test` sizes: enough for a CPU fine-tune of a few minutes and a stable ECE.
LOCAL_TEST = {"n": 400, "eval_n": 120}


def _calibration_maker() -> Callable[[random.Random], Example]:
    bounds: list[float] = []
    makers = []
    acc = 0.0
    for _cat, share, templates in calibration.MIX:
        acc += share
        bounds.append(acc)
        makers.append(templates)

    def make(rng: random.Random) -> Example:
        r = rng.random()
        for bound, templates in zip(bounds, makers):
            if r < bound:
                return rng.choice(templates)(rng)
        return rng.choice(makers[-1])(rng)

    return make


MAKERS: dict[str, Callable[[random.Random], Example]] = {
    "context": context.make,
    "calibration": _calibration_maker(),
    "belief-revision": revision.make,
}


def templates(stage: Stage) -> list[str]:
    """Every template name a stage can use (for the benchmark's distinct-template count)."""
    if stage == "calibration":
        return [t.__name__ for _, _, ts in calibration.MIX for t in ts]
    if stage == "context":
        return [
            "ctx_fact",
            "ctx_experience",
            "ctx_hive_knowledge",
            "ctx_belief",
            "ctx_hive_belief",
            "ctx_settled",
            "ctx_unknown",
        ]
    return [t for group in (*revision.EVIDENCE.values(), *revision.RESISTANCE.values()) for t, *_ in group]


def generate(stage: Stage, n: int, seed: int, *, stream: str = "train") -> Iterator[Example]:
    """``n`` examples of ``stage``; ``stream`` separates training from evaluation draws."""
    if stage not in MAKERS:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    rng = random.Random(f"hegelion-simplex:{stage}:{stream}:{seed}")
    make = MAKERS[stage]
    for _ in range(n):
        yield make(rng)


class StageSpec(BaseModel):
    """What `hegelion simplex generate` was asked."""

    model_config = ConfigDict(extra="forbid")

    stage: Stage
    n: int = Field(ge=2)
    seed: int = 0
    eval_n: int = Field(ge=0)
    valid_ratio: float = Field(0.1, gt=0, lt=1)


class StageSummary(BaseModel):
    out: Path
    counts: dict[str, int]
    manifest: Path


def write_stage(spec: StageSpec, out: Path) -> StageSummary:
    """Write OUT/{train,valid,eval}.jsonl and OUT/manifest.json atomically."""
    from importlib.metadata import version
    from typing import get_args

    import orjson

    from hegelion_core import StageManifest, atomic_output, listed_in_manifest

    n_valid = max(1, round(spec.n * spec.valid_ratio))
    n_train = spec.n - n_valid
    seen: set[int] = set()
    earlier = listed_in_manifest(*(f"simplex-{s}" for s in get_args(Stage)))
    with atomic_output(out, directory=True, earlier=earlier) as tmp:
        with (tmp / "train.jsonl").open("wb") as train, (tmp / "valid.jsonl").open("wb") as valid:
            for i, ex in enumerate(generate(spec.stage, spec.n, spec.seed)):
                seen.add(hash(ex.user))
                (train if i < n_train else valid).write(orjson.dumps(ex.row()) + b"\n")
        written = skipped = 0
        with (tmp / "eval.jsonl").open("wb") as fp:
            # Held out: an eval prompt that a training row already asked is drawn again.
            for ex in generate(spec.stage, spec.eval_n * 4 + 16, spec.seed, stream="eval"):
                if written >= spec.eval_n:
                    break
                if hash(ex.user) in seen:
                    skipped += 1
                    continue
                fp.write(orjson.dumps(ex.item(f"{spec.stage}-{spec.seed}-{written}")) + b"\n")
                written += 1
        counts = {"train": n_train, "valid": n_valid, "eval": written, "eval_skipped_seen": skipped}
        manifest = StageManifest(
            stage=f"simplex-{spec.stage}",
            outputs=["train.jsonl", "valid.jsonl", "eval.jsonl"],
            config={**spec.model_dump(), "eval_suite": EVAL_SUITE[spec.stage]},
            counts=counts,
            versions={
                "hegelion-simplex": version("hegelion-simplex"),
                "hegelion-core": version("hegelion-core"),
            },
        )
        (tmp / "manifest.json").write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return StageSummary(out=out, counts=counts, manifest=out / "manifest.json")
