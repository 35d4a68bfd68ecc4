"""Planning a stage: its kind (a plugin role) turns its options into a Hegelion command.

The commands are the single home of every option: a stage's options are checked against
the click command's own parameters (names, types, choices), and the stage wires the
inputs and outputs between stages (``--output``, ``--data``, ``--model``...).

Stage kinds (``hegelion.stage_kinds``) and model-reference schemes
(``hegelion.model_schemes``) are found through entry points like every other role; core's
own (`hegelion_core.pipeline.kinds`, `hegelion_core.pipeline.schemes`) register the same
way as a plugin's. A kind plans with the `Planning` it is handed.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Set as AbstractSet
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hegelion_core.errors import DriverNotFound, HegelionError, InputError
from hegelion_core.pipeline.config import PipelineConfig

if TYPE_CHECKING:
    from hegelion_core.contracts import ModelScheme, StageKind

#: What a finished stage hands on: named paths (``traces``, ``data``, ``model``...).
Artifact = dict[str, str]

#: Planning only (``hegelion run --dry-run``): packaged models are named, not materialised.
DRY_RUN: ContextVar[bool] = ContextVar("DRY_RUN", default=False)

#: ``SCHEME:`` of a model reference: what a scheme's entry-point name may look like.
_SCHEME = re.compile(r"[a-z][a-z0-9_+.-]*")


class StageFailed(HegelionError):
    """A stage's command failed, or made nothing usable; the stage is not done."""


@dataclass
class Invocation:
    """One command to run for a stage (eval runs one per model)."""

    argv: list[str]
    label: str = ""


@dataclass
class StagePlan:
    name: str
    kind: str
    workdir: Path
    invocations: list[Invocation]
    artifact: Artifact
    resume: bool = False  # the command continues an interrupted run by itself
    inputs: list[Path] = field(default_factory=list)  # hashed into the fingerprint


# ----- the registry --------------------------------------------------------------------


def kind_names() -> list[str]:
    """The stage kinds installed here (entry-point names; nothing imported)."""
    from hegelion_core.plugins import driver_names

    return driver_names("stage_kinds")


def stage_kind(name: str) -> StageKind:
    """The kind ``name``, from the ``hegelion.stage_kinds`` entry points."""
    from hegelion_core.plugins import ALLOW_ENV, DISABLE_ENV

    return _stage_kind(name, os.environ.get(ALLOW_ENV), os.environ.get(DISABLE_ENV))


@functools.lru_cache(maxsize=64)
def _stage_kind(name: str, *_plugin_settings: str | None) -> StageKind:
    # Cached: planning asks for a kind several times per stage (about 8 ms a load).
    from hegelion_core.plugins import make_driver

    return make_driver("stage_kinds", name)


def model_scheme(name: str) -> ModelScheme:
    """The scheme ``name`` (``packaged`` of ``packaged:smollm2``)."""
    from hegelion_core.plugins import make_driver

    return make_driver("model_schemes", name)


# ----- what a kind plans with ----------------------------------------------------------


