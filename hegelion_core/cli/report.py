"""``hegelion report``: a pipeline run on one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the page (default: RUN_DIR/report.html).",
)
def report_command(run_dir: Path, out: Path | None) -> None:
    """Write RUN_DIR/report.html: each stage's time and figures, the loss curve, the eval
    table, the curate counts and three held-out answers before and after.

    RUN_DIR is a `hegelion run` work directory, or the pipeline file itself (its stages
    then keep the file's order). `hegelion run` writes the report as its last step.

    \b
      hegelion report runs/quickstart
      hegelion report examples/quickstart.yaml --out /tmp/quickstart.html
    """
    from hegelion_core.pipeline.report import write_report

    order = None
    if run_dir.is_file() and run_dir.suffix in (".yaml", ".yml"):
        from hegelion_core.pipeline import load_pipeline, workdir_of

        config = load_pipeline(run_dir, {})
        run_dir, order = workdir_of(config), list(config.stages)
    click.echo(f"report: {write_report(run_dir, out=out, order=order)}")
