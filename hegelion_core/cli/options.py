"""What commands share: the root group's error handling, ``-o KEY=VALUE`` pairs, and the
teacher and dialectic option stacks (with the teacher and config they make) that
``generate``, ``dialectic`` and ``agent`` take."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from hegelion_core.defaults import DEFAULT_TEACHER  # why this one: see defaults.py
from hegelion_core.errors import HegelionError


class HegelionGroup(click.Group):
    """Print Hegelion's own errors as one clear message, without a traceback.

    The last resort for every command: an `OSError` that names a file (an unwritable
    directory, a full disk, a path through a file) is one line naming it, too. Any other
    exception keeps its traceback: it is a bug to fix, not a message to polish.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HegelionError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            if exc.filename is None:
                raise
            from hegelion_core.data.jsonl import os_error_message

            raise click.ClickException(os_error_message(exc)) from None


def parse_pairs(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``-o key=value`` pairs; values are JSON when they parse, else strings."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: expected key=value", param_hint="-o/--option")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = value
    return out


def _stack(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def apply(fn: Any) -> Any:
        for d in reversed(decorators):
            fn = d(fn)
        return fn

    return apply


#: Where `hegelion dataset` and `hegelion curate` find traces in other tools' rows.
read_options = _stack(
    click.option(
        "--trace-field",
        metavar="COLUMN",
        help="Rows whose trace is only text: the column that holds it "
        "(default: output, response, generation, completion, answer, then messages).",
    ),
    click.option(
        "--prompt-field",
        metavar="COLUMN",
        help="Rows whose trace is only text: the prompt column (default: instruction, prompt, "
        "question, problem, query, input, then the user turn before the answer).",
    ),
    click.option(
        "--hf",
        metavar="NAME",
        help="Also read a Hugging Face dataset (a Hub id, a local dataset repository or a "
        "directory of data files), streaming.",
    ),
    click.option("--hf-config", metavar="NAME", help="With --hf: the dataset's subset."),
    click.option(
        "--split",
        "input_split",
        metavar="SPLIT",
        help="The split to read of --hf (default train) or of a saved DatasetDict (default all).",
    ),
)


def teacher_names() -> set[str]:
    """Installed and first-party teacher names, read from entry points (nothing imported)."""
    from hegelion_core.plugins import KNOWN_DRIVERS, driver_names

    return {*driver_names("teachers"), *KNOWN_DRIVERS["teachers"]}


def _model_not_a_teacher(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    """The earlier tool chose its teacher with ``--model kimi-cli``; here that would run the
    default teacher with a model of that name, and every prompt would fail."""
    if value is not None and value in teacher_names():
        raise click.BadParameter(
            f"{value!r} is a teacher, not a model: use --teacher {value} (the earlier tool's "
            f"--model {value}); --model names the teacher's own model, if it needs one"
        )
    return value


teacher_options = _stack(
    click.option(
        "--teacher",
        default=DEFAULT_TEACHER,
        show_default=True,
        help="Teacher driver (see `hegelion plugins`).",
    ),
    click.option("--model", "-m", callback=_model_not_a_teacher, help="The teacher's model."),
    click.option("--base-url", help="OpenAI-compatible server URL (openai/kimi teachers)."),
    click.option(
        "-t",
        "--teacher-option",
        "teacher_pairs",
        multiple=True,
        metavar="KEY=VALUE",
        help="Any teacher option.",
    ),
    click.option("--max-tokens", type=int, help="Per call."),
    click.option("--temperature", type=float),
)

dialectic_options = _stack(
    click.option(
        "--mode", type=click.Choice(["single", "phased"]), default="phased", show_default=True
    ),
    click.option(
        "--council",
        is_flag=False,
        flag_value="council",
        default=None,
        metavar="[PRESET|NAMES]",
        help="Critics write the antithesis: a preset (council, science, engineering, policy) or persona names, comma-separated.",
    ),
    click.option(
        "--critic",
        "critics",
        multiple=True,
        metavar="NAME=INSTRUCTION",
        help="A custom council critic (repeatable).",
    ),
    click.option("--judge", is_flag=True, help="Score each dialectic 0-10 with a judge call."),
    click.option(
        "--min-judge-score",
        type=float,
        help="Retry, then reject, dialectics scored below this (implies --judge).",
    ),
    click.option(
        "--iterations",
        type=int,
        default=1,
        show_default=True,
        help="Feed each synthesis back as the next thesis.",
    ),
    click.option(
        "--on-truncation",
        type=click.Choice(["retry", "reject", "keep"]),
        default="retry",
        show_default=True,
        help="An answer cut by the token limit: retry once with twice the budget then reject, reject, "
        "or keep it marked truncated: true (dataset skips those).",
    ),
    click.option(
        "--max-tokens-cap",
        type=click.IntRange(min=1),
        default=8192,
        show_default=True,
        help="The largest budget a truncation retry asks for.",
    ),
    click.option(
        "--quality-check/--no-quality-check",
        default=True,
        show_default=True,
        help="Reject degenerate output: loops, a section that copies another, an empty final answer.",
    ),
    click.option(
        "--quality",
        "quality_pairs",
        multiple=True,
        metavar="KEY=VALUE",
        help="A degenerate-output threshold (max_repeated_share, max_copied_share, max_loop_words...; "
        "see hegelion_core.data.quality.QualityConfig).",
    ),
)


def make_teacher(
    teacher: str, model: str | None, base_url: str | None, pairs: tuple[str, ...]
) -> Any:
    from hegelion_core.plugins import make_driver

    options = {k: v for k, v in {"model": model, "base_url": base_url}.items() if v is not None}
    return make_driver("teachers", teacher, options | parse_pairs(pairs))


def make_dialectic_config(
    mode: str,
    council: str | None,
    critics: tuple[str, ...],
    judge: bool,
    min_judge_score: float | None,
    iterations: int,
    max_tokens: int | None,
    temperature: float | None,
    *,
    on_truncation: str = "retry",
    max_tokens_cap: int | None = 8192,
    quality_check: bool = True,
    quality_pairs: tuple[str, ...] = (),
) -> Any:
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
        mode=mode,
        council=members,
        judge=judge or min_judge_score is not None,
        min_judge_score=min_judge_score,
        iterations=iterations,
        max_tokens=max_tokens,
        temperature=temperature,
        on_truncation=on_truncation,
        max_tokens_cap=max_tokens_cap,
        quality=quality,
    )
