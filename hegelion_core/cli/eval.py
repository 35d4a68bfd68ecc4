"""``hegelion eval``: score a model (HF directory or GGUF file) on one suite."""

from __future__ import annotations

from pathlib import Path

import click

from hegelion_core.cli.options import parse_pairs


@click.command("eval")
@click.option(
    "--model",
    required=True,
    help="A .gguf file (llama-cpp teacher) or an HF model directory (transformers teacher).",
)
@click.option(
    "--adapter",
    type=click.Path(path_type=Path),
    help="A LoRA adapter: a PEFT directory, or a GGUF LoRA for a .gguf model.",
)
@click.option(
    "--suite", required=True, type=click.Choice(["dialectic", "calibration", "belief-revision"])
)
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path),
    help="dialectic: a prompt file (txt or JSONL); calibration, belief-revision: an eval.jsonl from `hegelion simplex generate`.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory for results.json, items.jsonl and the plot.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate the first N items only.")
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    help="Per answer (default: dialectic 512, calibration 96, belief-revision 160).",
)
@click.option(
    "--temperature",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="0 = greedy.",
)
@click.option(
    "--system",
    help="dialectic: the system turn (default: the one Hegelion's training rows carry; 'format' asks for the trace format).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Answers in flight at once.",
)
@click.option(
    "-t",
    "--teacher-option",
    "teacher_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option of the teacher running the model (device=cpu, n_threads=2...).",
)
@click.option("--judge-teacher", help="dialectic: a teacher that scores each parseable trace 0-10.")
@click.option(
    "-j",
    "--judge-option",
    "judge_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option of the judge teacher (model=gpt-4o...).",
)
@click.option("--quiet", "-q", is_flag=True)
def eval_command(
    model: str,
    adapter: Path | None,
    suite: str,
    data: Path,
    out: Path,
    limit: int | None,
    max_tokens: int | None,
    temperature: float,
    system: str | None,
    concurrency: int,
    teacher_pairs: tuple[str, ...],
    judge_teacher: str | None,
    judge_pairs: tuple[str, ...],
    quiet: bool,
) -> None:
    """Evaluate a model on a suite; write OUT/results.json, OUT/items.jsonl (and a plot).

    \b
      hegelion eval --model SmolLM2.gguf --suite dialectic --data prompts.txt --out eval/base
      hegelion eval --model ./base --adapter runs/cal/adapter --suite calibration \\
          --data simplex/calibration/eval.jsonl --out eval/cal
    """
    from hegelion_core import hooks
    from hegelion_core.evaluation.runner import EvalJob, run_eval
    from hegelion_core.generation.dialectic import SINGLE_SYSTEM
    from hegelion_core.records import DEFAULT_SYSTEM

    if judge_teacher and suite != "dialectic":
        raise click.UsageError("--judge-teacher applies to --suite dialectic only")
    if system == "format":
        system = SINGLE_SYSTEM
    job = EvalJob(
        suite=suite,
        model=model,
        adapter=adapter,
        data=data,
        out=out,
        limit=limit,
        max_tokens=max_tokens,
        temperature=temperature,
        system=system or DEFAULT_SYSTEM,
        concurrency=concurrency,
        teacher_options=parse_pairs(teacher_pairs),
        judge_teacher=judge_teacher,
        judge_options=parse_pairs(judge_pairs),
    )

    def progress(done: int, total: int) -> None:
        if not quiet and (done == total or done % max(1, total // 10) == 0):
            click.echo(f"  {done}/{total} answered", err=True)

    with hooks.command_run("eval", job.model_dump(mode="json")) as run:
        result = run_eval(job, progress=progress)
        run.summary = result
    if quiet:
        return
    click.echo(
        f"{result.suite}: {result.counts.get('items', 0)} items, model {result.model} "
        f"({result.teacher}{', adapter ' + result.adapter if result.adapter else ''})"
    )
    for key, value in result.metrics.items():
        click.echo(f"  {key:<28} {'n/a' if value is None else f'{value:.4f}'}")
    for note in result.notes:
        click.echo(f"  note: {note}")
    click.echo(f"results: {out / 'results.json'}")
    if "plot" in result.files:
        click.echo(f"plot:    {out / result.files['plot']}")
