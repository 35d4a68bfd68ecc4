"""Calling the pluggy hooks from core code: always through pluggy's own calling path (so
tryfirst, trylast and wrappers behave as pluggy documents), cheaply when no plugin
implements a hook. Commands fire run-started/finished through `command_run`, and records
are admitted through `admit`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy
from pydantic import BaseModel

from hegelion_core import secrets
from hegelion_core.plugins import get_plugin_manager
from hegelion_core.records import TraceRecord

if TYPE_CHECKING:
    import click


def redact(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with every credential masked (`hegelion_core.secrets.redact`, nested
    values and known keys included): hooks never see secrets."""
    return secrets.redact(config)


def run_started(command: str, config: dict[str, Any]) -> None:
    get_plugin_manager().hook.hegelion_run_started(command=command, config=redact(config))


def run_finished(command: str, summary: dict[str, Any], error: str | None) -> None:
    get_plugin_manager().hook.hegelion_run_finished(
        command=command, summary=redact(summary), error=secrets.scrub(error) if error else error
    )


@dataclass
class CommandRun:
    """What a command tells `hegelion_run_finished`: set ``summary`` (a model or a dict)
    once there is one; a command that fails before that reports ``{}``."""

    summary: BaseModel | dict[str, Any] | None = None


@contextlib.contextmanager
def command_run(command: str, config: dict[str, Any]) -> Iterator[CommandRun]:
    """Fire `hegelion_run_started` now and `hegelion_run_finished` however the block ends
    (it returns, raises, or is interrupted: ``error`` is then the exception's message).

    Every command wraps its work in this one block, so plugins hear the same pair, with
    secrets masked the same way, from each.
    """
    run_started(command, config)
    run = CommandRun()
    error: str | None = None
    try:
        yield run
    except BaseException as exc:
        error = str(exc) or type(exc).__name__
        raise
    finally:
        summary = run.summary
        if isinstance(summary, BaseModel):
            summary = summary.model_dump(mode="json")
        run_finished(command, summary or {}, error)


def admit(record: TraceRecord) -> TraceRecord | None:
    """The record as plugins want it kept, or None when one of them rejects it: every
    `hegelion_transform_record` first (chained), then `hegelion_accept_record` votes on
    the result. Generation and `hegelion dataset` both admit records through this.

    Transforms run first so that a vote is on exactly what will be written: a filter
    sees redacted, normalised text, and no transform can slip in content no filter saw.
    """
    record = transform_record(record)
    return record if accept_record(record) else None


def accept_record(record: TraceRecord) -> bool:
    hook = get_plugin_manager().hook.hegelion_accept_record
    if not hook.get_hookimpls():
        return True
    return all(vote is not False for vote in hook(record=record))


def transform_record(record: TraceRecord) -> TraceRecord:
    """Chain every implementation: each sees the previous one's result (None: unchanged).

    pluggy has no chained call, so each link is a pluggy call of one plugin, in pluggy's
    call order (tryfirst first, then the last registered first), and the hook's wrappers
    run once around the whole chain, as they run around any call.
    """
    name = "hegelion_transform_record"
    if not getattr(get_plugin_manager().hook, name).get_hookimpls():
        return record

    def chain(record: TraceRecord) -> TraceRecord:
        for _plugin, link in _one_by_one(name):
            changed = link(record=record)
            if changed:
                record = changed[0]
        return record

    results = _inside_wrappers(name, chain, record=record)
    return results[0] if results else record


def register_commands(cli: click.Group) -> list[tuple[str, Exception]]:
    """Let every plugin add its subcommands to ``cli``; return each plugin that raised,
    with its error, after the others have added theirs."""
    name = "hegelion_register_commands"
    failed: list[tuple[str, Exception]] = []
    if not getattr(get_plugin_manager().hook, name).get_hookimpls():
        return failed

    def each(cli: click.Group) -> None:
        for plugin, link in _one_by_one(name):
            try:
                link(cli=cli)
            except Exception as exc:
                failed.append((plugin, exc))

    try:
        _inside_wrappers(name, each, cli=cli)
    except Exception as exc:  # a wrapper raised: report it too, and let the CLI start
        impls = getattr(get_plugin_manager().hook, name).get_hookimpls()
        failed.append((", ".join(i.plugin_name for i in impls if _is_wrapper(i)), exc))
    return failed


def _is_wrapper(impl: pluggy.HookImpl) -> bool:
    return impl.wrapper or impl.hookwrapper


def _one_by_one(name: str) -> list[tuple[str, pluggy.HookCaller]]:
    """Hook ``name`` of each plugin with a plain (non-wrapper) implementation, as a pluggy
    caller of that plugin alone, in pluggy's call order."""
    pm = get_plugin_manager()
    impls = getattr(pm.hook, name).get_hookimpls()
    return [
        (impl.plugin_name, pm.subset_hook_caller(name, [o.plugin for o in impls if o is not impl]))
        for impl in reversed(impls)
        if not _is_wrapper(impl)
    ]


def _inside_wrappers(name: str, body: Callable[..., Any], **kwargs: Any) -> list[Any]:
    """Call hook ``name`` with ``body`` as its only plain implementation, so the hook's
    wrappers run once around it; pluggy's result list (what the wrappers made of it)."""
    pm = get_plugin_manager()
    plain = [i.plugin for i in getattr(pm.hook, name).get_hookimpls() if not _is_wrapper(i)]
    results: list[Any] = pm.subset_hook_caller(name, plain).call_extra([body], kwargs)
    return results


def record_written(record: TraceRecord, path: Path) -> None:
    hook = get_plugin_manager().hook.hegelion_record_written
    if hook.get_hookimpls():
        hook(record=record, path=path)


def train_metrics(step: int, metrics: dict[str, float]) -> None:
    get_plugin_manager().hook.hegelion_train_metrics(step=step, metrics=metrics)
