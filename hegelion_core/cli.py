"""The ``hegelion`` command line. Plugins add subcommands through a hook."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from hegelion_core._version import __version__
from hegelion_core.errors import HegelionError


class _Group(click.Group):
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
            from hegelion_core.jsonl import os_error_message

            raise click.ClickException(os_error_message(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hegelion")
def cli() -> None:
    """Hegelion: teach small models to reason thesis -> antithesis -> synthesis."""


# ----- hegelion plugins ---------------------------------------------------------------


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_command(as_json: bool) -> None:
    """List drivers for every role and the hook plugins, with their status."""
    from hegelion_core.plugins import as_dicts, describe_drivers, describe_hook_plugins

    drivers, hook_plugins = describe_drivers(), describe_hook_plugins()
    if as_json:
        click.echo(json.dumps({"drivers": as_dicts(drivers), "hooks": as_dicts(hook_plugins)}, indent=2))
        return
    role = None
    for d in drivers:
        if d.role != role:
            role = d.role
            click.secho(f"{role}:", bold=True)
        origin = f"{d.distribution} {d.version}".strip()
        line = f"  {d.name:<14} {d.status:<14} {origin}"
        click.echo(line)
        if d.error:
            click.echo(f"      error: {d.error}")
        if d.fix:
            click.echo(f"      fix:   {d.fix}")
    click.secho("hooks:", bold=True)
    if not hook_plugins:
        click.echo("  (no hook plugins installed)")
    for h in hook_plugins:
        click.echo(f"  {h.name:<14} {h.status:<14} {h.distribution} {h.version}")
        if h.hooks:
            click.echo(f"      implements: {', '.join(h.hooks)}")
        if h.error:
            click.echo(f"      error: {h.error}")
            click.echo(f"      fix:   {h.fix}")


# ----- hegelion dataset ---------------------------------------------------------------


def _parse_pairs(pairs: tuple[str, ...]) -> dict[str, Any]:
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


@cli.command("dataset")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--format", "-f", "fmt", required=True, help="Formatter: sft, chat, dpo, scu, mlx, simplex, or a plugin's.")
@click.option("--rejected", type=click.Choice(["thesis", "antithesis", "both"]), help="dpo: the rejected side ('both' makes two rows).")
@click.option("--conversational", is_flag=True, default=None, help="dpo: lists of messages instead of strings.")
@click.option("--synthesis-only", is_flag=True, default=None, help="sft/chat/scu/mlx: answer with the synthesis alone.")
@click.option("--system", help="Replace each record's system prompt.")
@click.option("-o", "--option", "extra", multiple=True, metavar="KEY=VALUE", help="Any formatter option (repeatable).")
@click.option("--to", type=click.Choice(["jsonl", "parquet", "hf"]), help="Output layout (default: from OUTPUT's suffix; hf = datasets DatasetDict on disk).")
@click.option("--valid-ratio", type=float, help="Write a train/valid split directory.")
@click.option("--test-ratio", type=float, help="Also hold out a test split.")
@click.option("--seed", type=int, help="Seed of the split (default 0).")
@click.option("--batch-size", type=int, help="Smallest allowed split (mlx-lm refuses smaller; mlx default 4).")
@click.option("--skip-invalid", is_flag=True, help="Skip lines that are not JSON objects instead of stopping.")
@click.option("--no-dedupe", is_flag=True, help="Keep records whose prompt_id was already seen.")
@click.option("--push-to-hub", metavar="REPO", help="Also upload to the Hugging Face Hub.")
@click.option("--private", is_flag=True, help="With --push-to-hub: create a private dataset.")
@click.option("--overwrite", is_flag=True, help="Write a split directory's files into a directory that holds other files (left alone).")
@click.option("--quiet", "-q", is_flag=True)
def dataset_command(
    inputs: tuple[Path, ...], output: Path, fmt: str, rejected: str | None,
    conversational: bool | None, synthesis_only: bool | None, system: str | None,
    extra: tuple[str, ...], to: str | None, valid_ratio: float | None, test_ratio: float | None,
    seed: int | None, batch_size: int | None, skip_invalid: bool, no_dedupe: bool,
    push_to_hub: str | None, private: bool, overwrite: bool, quiet: bool,
) -> None:
    """Format trace files (INPUTS) into a training dataset at OUTPUT.

    \b
    Examples:
      hegelion dataset traces.jsonl sft.jsonl --format sft
      hegelion dataset traces.jsonl dpo.jsonl --format dpo --rejected both
      hegelion dataset traces.jsonl data/ --format mlx --valid-ratio 0.1
    """
    from pydantic import ValidationError

    from hegelion_core.dataset import DatasetJob, SplitSpec, build_dataset
    from hegelion_core.errors import describe_validation
    from hegelion_core.plugins import load_driver

    flags = {"rejected": rejected, "conversational": conversational,
             "synthesis_only": synthesis_only, "system": system}
    options = {k: v for k, v in flags.items() if v is not None} | _parse_pairs(extra)

    given = {"valid_ratio": valid_ratio, "test_ratio": test_ratio, "min_rows": batch_size, "seed": seed}
    given = {k: v for k, v in given.items() if v is not None}
    split = None
    if given:  # a split directory; start from the formatter's defaults (mlx's batch size)
        default = load_driver("formatters", fmt).default_split
        base = default.model_dump() if default else {"valid_ratio": 0.0}
        try:
            split = SplitSpec(**(base | given))
        except ValidationError as exc:
            raise click.BadParameter(describe_validation(exc)) from None

    job = DatasetJob(
        inputs=list(inputs), output=output, format=fmt, options=options, to=to, split=split,
        skip_invalid=skip_invalid, dedupe=not no_dedupe, push_to_hub=push_to_hub, private=private,
        overwrite=overwrite,
    )
    summary = build_dataset(job)
    if quiet:
        return
    rows = ", ".join(f"{k} {v}" for k, v in summary.rows.items())
    click.echo(f"wrote {sum(summary.rows.values())} rows ({rows}) to {summary.output} [{fmt}]")
    skipped = sum(summary.skipped.values())
    click.echo(f"read {summary.lines} lines: {summary.records} records used, {skipped} skipped")
    for reason, count in sorted(summary.skipped.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {count:>6}  {reason}   e.g. {summary.examples[reason]}")
    click.echo(f"manifest: {summary.manifest}")


# ----- entry points -------------------------------------------------------------------


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

    args = earlier_dataset_args(sys.argv[1:] if argv is None else argv)
    if not {"-q", "--quiet", "-h", "--help"} & set(args):
        click.echo(f"hegelion-dataset: running `hegelion {shlex.join(args)}` "
                   "(the earlier defaults; see docs/migrating.md)", err=True)
    cli.main(args=args, prog_name="hegelion")


#: The earlier ``hegelion-dataset`` format names that are not Hegelion formatter names.
EARLIER_FORMATS: dict[str, list[str]] = {"instruction": ["sft", "--synthesis-only"]}


def earlier_dataset_args(argv: list[str]) -> list[str]:
    """``hegelion dataset`` arguments for an earlier ``hegelion-dataset`` command line:
    no ``--format`` is ``--format dpo`` (its default ``--rejected`` is the thesis), and
    ``--format instruction`` is ``--format sft --synthesis-only``."""
    takes_value = {o for p in dataset_command.params if isinstance(p, click.Option) and not p.is_flag
                   for o in p.opts}
    out: list[str] = []
    fmt_at: int | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            break
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in ("--format", "-f") or (arg.startswith("-f") and not arg.startswith("--")):
            if not eq and name in ("--format", "-f"):
                if i + 1 >= len(argv):  # `--format` with no value: click says so
                    out.append(arg)
                    fmt_at = -1
                    break
                value, i = argv[i + 1], i + 1
            elif not eq:
                value = arg[2:]  # -fdpo
            fmt_at = len(out)
            out += ["--format", value]
        elif name in takes_value and not eq:
            out += argv[i:i + 2]
            i += 1
        else:
            out.append(arg)
        i += 1
    out += argv[i + (fmt_at == -1):]
    if fmt_at is None:
        end = out.index("--") if "--" in out else len(out)
        out[end:end] = ["--format", "dpo"]
    elif fmt_at >= 0 and out[fmt_at + 1] in EARLIER_FORMATS:
        out[fmt_at + 1:fmt_at + 2] = EARLIER_FORMATS[out[fmt_at + 1]]
    return ["dataset", *out]


# The subcommands' modules register themselves on `cli` (generate, status, dialectic,
# agent, train, eval, export, run); they import `cli` from here, hence the end of the file.
from hegelion_core import cli_eval, cli_export, cli_generate, cli_run, cli_train  # noqa: E402,F401,I001
from hegelion_core import cli_report  # noqa: E402,F401
from hegelion_core import cli_curate  # noqa: E402,F401
