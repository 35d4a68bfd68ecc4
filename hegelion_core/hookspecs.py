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


# Each spec below says, as pytest's own hookspecs do: what the hook is for, its calling
# rule (none is ``firstresult`` or ``historic``: every implementation is called, and
# what happens to the results is spelled out), who calls it and when, each argument
# (``:param:``) and what a return value means (``:returns:``).


@hookspec
def hegelion_register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``hegelion`` CLI.

    Called once per plugin when the CLI starts (`hegelion_core.cli.app.main`), each plugin on
    its own, in pluggy's call order, with the hook's wrappers once around them all. A
    plugin that raises is reported on stderr and skipped; the CLI carries on without its
    commands, and the other plugins still add theirs.

    :param cli: The ``hegelion`` group: call ``cli.add_command(...)`` or decorate with
        ``@cli.command(...)``.
    :returns: Ignored.
    """


@hookspec
def hegelion_run_started(command: str, config: dict[str, Any]) -> None:
    """A command is about to start work.

    Called on every plugin by `hegelion_core.hooks.command_run`, which every command that
    does work runs inside: ``generate``, ``dataset``, ``curate``, ``train``, ``export``,
    ``eval``, ``run`` and ``simplex generate``. It fires after the options are checked,
    so a usage error fires nothing; `hegelion_run_finished` always follows it. ``run``
    fires around the whole pipeline; each stage is a command in a process of its own and
    fires its own pair there.

    :param command: The command's name as typed after ``hegelion`` (``"simplex generate"``).
    :param config: The command's resolved options, as JSON values, every credential
        masked as ``***`` (nested values included).
    :returns: Ignored.
    """


@hookspec
def hegelion_run_finished(command: str, summary: dict[str, Any], error: str | None) -> None:
    """A command that fired `hegelion_run_started` has finished, or failed.

    Called on every plugin by `hegelion_core.hooks.command_run` when the command's work
    ends, however it ends: it returned, raised, or was interrupted (Ctrl-C, SIGTERM).

    :param command: The same name `hegelion_run_started` had.
    :param summary: What the command reports (its figures, as JSON values, credentials
        masked); ``{}`` when it failed before it had any.
    :param error: The exception's message (its type's name when it has none) with every
        key in use scrubbed, or None when the command succeeded.
    :returns: Ignored.
    """


@hookspec
def hegelion_accept_record(record: TraceRecord) -> bool | None:
    """Vote on a trace record before it is kept.

    Called on every plugin by `hegelion_core.hooks.admit`, for every record generation
    has just made (before it is appended to the traces) and for every record ``hegelion
    dataset`` reads (after duplicates are dropped, before formatting). Admission has one
    order: the `hegelion_transform_record` chain runs first, and the votes are on its
    result, so a filter judges exactly what will be written.

    :param record: The record, as every transform has left it.
    :returns: False to drop the record (counted as ``rejected by plugin``; one False is
        enough), True or None for no objection.
    """


@hookspec
def hegelion_transform_record(record: TraceRecord) -> TraceRecord | None:
    """Rewrite a trace record (redact, normalise, enrich) before it is voted on and kept.

    Called by `hegelion_core.hooks.admit` on the same records as
    `hegelion_accept_record`, and before it. Chained: each implementation receives the
    previous one's result, in pluggy's call order (``tryfirst`` first, then the last
    registered first); the hook's wrappers run once around the whole chain.

    :param record: The record as the previous transform left it.
    :returns: A new record (``record.model_copy(update=...)``) to pass on, or None to
        leave it unchanged.
    """


@hookspec
def hegelion_record_written(record: TraceRecord, path: Path) -> None:
    """A trace record was durably appended to a traces file.

    Called on every plugin once per record, after its line is flushed to disk: by
    ``hegelion generate``'s writer and by `hegelion_core.data.traces.append_records`. It runs
    on the writer's path: keep it fast.

    :param record: The record as written.
    :param path: The traces file it was appended to.
    :returns: Ignored.
    """


@hookspec
def hegelion_train_metrics(step: int, metrics: dict[str, float]) -> None:
    """A trainer logged metrics for an optimiser step.

    Called on every plugin by `hegelion_core.training.metrics.MetricsLog` each time a trainer
    (trl, mlx, unsloth) logs during ``hegelion train``, after the line is appended to the
    run's ``metrics.jsonl``.

    :param step: The optimiser step the metrics belong to.
    :param metrics: Name to number (only numeric values are passed): loss, learning
        rate, SCU's S and lambda...
    :returns: Ignored.
    """
