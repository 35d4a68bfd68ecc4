"""``hegelion curate``: the quality gate between generate and dataset (docs/curation.md)."""

from __future__ import annotations

from pathlib import Path

import click

from hegelion_core.cli.options import parse_pairs, read_options


@click.command("curate")
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(path_type=Path),
    help="The curated traces file (JSONL); OUTPUT.manifest.json is written beside it.",
)
@read_options
@click.option(
    "--no-dedupe", is_flag=True, help="Keep exact and near-duplicate prompts and syntheses."
)
@click.option(
    "--near-threshold",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.8,
    show_default=True,
    help="Estimated Jaccard similarity at which two prompts or "
    "syntheses are near duplicates (1: exact duplicates only).",
)
@click.option(
    "--shingle-size",
    type=click.IntRange(1, 16),
    default=3,
    show_default=True,
    help="Words per shingle of the near-duplicate search.",
)
@click.option(
    "--num-perm",
    type=click.IntRange(16, 512),
    default=64,
    show_default=True,
    help="MinHash permutations (more: slower, a closer similarity estimate).",
)
@click.option(
    "--decontaminate",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Held-out prompts (.txt one a line, or .jsonl with a prompt/instruction/"
    "question column): drop rows whose prompt shares an n-gram with one (repeatable).",
)
@click.option(
    "--ngram",
    type=click.IntRange(1, 64),
    default=13,
    show_default=True,
    help="Decontamination n-gram, in words (a shorter held-out prompt is one gram).",
)
@click.option(
    "--min-judge-score",
    type=click.FloatRange(0, 10),
    help="Drop rows the judge scored lower, and rows without a judge score.",
)
@click.option("--min-chars", type=click.IntRange(0), help="Drop rows whose output is shorter.")
@click.option("--max-chars", type=click.IntRange(1), help="Drop rows whose output is longer.")
@click.option(
    "--quality",
    multiple=True,
    metavar="KEY=VALUE",
    help="Degenerate-output thresholds (docs/curation.md); enabled=false turns the check off.",
)
@click.option(
    "--skip-invalid", is_flag=True, help="Skip lines that are not JSON objects instead of stopping."
)
@click.option("--quiet", "-q", is_flag=True)
def curate_command(
    inputs: tuple[Path, ...],
    output: Path,
    trace_field: str | None,
    prompt_field: str | None,
    hf: str | None,
    hf_config: str | None,
    input_split: str | None,
    no_dedupe: bool,
    near_threshold: float,
    shingle_size: int,
    num_perm: int,
    decontaminate: tuple[Path, ...],
    ngram: int,
    min_judge_score: float | None,
    min_chars: int | None,
    max_chars: int | None,
    quality: tuple[str, ...],
    skip_invalid: bool,
    quiet: bool,
) -> None:
    """Filter trace files (INPUTS) into OUTPUT: duplicates, held-out prompts, judge score,
    length, truncated and degenerate answers. Surviving rows are copied unchanged.

    INPUTS are JSONL or Parquet files or saved `datasets` directories (a distilabel
    Distiset too), holding Hegelion's records or rows whose trace is only text; a row
    that is not a JSONL line is written as its columns in one JSON line.

    \b
    Examples:
      hegelion curate traces.jsonl -o curated.jsonl
      hegelion curate a.jsonl b.jsonl -o curated.jsonl --decontaminate examples/eval_prompts.txt
      hegelion curate traces.jsonl -o curated.jsonl --min-judge-score 7 --max-chars 12000
    """
    from pydantic import ValidationError

    from hegelion_core.data.curate import CurateJob, curate
    from hegelion_core.data.curate.run import describe
    from hegelion_core.data.quality import QualityConfig
    from hegelion_core.data.sources import ReadOptions
    from hegelion_core.errors import describe_validation

    if not inputs and not hf:
        raise click.UsageError("give INPUTS, or --hf NAME")

    try:
        quality_config = QualityConfig(**parse_pairs(quality))
    except (click.BadParameter, ValidationError) as exc:
        problem = exc.message if isinstance(exc, click.BadParameter) else describe_validation(exc)
        raise click.BadParameter(problem, param_hint="--quality") from None
    if min_chars is not None and max_chars is not None and min_chars > max_chars:
        raise click.BadParameter(
            f"{min_chars} is above --max-chars {max_chars}", param_hint="--min-chars"
        )
    try:
        job = CurateJob(
            inputs=list(inputs),
            output=output,
            read=ReadOptions(
                trace_field=trace_field,
                prompt_field=prompt_field,
                split=input_split,
                hf=hf,
                hf_config=hf_config,
            ),
            dedupe=not no_dedupe,
            near_threshold=near_threshold,
            shingle=shingle_size,
            num_perm=num_perm,
            decontaminate=list(decontaminate),
            ngram=ngram,
            min_judge_score=min_judge_score,
            min_chars=min_chars,
            max_chars=max_chars,
            quality=quality_config,
            skip_invalid=skip_invalid,
        )
    except ValidationError as exc:
        raise click.BadParameter(describe_validation(exc)) from None
    summary = curate(job)
    if quiet:
        return
    first, last = summary.filters[0], summary.filters[-1]
    click.echo(f"kept {last.rows_out} of {first.rows_in} rows in {summary.output}")
    for line in describe(summary.filters):
        click.echo(line)
    click.echo(f"manifest: {summary.manifest}")
