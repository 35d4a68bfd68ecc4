"""hegelion-echo's hooks: one CLI subcommand, and a filter on records."""

from __future__ import annotations

import click

from hegelion_core.hookspecs import hookimpl


@hookimpl
def hegelion_register_commands(cli: click.Group) -> None:
    @cli.command("echo")
    @click.argument("question")
    def echo(question: str) -> None:
        """Ask the echo teacher one question."""
        import asyncio

        from hegelion_core.plugins import make_driver
        from hegelion_core.records import Message

        teacher = make_driver("teachers", "echo", {"style": "plain"})
        click.echo(asyncio.run(teacher.complete([Message(role="user", content=question)])).text)


@hookimpl
def hegelion_accept_record(record):
    """Drop records whose instruction is tagged [echo-drop] (shows a plugin filter)."""
    return "[echo-drop]" not in record.instruction
