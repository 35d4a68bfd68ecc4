"""The ``hegelion`` command line: the root group, every command registered on it
explicitly, and the console-script entry points. Plugins add subcommands through a hook."""

from __future__ import annotations

import sys

import click

from hegelion_core._version import __version__
from hegelion_core.cli import (
    agent,
    batch,
    curate,
    dataset,
    dialectic,
    eval,
    export,
    generate,
    plugins,
    report,
    run,
    status,
    train,
)
from hegelion_core.cli.options import HegelionGroup


@click.group(cls=HegelionGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hegelion")
def cli() -> None:
    """Hegelion: teach small models to reason thesis -> antithesis -> synthesis."""


for _command in (
    plugins.plugins_command,
    dataset.dataset_command,
    generate.generate_command,
    batch.batch_group,
    status.status_command,
    dialectic.dialectic_command,
    agent.agent_command,
    train.train_command,
    eval.eval_command,
    export.export_group,
    run.run_command,
    report.report_command,
    curate.curate_command,
):
    cli.add_command(_command)


def load_plugin_commands(group: click.Group) -> None:
    """Let every hook plugin add subcommands; a failing plugin is reported, not fatal."""
    from hegelion_core import hooks

    for plugin, exc in hooks.register_commands(group):
        click.echo(f"warning: plugin {plugin!r} failed to add commands: {exc}", err=True)


def main(argv: list[str] | None = None) -> None:
    load_plugin_commands(cli)
    cli.main(args=argv, prog_name="hegelion")


def dataset_main(argv: list[str] | None = None) -> None:
    """``hegelion-dataset``: the earlier tool's command, with its defaults.

    Its users' scripts leave out ``--format`` (meaning DPO, synthesis chosen over the
    thesis) and ask for ``--format instruction`` (SFT rows that keep only the synthesis);
    `earlier_dataset_args` turns those into ``hegelion dataset`` arguments, and one line
    on stderr names the command it ran. ``hegelion dataset`` itself keeps requiring
    ``--format``.
    """
    import shlex

    args = dataset.earlier_dataset_args(sys.argv[1:] if argv is None else argv)
    if not {"-q", "--quiet", "-h", "--help"} & set(args):
        click.echo(
            f"hegelion-dataset: running `hegelion {shlex.join(args)}` "
            "(the earlier defaults; see docs/migrating.md)",
            err=True,
        )
    cli.main(args=args, prog_name="hegelion")


def agent_main(argv: list[str] | None = None) -> None:
    """``hegelion-agent``: the earlier tool's name for ``hegelion agent``."""
    main(["agent", *(sys.argv[1:] if argv is None else argv)])