@dataclass
class Planning:
    """One stage being planned: the file, the stage, its directory, and what the stages
    before it handed on. Its methods are what every kind needs: errors at the stage's line,
    paths relative to the file, a command's argv checked against its flags, the stage's
    input, and model references."""

    config: PipelineConfig
    stage: str
    kind: str
    workdir: Path
    done: dict[str, Artifact]
    #: the ``hegelion`` root group, handed in by the CLI (the library never imports it)
    commands: click.Group
    dry_run: bool = False

    def error(self, key: str | None, problem: str, hint: str | None = None) -> InputError:
        """An error at this stage's line (``key``: the option, at its own line)."""
        loc = ("stages", self.stage) if key is None else ("stages", self.stage, key)
        return self.config.error(loc, problem, hint)

    def path(self, value: str) -> Path:
        """A path written in the file: relative to the file."""
        return _resolve_path(self.config, value)

    def command(self, *path: str) -> click.Command:
        """``hegelion PATH...``: the click command (a plugin's too), or why it is missing."""
        return find_command(self.commands, list(path))

    def argv(
        self,
        command: click.Command,
        options: dict[str, Any],
        *,
        reserved: AbstractSet[str] = frozenset(),
    ) -> list[str]:
        """The options as ``command``'s flags, checked; ``reserved`` are set by the stage."""
        return options_argv(self.config, self.stage, command, options, reserved=reserved)

    def plan(
        self,
        invocations: list[Invocation],
        artifact: Artifact,
        *,
        resume: bool = False,
        inputs: list[Path] | None = None,
    ) -> StagePlan:
        return StagePlan(
            self.stage,
            self.kind,
            self.workdir,
            invocations,
            artifact,
            resume=resume,
            inputs=inputs or [],
        )

    def upstream(self, wants: str, *, usual: str | None = None) -> tuple[str, Artifact]:
        """The stage this one reads ``wants`` from (a name in some kind's ``provides``):
        ``from:`` if given, else the nearest earlier stage whose kind provides it.
        ``usual`` names the kind the error message suggests first."""
        spec = self.config.stages[self.stage]
        names = list(self.config.stages)
        if spec.after is not None:
            name = spec.after
            if wants not in _provides(self.config.kind(name)):
                raise self.error(
                    "from",
                    f"`from: {name}` is a {self.config.kind(name)} stage, which makes no {wants}",
                    hint=f"stages that make {wants}: "
                    f"{', '.join(_makers(wants)) or 'none installed'}",
                )
        else:
            earlier = [
                n
                for n in reversed(names[: names.index(self.stage)])
                if wants in _provides(self.config.kind(n))
            ]
            if not earlier:
                makers = _makers(wants)
                what = usual or " or ".join(makers)
                raise self.error(
                    None,
                    f"no earlier {what} stage to read from"
                    if what
                    else f"no earlier stage makes {wants}",
                    hint=f"add one before it (stages that make {wants}: "
                    f"{', '.join(makers) or 'none installed'}), or give the "
                    "input with `input: PATH`",
                )
            name = earlier[0]
        if name not in self.done:
            raise self.error(
                None,
                f"stage {name!r} has not completed",
                hint=f"run it first: hegelion run {self.config.source} --stage {name}",
            )
        return name, self.done[name]

    def input(self, wants: str, *, usual: str | None = None) -> str:
        """The path of ``wants`` that the upstream stage (see `upstream`) handed on."""
        name, artifact = self.upstream(wants, usual=usual)
        return artifact[_provides(self.config.kind(name))[wants]]

    def model(self, key: str, ref: str) -> Artifact:
        """A model reference: ``SCHEME:NAME`` through its scheme (``stage:NAME``,
        ``packaged:smollm2``, a plugin's), else an existing path (relative to the file),
        else a hub id as given."""
        scheme, sep, rest = ref.partition(":")
        if sep and _SCHEME.fullmatch(scheme):
            from hegelion_core.plugins import driver_names, missing_message

            if scheme in driver_names("model_schemes"):
                return model_scheme(scheme).resolve(self, key, rest)
            if (why := missing_message("model_schemes", scheme)) is not None:
                raise self.error(key, f"{ref!r}: {why}")
        if "/" in ref or ref.startswith("."):
            path = self.path(ref)
            if path.exists():
                return {"model": str(path)}
        return {"model": ref}  # a hub id


def _provides(kind: str) -> dict[str, str]:
    try:
        return dict(stage_kind(kind).provides)
    except DriverNotFound:
        return {}


def _makers(wants: str) -> list[str]:
    return [k for k in kind_names() if wants in _provides(k)]


# ----- options -> argv, checked against the click command --------------------------------


