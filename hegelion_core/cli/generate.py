"""``hegelion generate``: the dialectic on prompts, appended to a trace file, resumable."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from hegelion_core.cli.options import (
    dialectic_options,
    make_dialectic_config,
    make_teacher,
    parse_pairs,
    teacher_options,
)


@click.command("generate")
@click.option("--dataset", help="Hugging Face dataset id, save_to_disk dir, or data file.")
@click.option("--split", default="train", show_default=True)
@click.option(
    "--column", help="Prompt column (default: prompt, instruction, question, or messages)."
)
@click.option("--config-name", help="The dataset's subset.")
@click.option("--seed", type=int, help="Shuffle the dataset with this seed.")
@click.option(
    "--prompt-file", type=click.Path(path_type=Path), help="Prompts: .txt one per line, or .jsonl."
)
@click.option("--source", help="Another prompt source driver, with -s options.")
@click.option("-s", "--source-option", "source_pairs", multiple=True, metavar="KEY=VALUE")
@click.option(
    "--limit", type=int, help="Records wanted in OUTPUT in total (resuming counts what is there)."
)
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path))
@click.option("--rejects", type=click.Path(path_type=Path), help="Default: OUTPUT.rejects.jsonl")
@teacher_options
@dialectic_options
@click.option("--concurrency", type=int, default=8, show_default=True, help="Dialectics in flight.")
@click.option("--rpm", type=float, help="Requests per minute.")
@click.option("--tpm", type=float, help="Tokens per minute.")
@click.option(
    "--max-retries",
    type=int,
    default=3,
    show_default=True,
    help="Per call, and attempts per prompt across runs (counting only failures that are the prompt's own).",
)
@click.option(
    "--timeout", type=float, default=300, show_default=True, help="Seconds per teacher call."
)
@click.option(
    "--max-retry-wait",
    type=click.FloatRange(min=0),
    default=300,
    show_default=True,
    help="Longest Retry-After honoured, in seconds; a longer one stops the run (exit 5).",
)
@click.option(
    "--stop-after-failures",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Stop (exit 5) after this many prompts in a row fail for reasons not their own "
    "(connection, 5xx, timeouts); 0: never. A rejected key stops at once.",
)
@click.option("--system", help="System prompt stored with each record.")
@click.option(
    "--batch",
    is_flag=True,
    help="Through the provider's batch API (half price; openai, anthropic, kimi): submit "
    "the first round, record the jobs in OUTPUT.batch/ and exit; then `hegelion batch "
    "collect OUTPUT`. See docs/batch.md.",
)
@click.option(
    "--batch-max-requests",
    type=click.IntRange(min=1),
    help="At most this many requests per batch job (below the provider's limit).",
)
@click.option(
    "--batch-max-bytes",
    type=click.IntRange(min=1),
    help="At most this many bytes per batch job (below the provider's limit).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress line.")
def generate_command(
    dataset: str | None,
    split: str,
    column: str | None,
    config_name: str | None,
    seed: int | None,
    prompt_file: Path | None,
    source: str | None,
    source_pairs: tuple[str, ...],
    limit: int | None,
    output: Path,
    rejects: Path | None,
    teacher: str,
    model: str | None,
    base_url: str | None,
    teacher_pairs: tuple[str, ...],
    max_tokens: int | None,
    temperature: float | None,
    mode: str,
    council: str | None,
    critics: tuple[str, ...],
    judge: bool,
    min_judge_score: float | None,
    iterations: int,
    concurrency: int,
    rpm: float | None,
    tpm: float | None,
    max_retries: int,
    timeout: float,
    max_retry_wait: float,
    stop_after_failures: int,
    system: str | None,
    batch: bool,
    batch_max_requests: int | None,
    batch_max_bytes: int | None,
    quiet: bool,
    **policy: Any,
) -> None:
    """Run the dialectic on prompts and append trace records to OUTPUT.

    Rerunning the same command resumes. Several processes may share one OUTPUT.
    Exit status: 0 done (or nothing left to do), 3 some prompts rejected, 4 every
    prompt rejected, 5 stopped early (bad key, failing service, long Retry-After),
    130 Ctrl-C, 143 SIGTERM.

    \b
      hegelion generate --prompt-file examples/prompts.txt -o traces.jsonl --limit 20
      hegelion generate --dataset HuggingFaceH4/ultrafeedback_binarized --split train_prefs \\
          --seed 42 --limit 500 --teacher kimi -o traces.jsonl --concurrency 16 --rpm 200
    """
    from hegelion_core.generation.generate import ExitCode, GenerateJob, Terminated, run_generate
    from hegelion_core.plugins import make_driver
    from hegelion_core.records import DEFAULT_SYSTEM

    chosen = [
        x
        for x in (dataset and "--dataset", prompt_file and "--prompt-file", source and "--source")
        if x
    ]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --dataset, --prompt-file or --source")
    if prompt_file:
        src = make_driver("prompt_sources", "file", {"path": prompt_file, "column": column})
    elif dataset:
        src = make_driver(
            "prompt_sources",
            "hf",
            {
                "dataset": dataset,
                "split": split,
                "column": column,
                "config": config_name,
                "seed": seed,
            },
        )
    else:
        assert source is not None  # exactly one of the three was given
        src = make_driver("prompt_sources", source, parse_pairs(source_pairs))
    job = GenerateJob(
        output=output,
        rejects=rejects,
        limit=limit,
        system=system or DEFAULT_SYSTEM,
        dialectic=make_dialectic_config(
            mode,
            council,
            critics,
            judge,
            min_judge_score,
            iterations,
            max_tokens,
            temperature,
            **policy,
        ),
        concurrency=concurrency,
        rpm=rpm,
        tpm=tpm,
        max_retries=max_retries,
        timeout=timeout,
        max_retry_wait=max_retry_wait,
        stop_after_failures=stop_after_failures,
    )
    if batch:
        from hegelion_core.cli.batch import start_batch

        teacher_driver = make_teacher(teacher, model, base_url, teacher_pairs)
        start_batch(
            job,
            teacher_driver,
            teacher,
            src,
            max_requests=batch_max_requests,
            max_bytes=batch_max_bytes,
        )
        return
    resume = "what finished is written; rerun the same command to resume"
    try:
        stats = run_generate(
            job, make_teacher(teacher, model, base_url, teacher_pairs), src, progress=not quiet
        )
    except KeyboardInterrupt:
        click.echo(f"interrupted: {resume}", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except Terminated:
        click.echo(f"terminated: {resume}", err=True)
        sys.exit(int(ExitCode.TERMINATED))
    not_counted = (
        f" ({stats.not_counted} not the prompts' fault, not counted)" if stats.not_counted else ""
    )
    scrubbed = f", {stats.scrubbed} keys scrubbed from answers" if stats.scrubbed else ""
    click.echo(
        f"{output}: {stats.already_done + stats.written} records ({stats.written} new), "
        f"{stats.rejected} rejected{not_counted}, {stats.retried} retries, "
        f"{stats.usage.total_tokens} tokens in {stats.elapsed_s:.1f}s{scrubbed}"
    )
    for reason, n in sorted(stats.reasons.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {n:>6}  {reason}")
    if stats.stopped:
        click.echo(f"stopped early: {stats.stopped}", err=True)
    if stats.exit_code != ExitCode.OK:
        sys.exit(int(stats.exit_code))
