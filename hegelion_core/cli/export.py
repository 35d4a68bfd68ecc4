"""``hegelion export NAME``: one subcommand per installed exporter plugin.

Subcommands are resolved lazily through `hegelion_core.plugins`: listing reads entry
points, and only the exporter asked for is imported. Each exporter's ``Options``
fields become flags (``--quantization``, ``--adapter-only``...), so a third-party
exporter gets a command line without touching core; ``-o KEY=VALUE`` sets any option.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import click

from hegelion_core.cli.options import parse_pairs

#: flags every exporter command has; an option field with one of these names is -o only
COMMON = ("model", "adapter", "name", "out", "option")


class ExportGroup(click.Group):
    """Subcommands are the installed exporters, built from their Options on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from hegelion_core.plugins import driver_names

        return driver_names("exporters")

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from hegelion_core.errors import DriverLoadError, DriverNotFound
        from hegelion_core.plugins import KNOWN_DRIVERS, driver_names, load_driver

        try:
            return exporter_command(load_driver("exporters", cmd_name))
        except DriverLoadError as exc:
            return _failing_command(cmd_name, exc)
        except DriverNotFound as exc:
            if cmd_name in KNOWN_DRIVERS["exporters"] or cmd_name in driver_names("exporters"):
                return _failing_command(cmd_name, exc)
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_commands(ctx, formatter)
        from hegelion_core.plugins import KNOWN_DRIVERS, install_hint

        missing = [
            (n, d)
            for n, d in KNOWN_DRIVERS["exporters"].items()
            if n not in self.list_commands(ctx)
        ]
        if missing:
            with formatter.section("Not installed"):
                formatter.write_dl([(n, install_hint(d)) for n, d in missing])


def _failing_command(name: str, exc: Exception) -> click.Command:
    """A command that reports why exporter ``name`` cannot run (and how to install it)."""

    def run(**_: Any) -> None:
        raise exc

    first = str(exc).splitlines()[0]
    command = click.Command(
        name,
        callback=run,
        help=first,
        short_help=first[:70],
        context_settings={"ignore_unknown_options": True},
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
    )
    command.unavailable = exc  # type: ignore[attr-defined]  # `hegelion run` checks before planning
    return command


@click.group("export", cls=ExportGroup)
def export_group() -> None:
    """Export a trained model: GGUF for llama.cpp and Ollama, merged safetensors, or a
    plugin's format.

    \b
      hegelion export gguf --model ./base --adapter runs/a/adapter --quantization q4_k_m \\
                           --name hegelion-smol --out exports/smol
      hegelion export merged --model ./base --adapter runs/a/adapter --out merged/
    """


# ----- options -> flags ------------------------------------------------------------------


def _unwrap_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def option_param(field_name: str, field: Any) -> click.Option | None:
    """The click option for one pydantic field, or None when it has no flag form."""
    annotation = _unwrap_optional(field.annotation)
    origin = typing.get_origin(annotation)
    flag = "--" + field_name.replace("_", "-")
    default = field.get_default(call_default_factory=True)
    shown = f" [default: {default}]" if default not in (None, [], (), False) else ""
    help_text = (field.description or "") + shown
    common: dict[str, Any] = {"default": None, "help": help_text, "show_default": False}
    if annotation is bool:
        return click.Option([f"{flag}/--no-{flag[2:]}", field_name], **common)
    if origin is typing.Literal:
        choices = [str(c) for c in typing.get_args(annotation)]
        return click.Option([flag, field_name], type=click.Choice(choices), **common)
    if origin is list and typing.get_args(annotation) in ((str,), (Path,), (int,), (float,)):
        (item,) = typing.get_args(annotation)
        kind = click.Path(path_type=Path) if item is Path else item
        return click.Option(
            [flag, field_name], type=kind, multiple=True, help=help_text + " (repeatable)"
        )
    if annotation is Path:
        return click.Option([flag, field_name], type=click.Path(path_type=Path), **common)
    if annotation in (int, float, str):
        return click.Option([flag, field_name], type=annotation, **common)
    return None


def options_params(options_model: Any) -> list[click.Option]:
    params = []
    for field_name, field in options_model.model_fields.items():
        if field_name in COMMON:
            continue
        param = option_param(field_name, field)
        if param is not None:
            params.append(param)
    return params