def find_command(cli: click.Group, path: list[str]) -> click.Command:
    """``hegelion PATH...`` in the root group ``cli``, or why it is missing."""
    command: click.Command = cli
    ctx = click.Context(cli)
    for part in path:
        sub = command.get_command(ctx, part) if isinstance(command, click.Group) else None
        if sub is None and command is cli:
            # Planned in-process (plan_pipeline from Python), not under `hegelion run`,
            # whose start-up added them: the plugins' commands are not there yet.
            from hegelion_core import hooks

            for plugin, exc in hooks.register_commands(cli):
                click.echo(f"warning: plugin {plugin!r} failed to add commands: {exc}", err=True)
            sub = cli.get_command(ctx, part)
        if sub is None:
            raise HegelionError(
                f"`hegelion {' '.join(path)}` is not installed; `hegelion plugins` says which "
                "plugin provides it"
            )
        if (why := getattr(sub, "unavailable", None)) is not None:
            raise why  # an installable-but-missing plugin command: its error names the pip install
        command = sub
    return command


def _long_name(param: click.Option) -> str:
    longs = [o for o in param.opts if o.startswith("--")]
    return (max(longs, key=len) if longs else param.opts[0]).lstrip("-").replace("-", "_")


def options_argv(
    config: PipelineConfig,
    stage: str,
    command: click.Command,
    options: dict[str, Any],
    *,
    reserved: AbstractSet[str] = frozenset(),
) -> list[str]:
    """``{limit: 8, teacher_option: {n_threads: 2}}`` -> ``--limit 8 --teacher-option n_threads=2``."""
    params = {_long_name(p): p for p in command.params if isinstance(p, click.Option)}
    argv: list[str] = []
    for key, value in options.items():
        loc = ("stages", stage, key)
        if key in reserved:
            raise config.error(
                loc,
                f"`{key}` is set by the pipeline (it wires the stages together)",
                hint="remove it; use `from: STAGE` to choose the input stage",
            )
        param = params.get(key)
        if param is None:
            known = ", ".join(sorted(set(params) - reserved - {"help", "quiet"}))
            raise config.error(
                loc, f"unknown option for `hegelion {command.name}`", hint=f"known: {known}"
            )
        flag = max((o for o in param.opts if o.startswith("--")), key=len, default=param.opts[0])
        if param.is_flag:
            if not isinstance(value, bool):
                raise config.error(loc, "expected true or false")
            if value:
                argv.append(flag)
            elif param.secondary_opts:
                argv.append(param.secondary_opts[0])
            continue
        values: list[Any]
        if param.multiple and isinstance(value, dict):
            values = [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in value.items()]
        elif param.multiple and isinstance(value, list):
            values = value
        else:
            values = [value]
        for item in values:
            if isinstance(param.type, click.Path) and isinstance(item, str):
                item = str(_resolve_path(config, item))
            try:
                param.type.convert(item, param, None)
            except click.BadParameter as exc:
                raise config.error(loc, exc.format_message()) from None
            argv += [flag, item if isinstance(item, str) else json.dumps(item)]
    return argv


def _resolve_path(config: PipelineConfig, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (config.base_dir / path).resolve()


# ----- reading what a command wrote (for figures) --------------------------------------


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object a command wrote; {} when it is absent or unreadable."""
    import orjson

    try:
        value = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def count_lines(path: Path) -> int:
    """Lines in ``path``; 0 when it does not exist (a run that rejected nothing)."""
    if not path.exists():
        return 0
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


def dataset_counts(data: Path) -> dict[str, Any]:
    """The row counts of a dataset's manifest (``DATA.manifest.json`` beside a file, or
    ``DATA/manifest.json`` in a directory): rows, train, valid, eval."""
    manifest = read_json(data.with_name(data.name + ".manifest.json")) or read_json(
        data / "manifest.json"
    )
    counts = manifest.get("counts", {})
    return {k: v for k, v in counts.items() if k.startswith(("rows", "train", "valid", "eval"))}


# ----- planning a stage -----------------------------------------------------------------


def plan_stage(
    config: PipelineConfig,
    stage: str,
    workdir: Path,
    done: dict[str, Artifact],
    commands: click.Group,
) -> StagePlan:
    kind = config.kind(stage)
    ctx = Planning(config, stage, kind, workdir, done, commands, dry_run=DRY_RUN.get())
    return stage_kind(kind).plan(ctx, dict(config.stages[stage].options))


def finished_artifact(plan: StagePlan) -> Artifact:
    """What the stage made, read back from its own outputs once it has run."""
    return stage_kind(plan.kind).finished(plan)
