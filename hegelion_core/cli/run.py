"""``hegelion run``: the whole pipeline from one YAML file, resumable stage by stage."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import cast

import click


@click.command("run")
@click.argument("pipeline", type=click.Path(path_type=Path))
@click.option(
    "--stage",
    help="Run this stage only, in place: generate tops up, train resumes (its inputs must have run).",
)
@click.option(
    "--all",
    "force_all",
    is_flag=True,
    help="Start every stage afresh (old output moved aside, not deleted).",
)
@click.option(
    "--dry-run", is_flag=True, help="Check the file and print each stage's commands; run nothing."
)
@click.option(
    "-c",
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a key of the file (stages.generate.limit=4).",
)
def run_command(
    pipeline: Path, stage: str | None, force_all: bool, dry_run: bool, overrides: tuple[str, ...]
) -> None:
    """Run PIPELINE.yaml: its stages in order (generate, curate, format, train, export,
    eval, or any kind a plugin adds), then write WORKDIR/report.html.

    A rerun skips the stages whose inputs and options are unchanged and resumes an
    interrupted one; Ctrl-C or kill -9 at any point leaves valid files behind. Nothing
    is deleted: a stage started afresh moves its old directory to STAGE.prev-TIMESTAMP.

    \b
      hegelion run examples/quickstart.yaml
      hegelion run examples/quickstart.yaml --stage eval
      hegelion run examples/quickstart.yaml -c stages.generate.limit=4
    """
    import yaml

    from hegelion_core import hooks
    from hegelion_core.pipeline import load_pipeline, plan_pipeline, run_pipeline, summary
    from hegelion_core.pipeline.runner import redacted

    pairs = {}
    for pair in overrides:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: expected key=value", param_hint="-c/--set")
        pairs[key] = yaml.safe_load(value)  # 4 -> int, true -> bool, text stays text
    config = load_pipeline(pipeline, pairs)
    # `hegelion` itself, whose commands the stages run: the library never imports the CLI
    commands = cast(click.Group, click.get_current_context().find_root().command)
    if dry_run:
        for plan in plan_pipeline(config, commands):
            click.echo(f"{plan.name} ({plan.kind}):")
            for inv in plan.invocations:
                click.echo("  hegelion " + " ".join(redacted(inv.argv)))
        return
    started = time.monotonic()
    asked = {"stage": stage, "all": force_all, **config.model_dump(mode="json", exclude={"lines"})}
    try:
        # Each stage is a command of its own, so it fires its own pair in its process too.
        with hooks.command_run("run", asked) as run:
            records = run_pipeline(
                config,
                commands,
                only=stage,
                force_all=force_all,
                echo=lambda line: click.echo(line, err=True),
            )
            run.summary = {"stages": [r.model_dump(mode="json") for r in records]}
    except KeyboardInterrupt:
        click.echo(f"interrupted; rerun `hegelion run {pipeline}` to resume", err=True)
        sys.exit(130)
    click.echo("")
    for line in summary(config, records):
        click.echo(line)
    from hegelion_core.pipeline import workdir_of
    from hegelion_core.pipeline.report import write_report

    click.echo(f"report: {write_report(workdir_of(config), order=config.stages)}")
    click.echo(f"total {time.monotonic() - started:.0f}s")
