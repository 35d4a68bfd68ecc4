"""The teacher-facing commands: ``generate``, ``status``, ``dialectic`` and ``agent``."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hegelion_core.cli.options import parse_pairs
from hegelion_core.defaults import DEFAULT_TEACHER  # why this one: see defaults.py


def _stack(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def apply(fn: Any) -> Any:
        for d in reversed(decorators):
            fn = d(fn)
        return fn
    return apply


def teacher_names() -> set[str]:
    """Installed and first-party teacher names, read from entry points (nothing imported)."""
    from hegelion_core.plugins import KNOWN_DRIVERS, driver_names

    return {*driver_names("teachers"), *KNOWN_DRIVERS["teachers"]}


def _model_not_a_teacher(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The earlier tool chose its teacher with ``--model kimi-cli``; here that would run the
    default teacher with a model of that name, and every prompt would fail."""
    if value is not None and value in teacher_names():
        raise click.BadParameter(
            f"{value!r} is a teacher, not a model: use --teacher {value} (the earlier tool's "
            f"--model {value}); --model names the teacher's own model, if it needs one")
    return value


teacher_options = _stack(
    click.option("--teacher", default=DEFAULT_TEACHER, show_default=True, help="Teacher driver (see `hegelion plugins`)."),
    click.option("--model", "-m", callback=_model_not_a_teacher, help="The teacher's model."),
    click.option("--base-url", help="OpenAI-compatible server URL (openai/kimi teachers)."),
    click.option("-t", "--teacher-option", "teacher_pairs", multiple=True, metavar="KEY=VALUE", help="Any teacher option."),
    click.option("--max-tokens", type=int, help="Per call."),
    click.option("--temperature", type=float),
)

dialectic_options = _stack(
    click.option("--mode", type=click.Choice(["single", "phased"]), default="phased", show_default=True),
    click.option("--council", is_flag=False, flag_value="council", default=None, metavar="[PRESET|NAMES]",
                 help="Critics write the antithesis: a preset (council, science, engineering, policy) or persona names, comma-separated."),
    click.option("--critic", "critics", multiple=True, metavar="NAME=INSTRUCTION", help="A custom council critic (repeatable)."),
    click.option("--judge", is_flag=True, help="Score each dialectic 0-10 with a judge call."),
    click.option("--min-judge-score", type=float, help="Retry, then reject, dialectics scored below this (implies --judge)."),
    click.option("--iterations", type=int, default=1, show_default=True, help="Feed each synthesis back as the next thesis."),
    click.option("--on-truncation", type=click.Choice(["retry", "reject", "keep"]), default="retry", show_default=True,
                 help="An answer cut by the token limit: retry once with twice the budget then reject, reject, "
                      "or keep it marked truncated: true (dataset skips those)."),
    click.option("--max-tokens-cap", type=click.IntRange(min=1), default=8192, show_default=True,
                 help="The largest budget a truncation retry asks for."),
    click.option("--quality-check/--no-quality-check", default=True, show_default=True,
                 help="Reject degenerate output: loops, a section that copies another, an empty final answer."),
    click.option("--quality", "quality_pairs", multiple=True, metavar="KEY=VALUE",
                 help="A degenerate-output threshold (max_repeated_share, max_copied_share, max_loop_words...; "
                      "see hegelion_core.data.quality.QualityConfig)."),
)


def make_teacher(teacher: str, model: str | None, base_url: str | None, pairs: tuple[str, ...]) -> Any:
    from hegelion_core.plugins import make_driver

    options = {k: v for k, v in {"model": model, "base_url": base_url}.items() if v is not None}
    return make_driver("teachers", teacher, options | parse_pairs(pairs))


