"""``hegelion status OUTPUT``: where a generation run stands; safe while it runs."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("status")
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--rejects", type=click.Path(path_type=Path))
@click.option(
    "--window", type=float, default=10, show_default=True, help="Minutes the rate is measured over."
)
@click.option(
    "--prices",
    type=click.Path(path_type=Path, exists=True),
    help="TOML/JSON price table (USD per 1M tokens).",
)
@click.option("--json", "as_json", is_flag=True)
def status_command(
    output: Path, rejects: Path | None, window: float, prices: Path | None, as_json: bool
) -> None:
    """How far a generation run is: counts, rate, rejects by reason, ETA, tokens and cost.

    Safe to run while generators append to OUTPUT.
    """
    from hegelion_core.generation.status import load_prices, render, run_status

    status = run_status(output, rejects=rejects, window_min=window, prices=load_prices(prices))
    click.echo(status.model_dump_json(indent=2) if as_json else render(status))
