"""``hegelion shortlist TRACES --output OUT --judge MODEL``: keep the trace records whose
prompt the judge (a toy model: a JSON file with ``max_chars``) finds short enough.

Registered through the ``hegelion_register_commands`` hook, like any plugin command.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from hegelion_core import atomic_output, hookimpl


@click.command("shortlist")
@click.argument("traces", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path))
@click.option(
    "--judge",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The toy judge model: a JSON file with max_chars.",
)
@click.option("--limit", type=click.IntRange(1), help="Keep at most this many records.")
def shortlist(traces: Path, output: Path, judge: Path, limit: int | None) -> None:
    """Copy the records of TRACES whose instruction is at most the judge's max_chars."""
    max_chars = json.loads(judge.read_text(encoding="utf-8"))["max_chars"]
    rows_in = kept = 0
    with atomic_output(output) as tmp, tmp.open("wb") as out:
        for line in traces.read_bytes().splitlines(keepends=True):
            if not line.strip():
                continue
            rows_in += 1
            if len(json.loads(line)["instruction"]) <= max_chars and (
                limit is None or kept < limit
            ):
                out.write(line)
                kept += 1
    manifest = {"judge": str(judge), "counts": {"rows_in": rows_in, "rows_out": kept}}
    with atomic_output(output.with_name(output.name + ".manifest.json")) as tmp:
        tmp.write_text(json.dumps(manifest), encoding="utf-8")
    click.echo(f"kept {kept} of {rows_in} records in {output}")


@hookimpl
def hegelion_register_commands(cli: click.Group) -> None:
    cli.add_command(shortlist)
