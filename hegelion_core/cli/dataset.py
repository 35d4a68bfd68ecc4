"""``hegelion dataset``: trace files into a training dataset; and the earlier
``hegelion-dataset`` command line turned into it."""

from __future__ import annotations

from pathlib import Path

import click

from hegelion_core.cli.options import parse_pairs, read_options


@click.command("dataset")
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "-f",
    "fmt",
    required=True,
    help="Formatter: sft, chat, dpo, scu, mlx, simplex, or a plugin's.",
)
@click.option(
    "--rejected",
    type=click.Choice(["thesis", "antithesis", "both"]),
    help="dpo: the rejected side ('both' makes two rows).",
)
@click.option(
    "--conversational",
    is_flag=True,
    default=None,
    help="dpo: lists of messages instead of strings.",
)
@click.option(
    "--synthesis-only",
    is_flag=True,
    default=None,
    help="sft/chat/scu/mlx: answer with the synthesis alone.",
)
@click.option("--system", help="Replace each record's system prompt.")
@read_options
@click.option(
    "--quality",
    multiple=True,
    metavar="KEY=VALUE",
    help="Degenerate-output thresholds for rows read from text (docs/curation.md); "
    "enabled=false turns the check off.",
)
@click.option(
    "-o",
    "--option",
    "extra",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any formatter option (repeatable).",
)
@click.option(
    "--to",
    type=click.Choice(["jsonl", "parquet", "hf"]),
    help="Output layout (default: from OUTPUT's suffix; hf = datasets DatasetDict on disk).",
)
@click.option("--valid-ratio", type=float, help="Write a train/valid split directory.")
@click.option("--test-ratio", type=float, help="Also hold out a test split.")
@click.option("--seed", type=int, help="Seed of the split (default 0).")
@click.option(
    "--batch-size", type=int, help="Smallest allowed split (mlx-lm refuses smaller; mlx default 4)."
)
@click.option(
    "--skip-invalid", is_flag=True, help="Skip lines that are not JSON objects instead of stopping."
)
@click.option("--no-dedupe", is_flag=True, help="Keep records whose prompt_id was already seen.")
@click.option("--push-to-hub", metavar="REPO", help="Also upload to the Hugging Face Hub.")
@click.option("--private", is_flag=True, help="With --push-to-hub: create a private dataset.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Write a split directory's files into a directory that holds other files (left alone).",
)
@click.option("--quiet", "-q", is_flag=True)
def dataset_command(
    inputs: tuple[Path, ...],
    output: Path,
    fmt: str,
    rejected: str | None,
    conversational: bool | None,
    synthesis_only: bool | None,
    system: str | None,
    trace_field: str | None,
    prompt_field: str | None,
    hf: str | None,
    hf_config: str | None,
    input_split: str | None,
    quality: tuple[str, ...],
    extra: tuple[str, ...],
    to: str | None,
    valid_ratio: float | None,
    test_ratio: float | None,
    seed: int | None,
    batch_size: int | None,
    skip_invalid: bool,
    no_dedupe: bool,
    push_to_hub: str | None,
    private: bool,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Format trace files (INPUTS) into a training dataset at OUTPUT.

    INPUTS are JSONL or Parquet files or saved `datasets` directories (a distilabel
    Distiset too), holding Hegelion's records or rows whose trace is only text.

    \b
    Examples:
      hegelion dataset traces.jsonl sft.jsonl --format sft
      hegelion dataset traces.jsonl dpo.jsonl --format dpo --rejected both
      hegelion dataset traces.jsonl data/ --format mlx --valid-ratio 0.1
      hegelion dataset curator.parquet dpo.jsonl --format dpo --trace-field response
      hegelion dataset --hf user/traces --split train dpo.jsonl --format dpo
    """
    from pydantic import ValidationError

    from hegelion_core.data.dataset import DatasetJob, SplitSpec, build_dataset
    from hegelion_core.data.quality import QualityConfig
    from hegelion_core.data.sources import ReadOptions
    from hegelion_core.errors import describe_validation
    from hegelion_core.plugins import load_driver

    if not inputs and not hf:
        raise click.UsageError("give INPUTS and OUTPUT, or --hf NAME and OUTPUT")
    try:
        quality_config = QualityConfig(**parse_pairs(quality))
    except (click.BadParameter, ValidationError) as exc:
        problem = exc.message if isinstance(exc, click.BadParameter) else describe_validation(exc)
        raise click.BadParameter(problem, param_hint="--quality") from None
    read = ReadOptions(
        trace_field=trace_field,
        prompt_field=prompt_field,
        split=input_split,
        hf=hf,
        hf_config=hf_config,
    )

    flags = {
        "rejected": rejected,
        "conversational": conversational,
        "synthesis_only": synthesis_only,
        "system": system,
    }
    options = {k: v for k, v in flags.items() if v is not None} | parse_pairs(extra)

    given = {
        "valid_ratio": valid_ratio,
        "test_ratio": test_ratio,
        "min_rows": batch_size,
        "seed": seed,
    }
    given = {k: v for k, v in given.items() if v is not None}
    split = None
    if given:  # a split directory; start from the formatter's defaults (mlx's batch size)
        default = load_driver("formatters", fmt).default_split
        base = default.model_dump() if default else {"valid_ratio": 0.0}
        try:
            split = SplitSpec(**(base | given))
        except ValidationError as exc:
            raise click.BadParameter(describe_validation(exc)) from None

    job = DatasetJob(
        inputs=list(inputs),
        output=output,
        format=fmt,
        read=read,
        quality=quality_config,
        options=options,
        to=to,
        split=split,
        skip_invalid=skip_invalid,
        dedupe=not no_dedupe,
        push_to_hub=push_to_hub,
        private=private,
        overwrite=overwrite,
    )
    summary = build_dataset(job)
    if quiet:
        return
    rows = ", ".join(f"{k} {v}" for k, v in summary.rows.items())
    click.echo(f"wrote {sum(summary.rows.values())} rows ({rows}) to {summary.output} [{fmt}]")
    skipped = sum(summary.skipped.values())
    click.echo(f"read {summary.lines} lines: {summary.records} records used, {skipped} skipped")
    for reason, count in sorted(summary.skipped.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {count:>6}  {reason}   e.g. {summary.examples[reason]}")
    click.echo(f"manifest: {summary.manifest}")


#: The earlier ``hegelion-dataset`` format names that are not Hegelion formatter names.
EARLIER_FORMATS: dict[str, list[str]] = {"instruction": ["sft", "--synthesis-only"]}


def earlier_dataset_args(argv: list[str]) -> list[str]:
    """``hegelion dataset`` arguments for an earlier ``hegelion-dataset`` command line:
    no ``--format`` is ``--format dpo`` (its default ``--rejected`` is the thesis), and
    ``--format instruction`` is ``--format sft --synthesis-only``."""
    takes_value = {
        o
        for p in dataset_command.params
        if isinstance(p, click.Option) and not p.is_flag
        for o in p.opts
    }
    out: list[str] = []
    fmt_at: int | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            break
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in ("--format", "-f") or (arg.startswith("-f") and not arg.startswith("--")):
            if not eq and name in ("--format", "-f"):
                if i + 1 >= len(argv):  # `--format` with no value: click says so
                    out.append(arg)
                    fmt_at = -1
                    break
                value, i = argv[i + 1], i + 1
            elif not eq:
                value = arg[2:]  # -fdpo
            fmt_at = len(out)
            out += ["--format", value]
        elif name in takes_value and not eq:
            out += argv[i : i + 2]
            i += 1
        else:
            out.append(arg)
        i += 1
    out += argv[i + (fmt_at == -1) :]
    if fmt_at is None:
        end = out.index("--") if "--" in out else len(out)
        out[end:end] = ["--format", "dpo"]
    elif fmt_at >= 0 and out[fmt_at + 1] in EARLIER_FORMATS:
        out[fmt_at + 1 : fmt_at + 2] = EARLIER_FORMATS[out[fmt_at + 1]]
    return ["dataset", *out]
