"""Hooks: what every installed plugin may hear about or take part in.

Choosing *one* backend (a teacher, a trainer) is not a hook: that is a stevedore
entry point, see `hegelion_core.plugins`. Hooks are for "everyone who cares".

pluggy lets an implementation accept fewer arguments than its spec, so new arguments
can be added here without breaking existing plugins.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from hegelion_core.records import TraceRecord

PROJECT = "hegelion"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def hegelion_register_commands(cli: click.Group) -> None:
    """Add subcommands to the `hegelion` CLI with ``cli.add_command`` or ``@cli.command``.

    Called once per plugin when the CLI starts; return value ignored. A plugin that
    raises here is reported on stderr and the CLI carries on without its commands.
    """


@hookspec
def hegelion_run_started(command: str, config: dict[str, Any]) -> None:
    """A CLI command (``dataset``, ``generate``, ``train``...) is about to start work.

    Called on every plugin in turn; return values ignored. ``config`` holds the
    command's resolved options, with secrets removed.
    """


@hookspec
def hegelion_run_finished(command: str, summary: dict[str, Any], error: str | None) -> None:
    """A command finished. ``error`` is the message when it failed, else None.

    Called on every plugin; return values ignored; called even after a failure.
    """


@hookspec
def hegelion_accept_record(record: TraceRecord) -> bool | None:
    """Vote on a trace record before it is formatted or written.

    Called on every plugin. The record is dropped when any implementation returns
    False (counted as ``rejected_by_plugin``); None means "no opinion".
    """


@hookspec
def hegelion_transform_record(record: TraceRecord) -> TraceRecord | None:
    """Rewrite a trace record (redact, normalise, enrich) before it is formatted.

    Chained: each implementation receives the previous one's result, in pluggy's
    call order (last registered first). Return None to leave the record unchanged.
    """


@hookspec
def hegelion_record_written(record: TraceRecord, path: Path) -> None:
    """A trace record was durably appended to ``path`` (after the line is flushed).

    Called on every plugin; return values ignored. Keep it fast: it runs once per
    record on the writer's path.
    """


@hookspec
def hegelion_train_metrics(step: int, metrics: dict[str, float]) -> None:
    """A trainer logged metrics for optimiser step ``step`` (loss, lr, SCU's S and λ...).

    Called on every plugin; return values ignored.
    """