def exporter_command(cls: Any) -> click.Command:
    """``hegelion export NAME``: common flags, then one flag per ``cls.Options`` field."""
    fields = [p.name for p in options_params(cls.Options)]

    def run(
        model: Path,
        adapter: Path | None,
        name: str | None,
        out: Path,
        option: tuple[str, ...],
        **flags: Any,
    ) -> None:
        given = {k: v for k, v in flags.items() if k in fields and v not in (None, ())}
        given = {k: list(v) if isinstance(v, tuple) else v for k, v in given.items()}
        run_export(cls, model, adapter, name, out, {**parse_pairs(option), **given})

    params: list[click.Parameter] = [
        click.Option(
            ["--model"],
            required=True,
            type=click.Path(path_type=Path),
            help="The model directory (HF safetensors, config, tokenizer).",
        ),
        click.Option(
            ["--adapter"],
            type=click.Path(path_type=Path),
            help="A PEFT LoRA adapter directory to apply (e.g. runs/a/adapter).",
        ),
        click.Option(["--name"], help="Name of the exported model (files, ollama create)."),
        click.Option(
            ["--out"],
            required=True,
            type=click.Path(path_type=Path),
            help="Output directory; the export's files are moved in only when it "
            "succeeds, beside any other files there (never replacing one it "
            "did not write).",
        ),
        *options_params(cls.Options),
        click.Option(
            ["-o", "--option"],
            multiple=True,
            metavar="KEY=VALUE",
            help="Any exporter option (repeatable).",
        ),
    ]
    doc = (cls.__doc__ or f"Export with {cls.name}.").strip().splitlines()
    return click.Command(cls.name, callback=run, params=params, help="\n".join(doc))


# ----- the run ---------------------------------------------------------------------------


def run_export(
    cls: Any,
    model: Path,
    adapter: Path | None,
    name: str | None,
    out: Path,
    options: dict[str, Any],
) -> None:
    from hegelion_core import hooks

    _check_out(out, model, adapter)
    driver = cls(options)
    config = {
        "exporter": cls.name,
        "model": str(model),
        "adapter": str(adapter) if adapter else None,
        "name": name,
        "out": str(out),
        **driver.options.model_dump(mode="json"),
    }
    with hooks.command_run("export", config) as run:
        result = driver.export(model, out, adapter_dir=adapter, name=name)
        run.summary = result
    manifest = write_export_manifest(out, model, adapter, config, result)
    for note in result.notes:
        click.echo(note)
    click.echo(f"wrote {len(result.files)} files to {result.out_dir or out}:")
    for path in result.files:
        click.echo(f"  {path}")
    click.echo(f"manifest: {manifest}")


def _check_out(out: Path, model: Path, adapter: Path | None) -> None:
    """Before any work: ``--out`` is not an input and holds no manifest.json of another's."""
    from hegelion_core.data.jsonl import (
        NotOurs,
        listed_in_manifest,
        owned_names,
        refuse_inputs_inside,
    )
    from hegelion_core.errors import HegelionError

    refuse_inputs_inside(out, [p for p in (model, adapter) if p is not None])
    if out.exists() and not out.is_dir():
        raise HegelionError(
            f"{out}: exists and is not a directory; --out is a directory: give a "
            "new or empty directory path"
        )
    manifest = out / "manifest.json"
    if manifest.exists() and "manifest.json" not in (
        owned_names(out, listed_in_manifest("export")) or set()
    ):
        raise NotOurs(
            out,
            ["manifest.json"],
            f"choose another --out (--out {out / 'export'}), or move that file away",
            replaced=False,
        )


def _digests(directory: Path | None) -> list[Any]:
    """The model's own files (weights, configs, tokenizer), not whatever else sits there."""
    from hegelion_core.records import FileDigest

    if directory is None or not directory.is_dir():
        return []
    return [
        FileDigest.of(p)
        for p in sorted(directory.iterdir())
        if p.is_file()
        and not p.name.startswith(".")  # not Hegelion's mark, nor other dotfiles
        and p.suffix in (".safetensors", ".json", ".model", ".jinja", ".txt")
    ]


def write_export_manifest(
    out: Path, model: Path, adapter: Path | None, config: dict[str, Any], result: Any
) -> Path:
    """``out/manifest.json``: the inputs' hashes, the settings, the files and versions;
    named in ``out``'s mark as Hegelion's, so the next export into ``out`` may replace it."""
    from hegelion_core.data.jsonl import atomic_output, claim_names, dumps
    from hegelion_core.records import StageManifest
    from hegelion_core.secrets import redact

    files = [Path(p) for p in result.files]
    manifest = StageManifest(
        stage="export",
        inputs=_digests(model) + _digests(adapter),
        outputs=[str(p) for p in files],
        config=redact(config),
        counts={"files": len(files), "bytes": sum(p.stat().st_size for p in files if p.is_file())},
        versions=result.versions,
    )
    path = Path(result.out_dir or out) / "manifest.json"
    with atomic_output(path) as tmp:
        tmp.write_bytes(
            dumps({**manifest.model_dump(mode="json"), "report": _brief(result.report)})
        )
    claim_names(path.parent, [path.name])
    return path


def _brief(report: dict[str, Any]) -> dict[str, Any]:
    """The manifest keeps the pass/fail and figures, not the generated text samples."""
    keep = {k: v for k, v in report.items() if k != "checks"}
    if "checks" in report:
        keep["checks"] = {c["name"]: c["passed"] for c in report["checks"]}
    return keep