def make_dialectic_config(mode: str, council: str | None, critics: tuple[str, ...], judge: bool,
                          min_judge_score: float | None, iterations: int, max_tokens: int | None,
                          temperature: float | None, *, on_truncation: str = "retry",
                          max_tokens_cap: int | None = 8192, quality_check: bool = True,
                          quality_pairs: tuple[str, ...] = ()) -> Any:
    """The dialectic's config from the option stacks; the keyword arguments are
    `dialectic_options`' answer-policy flags, which commands pass on as ``**policy``."""
    from pydantic import ValidationError

    from hegelion_core.data.quality import QualityConfig
    from hegelion_core.errors import describe_validation
    from hegelion_core.generation.dialectic import DialecticConfig, resolve_council

    members = [*(council.split(",") if council else []), *critics]
    try:
        resolve_council(members)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--council/--critic") from None
    try:
        quality = QualityConfig(**{"enabled": quality_check, **parse_pairs(quality_pairs)})
    except ValidationError as exc:
        raise click.BadParameter(describe_validation(exc), param_hint="--quality") from None
    return DialecticConfig(
        mode=mode, council=members, judge=judge or min_judge_score is not None,
        min_judge_score=min_judge_score, iterations=iterations, max_tokens=max_tokens,
        temperature=temperature, on_truncation=on_truncation, max_tokens_cap=max_tokens_cap,
        quality=quality,
    )


# ----- generate -------------------------------------------------------------------------


@click.command("generate")
@click.option("--dataset", help="Hugging Face dataset id, save_to_disk dir, or data file.")
@click.option("--split", default="train", show_default=True)
@click.option("--column", help="Prompt column (default: prompt, instruction, question, or messages).")
@click.option("--config-name", help="The dataset's subset.")
@click.option("--seed", type=int, help="Shuffle the dataset with this seed.")
@click.option("--prompt-file", type=click.Path(path_type=Path), help="Prompts: .txt one per line, or .jsonl.")
@click.option("--source", help="Another prompt source driver, with -s options.")
@click.option("-s", "--source-option", "source_pairs", multiple=True, metavar="KEY=VALUE")
@click.option("--limit", type=int, help="Records wanted in OUTPUT in total (resuming counts what is there).")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path))
@click.option("--rejects", type=click.Path(path_type=Path), help="Default: OUTPUT.rejects.jsonl")
@teacher_options
@dialectic_options
@click.option("--concurrency", type=int, default=8, show_default=True, help="Dialectics in flight.")
@click.option("--rpm", type=float, help="Requests per minute.")
@click.option("--tpm", type=float, help="Tokens per minute.")
@click.option("--max-retries", type=int, default=3, show_default=True,
              help="Per call, and attempts per prompt across runs (counting only failures that are the prompt's own).")
@click.option("--timeout", type=float, default=300, show_default=True, help="Seconds per teacher call.")
@click.option("--max-retry-wait", type=click.FloatRange(min=0), default=300, show_default=True,
              help="Longest Retry-After honoured, in seconds; a longer one stops the run (exit 5).")
@click.option("--stop-after-failures", type=click.IntRange(min=0), default=10, show_default=True,
              help="Stop (exit 5) after this many prompts in a row fail for reasons not their own "
                   "(connection, 5xx, timeouts); 0: never. A rejected key stops at once.")
