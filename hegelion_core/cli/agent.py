"""``hegelion agent OBSERVATION``: deliberate on what an agent sees, then print the next action
(the earlier tool's ``hegelion-agent``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from hegelion_core.cli.dialectic import run_once
from hegelion_core.cli.options import (
    dialectic_options,
    make_dialectic_config,
    make_teacher,
    teacher_options,
)

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
@click.option(
    "--log-file", type=click.Path(path_type=Path), help="Append the step as a trace record (JSONL)."
)
@click.option(
    "--format", "fmt", type=click.Choice(["json", "text"]), default="text", show_default=True
)
@teacher_options
@dialectic_options
def agent_command(
    observation: str,
    goal: str | None,
    coding: bool,
    log_file: Path | None,
    fmt: str,
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
    **policy: Any,
) -> None:
    """Deliberate on OBSERVATION (thesis, antithesis, synthesis), then print the action."""
    from hegelion_core.data.traces import append_records
    from hegelion_core.records import TraceRecord

    if log_file:  # before any teacher call: the earlier tool's scripts log to collected_data/...
        log_file.parent.mkdir(parents=True, exist_ok=True)
    query = agent_query(observation, goal, coding)
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
    t = make_teacher(teacher, model, base_url, teacher_pairs)
    result = run_once(t, config, query)
    action = extract_action(result.trace.synthesis)
    record = TraceRecord.build(
        query,
        result.trace,
        source="agent",
        teacher=t.name,
        model=getattr(t.options, "model", None),
        usage=result.usage,
        timings=result.timings,
        truncated=result.truncated,
        observation=observation,
        goal=goal,
        action=action,
    )
    if log_file:
        append_records(log_file, [record])
    if fmt == "json":
        click.echo(
            json.dumps(
                {"action": action, "record": record.model_dump(mode="json")},
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        click.echo(f"Action: {action}")
