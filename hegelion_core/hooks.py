"""Calling the pluggy hooks from core code, cheaply when no plugin implements them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from hegelion_core import secrets
from hegelion_core.plugins import get_plugin_manager
from hegelion_core.records import TraceRecord


def redact(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with every credential masked (`hegelion_core.secrets.redact`, nested
    values and known keys included): hooks never see secrets."""
    return secrets.redact(config)


def run_started(command: str, config: dict[str, Any]) -> None:
    get_plugin_manager().hook.hegelion_run_started(command=command, config=redact(config))


def run_finished(command: str, summary: dict[str, Any], error: str | None) -> None:
    get_plugin_manager().hook.hegelion_run_finished(
        command=command, summary=redact(summary), error=secrets.scrub(error) if error else error)


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


def accept_record(record: TraceRecord) -> bool:
    hook = get_plugin_manager().hook.hegelion_accept_record
    if not hook.get_hookimpls():
        return True
    return all(vote is not False for vote in hook(record=record))


def transform_record(record: TraceRecord) -> TraceRecord:
    """Chain every implementation: each sees the previous one's result."""
    hook = get_plugin_manager().hook.hegelion_transform_record
    # pluggy calls the most recently registered implementation first; keep that order.
    for impl in reversed(hook.get_hookimpls()):
        kwargs = {"record": record} if "record" in impl.argnames else {}
        result = impl.function(**kwargs)
        if result is not None:
            record = result
    return record


def record_written(record: TraceRecord, path: Path) -> None:
    hook = get_plugin_manager().hook.hegelion_record_written
    if hook.get_hookimpls():
        hook(record=record, path=path)


def train_metrics(step: int, metrics: dict[str, float]) -> None:
    get_plugin_manager().hook.hegelion_train_metrics(step=step, metrics=metrics)
