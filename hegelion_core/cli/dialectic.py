"""``hegelion dialectic QUERY``: one dialectic, printed; and running one, which ``agent`` shares."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from hegelion_core.cli.options import (
    dialectic_options,
    make_dialectic_config,
    make_teacher,
    teacher_options,
)


def run_once(teacher: Any, config: Any, question: str) -> Any:
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
        raise HegelionError(
            f"the dialectic failed in the {exc.phase} phase: {exc.reason}"
        ) from None


@click.command("dialectic")
@click.argument("query")
@teacher_options
@dialectic_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "summary", "rich"]),
    default="summary",
    show_default=True,
)
def dialectic_command(
    query: str,
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
    fmt: str,
    **policy: Any,
) -> None:
    """Print one dialectic for QUERY."""
    config = make_dialectic_config(
        mode,
        council,
        critics,
        judge,
        min_judge_score,
        iterations,
        max_tokens,
        temperature,
        **policy,
    )
    result = run_once(make_teacher(teacher, model, base_url, teacher_pairs), config, query)
    trace = result.trace
    if fmt == "json":
        click.echo(
            json.dumps(
                {"query": query, **result.model_dump(mode="json")}, indent=2, ensure_ascii=False
            )
        )
        return
    styled = fmt == "rich"
    for name, text in (
        ("THESIS", trace.thesis),
        ("ANTITHESIS", trace.antithesis),
        ("SYNTHESIS", trace.synthesis),
    ):
        click.echo(click.style(name, bold=True, fg="cyan") if styled else f"== {name} ==")
        click.echo(text + "\n")
    if trace.judge:
        click.echo(f"judge: {trace.judge.score:g}/10 - {trace.judge.reasoning}")