@click.option("--system", help="System prompt stored with each record.")
@click.option("--quiet", "-q", is_flag=True, help="No progress line.")
def generate_command(dataset: str | None, split: str, column: str | None, config_name: str | None,
                     seed: int | None, prompt_file: Path | None, source: str | None,
                     source_pairs: tuple[str, ...], limit: int | None, output: Path, rejects: Path | None,
                     teacher: str, model: str | None, base_url: str | None, teacher_pairs: tuple[str, ...],
                     max_tokens: int | None, temperature: float | None, mode: str, council: str | None,
                     critics: tuple[str, ...], judge: bool, min_judge_score: float | None, iterations: int,
                     concurrency: int, rpm: float | None, tpm: float | None, max_retries: int,
                     timeout: float, max_retry_wait: float, stop_after_failures: int,
                     system: str | None, quiet: bool, **policy: Any) -> None:
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

    chosen = [x for x in (dataset and "--dataset", prompt_file and "--prompt-file", source and "--source") if x]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --dataset, --prompt-file or --source")
    if prompt_file:
        src = make_driver("prompt_sources", "file", {"path": prompt_file, "column": column})
    elif dataset:
        src = make_driver("prompt_sources", "hf", {"dataset": dataset, "split": split, "column": column,
                                                   "config": config_name, "seed": seed})
    else:
        assert source is not None  # exactly one of the three was given
        src = make_driver("prompt_sources", source, parse_pairs(source_pairs))
    job = GenerateJob(
        output=output, rejects=rejects, limit=limit, system=system or DEFAULT_SYSTEM,
        dialectic=make_dialectic_config(mode, council, critics, judge, min_judge_score, iterations,
                                        max_tokens, temperature, **policy),
        concurrency=concurrency, rpm=rpm, tpm=tpm, max_retries=max_retries, timeout=timeout,
        max_retry_wait=max_retry_wait, stop_after_failures=stop_after_failures,
    )
    resume = "what finished is written; rerun the same command to resume"
    try:
        stats = run_generate(job, make_teacher(teacher, model, base_url, teacher_pairs), src,
                             progress=not quiet)
    except KeyboardInterrupt:
        click.echo(f"interrupted: {resume}", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except Terminated:
        click.echo(f"terminated: {resume}", err=True)
        sys.exit(int(ExitCode.TERMINATED))
    not_counted = f" ({stats.not_counted} not the prompts' fault, not counted)" if stats.not_counted else ""
    scrubbed = f", {stats.scrubbed} keys scrubbed from answers" if stats.scrubbed else ""
    click.echo(f"{output}: {stats.already_done + stats.written} records ({stats.written} new), "
               f"{stats.rejected} rejected{not_counted}, {stats.retried} retries, "
               f"{stats.usage.total_tokens} tokens in {stats.elapsed_s:.1f}s{scrubbed}")
    for reason, n in sorted(stats.reasons.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {n:>6}  {reason}")
    if stats.stopped:
        click.echo(f"stopped early: {stats.stopped}", err=True)
    if stats.exit_code != ExitCode.OK:
        sys.exit(int(stats.exit_code))


# ----- status ----------------------------------------------------------------------------


@click.command("status")
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--rejects", type=click.Path(path_type=Path))
@click.option("--window", type=float, default=10, show_default=True, help="Minutes the rate is measured over.")
@click.option("--prices", type=click.Path(path_type=Path, exists=True), help="TOML/JSON price table (USD per 1M tokens).")
@click.option("--json", "as_json", is_flag=True)
def status_command(output: Path, rejects: Path | None, window: float, prices: Path | None, as_json: bool) -> None:
    """How far a generation run is: counts, rate, rejects by reason, ETA, tokens and cost.

    Safe to run while generators append to OUTPUT.
    """
    from hegelion_core.generation.status import load_prices, render, run_status

    status = run_status(output, rejects=rejects, window_min=window, prices=load_prices(prices))
    click.echo(status.model_dump_json(indent=2) if as_json else render(status))


# ----- dialectic and agent -------------------------------------------------------------


def _run_once(teacher: Any, config: Any, question: str) -> Any:
    from hegelion_core.errors import HegelionError
    from hegelion_core.generation.dialectic import DialecticEngine, PhaseFailed

    async def go() -> Any:
        try:
            return await DialecticEngine(teacher, config).run(question)
        finally:
            await teacher.aclose()

    try:
        return asyncio.run(go())
    except PhaseFailed as exc:
        raise HegelionError(f"the dialectic failed in the {exc.phase} phase: {exc.reason}") from None


@click.command("dialectic")
@click.argument("query")
@teacher_options
@dialectic_options
@click.option("--format", "fmt", type=click.Choice(["json", "summary", "rich"]), default="summary", show_default=True)
def dialectic_command(query: str, teacher: str, model: str | None, base_url: str | None,
                      teacher_pairs: tuple[str, ...], max_tokens: int | None, temperature: float | None,
                      mode: str, council: str | None, critics: tuple[str, ...], judge: bool,
                      min_judge_score: float | None, iterations: int, fmt: str, **policy: Any) -> None:
    """Print one dialectic for QUERY."""
    config = make_dialectic_config(mode, council, critics, judge, min_judge_score, iterations, max_tokens,
                                   temperature, **policy)
    result = _run_once(make_teacher(teacher, model, base_url, teacher_pairs), config, query)
    trace = result.trace
    if fmt == "json":
        click.echo(json.dumps({"query": query, **result.model_dump(mode="json")}, indent=2, ensure_ascii=False))
        return
    styled = fmt == "rich"
    for name, text in (("THESIS", trace.thesis), ("ANTITHESIS", trace.antithesis), ("SYNTHESIS", trace.synthesis)):
        click.echo(click.style(name, bold=True, fg="cyan") if styled else f"== {name} ==")
        click.echo(text + "\n")
    if trace.judge:
        click.echo(f"judge: {trace.judge.score:g}/10 - {trace.judge.reasoning}")


CODING_GUIDANCE = (
    "Focus on code changes, tests, and reproducible commands. Prefer minimal diffs, name exact "
    "files, and include validation steps. Reject actions that rely on unverified APIs or assumptions."
)


def agent_query(observation: str, goal: str | None, coding: bool) -> str:
    """The earlier agent's framing: goal, observation, guidance, then the ask."""
    parts = [f"Goal: {goal}"] if goal else []
    parts.append(f"Observation: {observation}")
    if coding:
        parts.append(f"Context: {CODING_GUIDANCE}")
    parts.append(
        "Run a full thesis -> antithesis -> synthesis pass on the next step. The antithesis must "
        "attack hallucinations, unverifiable claims and risky assumptions. The synthesis should "
        "propose a single concrete, testable action that survives critique. Start the synthesis "
        "with 'ACTION: <the action>'."
    )
    return "\n\n".join(parts)


def extract_action(synthesis: str) -> str:
    for line in synthesis.splitlines():
        head, sep, rest = line.strip().strip("*").partition(":")
        if sep and head.strip().lower() in ("action", "next action", "next_action", "do"):
            return rest.strip().strip("*").strip()
    return synthesis.strip().splitlines()[0] if synthesis.strip() else ""


@click.command("agent")
@click.argument("observation")
@click.option("--goal", help="The high-level goal.")
@click.option("--coding", is_flag=True, help="Guidance for coding agents.")
@click.option("--log-file", type=click.Path(path_type=Path), help="Append the step as a trace record (JSONL).")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="text", show_default=True)
@teacher_options
@dialectic_options
def agent_command(observation: str, goal: str | None, coding: bool, log_file: Path | None, fmt: str,
                  teacher: str, model: str | None, base_url: str | None, teacher_pairs: tuple[str, ...],
                  max_tokens: int | None, temperature: float | None, mode: str, council: str | None,
                  critics: tuple[str, ...], judge: bool, min_judge_score: float | None, iterations: int,
                  **policy: Any) -> None:
    """Deliberate on OBSERVATION (thesis, antithesis, synthesis), then print the action."""
    from hegelion_core.data.traces import append_records
    from hegelion_core.records import TraceRecord

    if log_file:  # before any teacher call: the earlier tool's scripts log to collected_data/...
        log_file.parent.mkdir(parents=True, exist_ok=True)
    query = agent_query(observation, goal, coding)
    config = make_dialectic_config(mode, council, critics, judge, min_judge_score, iterations, max_tokens,
                                   temperature, **policy)
    t = make_teacher(teacher, model, base_url, teacher_pairs)
    result = _run_once(t, config, query)
    action = extract_action(result.trace.synthesis)
    record = TraceRecord.build(query, result.trace, source="agent", teacher=t.name,
                               model=getattr(t.options, "model", None), usage=result.usage,
                               timings=result.timings, truncated=result.truncated, observation=observation,
                               goal=goal, action=action)
    if log_file:
        append_records(log_file, [record])
    if fmt == "json":
        click.echo(json.dumps({"action": action, "record": record.model_dump(mode="json")}, indent=2, ensure_ascii=False))
    else:
        click.echo(f"Action: {action}")
