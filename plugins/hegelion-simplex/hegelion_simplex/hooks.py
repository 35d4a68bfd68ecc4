"""hegelion-simplex's hook: the ``hegelion simplex generate`` command."""

from __future__ import annotations

from pathlib import Path

import click

from hegelion_core import hookimpl


@click.group("simplex")
def simplex() -> None:
    """Simplex Cognitive stages: synthetic context, calibration and belief-revision data."""


@simplex.command("generate")
@click.option("--stage", required=True, type=click.Choice(["context", "calibration", "belief-revision"]))
@click.option("-n", "n", type=click.IntRange(min=2), help="Training examples (train + valid).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory for train/valid/eval.jsonl and manifest.json (replaced whole).",
)
@click.option(
    "--eval-n",
    type=click.IntRange(min=0),
    help="Held-out eval items (default: n/10, at least 100, at most 10000).",
)
@click.option(
    "--valid-ratio", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.1, show_default=True
)
@click.option(
    "--local-test",
    is_flag=True,
    help="Small sizes for a CPU run in minutes (n 400, eval 120) unless -n/--eval-n say otherwise.",
)
def generate_command(
    stage: str, n: int | None, seed: int, out: Path, eval_n: int | None, valid_ratio: float, local_test: bool
) -> None:
    """Write a stage's training rows and eval items: deterministic for a seed.

    \b
      hegelion simplex generate --stage calibration -n 20000 --seed 1 --out data/calibration
      hegelion simplex generate --stage context --local-test --out data/context
    """
    import time

    from hegelion_core import command_run
    from hegelion_simplex.generate import LOCAL_TEST, StageSpec, write_stage

    if n is None:
        if not local_test:
            raise click.UsageError("pass -n N (training examples), or --local-test for small sizes")
        n = LOCAL_TEST["n"]
    if eval_n is None:
        eval_n = LOCAL_TEST["eval_n"] if local_test else min(10_000, max(100, n // 10))
    start = time.perf_counter()
    spec = StageSpec(stage=stage, n=n, seed=seed, eval_n=eval_n, valid_ratio=valid_ratio)
    with command_run("simplex generate", {**spec.model_dump(mode="json"), "out": str(out)}) as run:
        summary = write_stage(spec, out)
        run.summary = summary
    c = summary.counts
    click.echo(
        f"{stage}: train {c['train']}, valid {c['valid']}, eval {c['eval']} "
        f"in {time.perf_counter() - start:.1f}s -> {out}"
    )
    click.echo(f"manifest: {summary.manifest}")


@hookimpl
def hegelion_register_commands(cli: click.Group) -> None:
    cli.add_command(simplex)
