"""What every command shares: the root group's error handling and ``-o KEY=VALUE`` pairs."""

from __future__ import annotations

import json
from typing import Any

import click

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
