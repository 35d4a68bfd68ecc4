"""Core's stage kinds: generate, curate, format, train, export, eval.

Registered in core's pyproject.toml under ``hegelion.stage_kinds``, exactly as a plugin
registers its own (hegelion-simplex's ``simplex``). Each says which command it runs, what
it hands on (``provides``), and which figures its outputs report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import yaml

from hegelion_core.contracts import StageKind
from hegelion_core.defaults import DEFAULT_EXPORTER
from hegelion_core.generation.generate import ExitCode
from hegelion_core.pipeline.stages import (
    Artifact,
    Invocation,
    Planning,
    StageFailed,
    StagePlan,
    count_lines,
    dataset_counts,
    read_json,
)


class GenerateStage(StageKind):
    """``hegelion generate``: trace records from a teacher, topped up on every rerun."""

    name = "generate"
    provides: ClassVar[dict[str, str]] = {"traces": "traces"}
    #: Some prompts rejected, the others written, is success; anything else is not.
    ok_exit = (ExitCode.OK, ExitCode.SOME_REJECTED)
    tops_up = True
    _FAILED: ClassVar[dict[int, str]] = {
        ExitCode.ALL_REJECTED: "rejected every prompt it tried and wrote nothing",
        ExitCode.STOPPED: "stopped early (a bad key, its failure breaker, or a Retry-After past the cap)",
        ExitCode.INTERRUPTED: "was interrupted",
        ExitCode.TERMINATED: "was terminated",
    }

    def plan(self, ctx: Planning, options: dict[str, Any]) -> StagePlan:
        from hegelion_core.generation.generate import GenerateJob

        if options.get("batch"):  # it would exit 0 with the jobs in flight, no records yet
            raise ctx.error(
                "batch",
                "a pipeline stage cannot wait for a batch run",
                hint="run `hegelion generate --batch -o OUT ...` and `hegelion batch collect "
                "OUT --wait` outside the pipeline, then give a curate or format stage `input: OUT`",
            )
        traces = ctx.workdir / "traces.jsonl"
        argv = [
            "generate",
            "--output",
            str(traces),
            *ctx.argv(ctx.command("generate"), options, reserved={"output"}),
        ]
        given = options.get("rejects")
        rejects = GenerateJob(output=traces, rejects=ctx.path(str(given)) if given else None)
        return ctx.plan(
            [Invocation(argv)],
            {"traces": str(traces), "rejects": str(rejects.rejects_path)},
            resume=True,
        )

    def figures(self, plan: StagePlan) -> dict[str, Any]:
        return {
            "records": count_lines(Path(plan.artifact["traces"])),
            "rejected": count_lines(Path(plan.artifact["rejects"])),
        }

    def check(self, plan: StagePlan, figures: dict[str, Any]) -> None:
        if not figures["records"]:
            raise StageFailed(
                f"`hegelion generate` wrote no records ({figures['rejected']} "
                f"rejected, see {plan.artifact['rejects']})"
            )

    def failure(self, status: int) -> str:
        return self._FAILED.get(status, "failed")


class CurateStage(StageKind):
    """``hegelion curate``: the quality gate between generate and format. Its output is
    trace records, read by a format (or another curate) stage like a generate stage's."""

    name = "curate"
    provides: ClassVar[dict[str, str]] = {"traces": "traces"}

    def plan(self, ctx: Planning, options: dict[str, Any]) -> StagePlan:
        given = options.pop("input", None)
        if given is None:
            sources = [ctx.input("traces", usual="generate or curate")]
        else:
            sources = [
                str(ctx.path(str(p))) for p in (given if isinstance(given, list) else [given])
            ]
        out = ctx.workdir / "curated.jsonl"
        argv = [
            "curate",
            *sources,
            "--output",
            str(out),
            "--quiet",
            *ctx.argv(ctx.command("curate"), options, reserved={"output"}),
        ]
        return ctx.plan([Invocation(argv)], {"traces": str(out)}, inputs=[Path(s) for s in sources])

    def figures(self, plan: StagePlan) -> dict[str, Any]:
        """Rows in and out, and the rows dropped, in all and by reason (``OUT.manifest.json``)."""
        out = Path(plan.artifact["traces"])
        manifest = read_json(out.with_name(out.name + ".manifest.json"))
        counts = manifest.get("counts", {})
        figures = {
            "rows_in": counts.get("lines"),
            "rows_out": counts.get("rows_out"),
            "dropped": counts.get("dropped"),
        }
        by_reason: dict[str, int] = {}
        for report in manifest.get("filters") or []:
            for reason, n in (report.get("dropped") or {}).items():
                by_reason[reason] = by_reason.get(reason, 0) + n
        if by_reason:
            figures["dropped_by"] = by_reason
        return {k: v for k, v in figures.items() if v is not None}


class FormatStage(StageKind):
    """``hegelion dataset``: trace records (a generate or curate stage's) to training rows."""

    name = "format"
    provides: ClassVar[dict[str, str]] = {"dataset": "data"}

    def plan(self, ctx: Planning, options: dict[str, Any]) -> StagePlan:
        given = options.pop("input", None)
        source = (
            str(ctx.path(given))
            if given is not None
            else ctx.input("traces", usual="generate or curate")
        )
        fmt = options.get("format", "sft")
        split = (
            any(k in options for k in ("valid_ratio", "test_ratio")) or options.get("to") == "hf"
        )
        out = ctx.workdir / ("data" if split else f"{fmt}.jsonl")
        argv = [
            "dataset",
            source,
            str(out),
            "--quiet",
            *ctx.argv(ctx.command("dataset"), {"format": fmt, **options}),
        ]
        return ctx.plan([Invocation(argv)], {"data": str(out)}, inputs=[Path(source)])

    def figures(self, plan: StagePlan) -> dict[str, Any]:
        return dataset_counts(Path(plan.artifact["data"]))


class TrainStage(StageKind):
    """``hegelion train``: a dataset to an adapter; an interrupted run resumes."""

    name = "train"
    provides: ClassVar[dict[str, str]] = {"adapter": "adapter", "model": "model"}

    def plan(self, ctx: Planning, options: dict[str, Any]) -> StagePlan:
        given = options.pop("input", None)
        data = str(ctx.path(given)) if given else ctx.input("dataset", usual="format")
        base = (
            ctx.model("model", str(options.pop("model")))["model"] if "model" in options else None
        )
        settings = options.pop("config", None)
        overrides: dict[str, Any] = {}
        inputs = [Path(data)]
        if (init := options.pop("init_adapter", None)) is not None:
            prior = ctx.model("init_adapter", str(init))
            overrides["init_adapter"] = prior.get("adapter", prior["model"])
            base = base or prior.get("base")
            # Hashed as an input: `--set init_adapter=PATH` is no path in the argv, and a
            # retrained adapter (SFT before GRPO, a Simplex stage) must rerun this stage.
            inputs.append(Path(overrides["init_adapter"]))
        argv = ["train", "--data", data, "--output", str(ctx.workdir)]
        if base:
            argv += ["--model", base]
        if isinstance(settings, dict):
            path = ctx.workdir.parent / ".configs" / f"{ctx.stage}.yaml"
            if not ctx.dry_run:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
            argv += ["--config", str(path)]
        elif settings is not None:
            argv += ["--config", str(ctx.path(str(settings)))]
        for key, value in overrides.items():
            argv += ["--set", f"{key}={value}"]
        argv += ctx.argv(ctx.command("train"), options, reserved={"data", "output", "resume"})
        artifact = {
            "adapter": str(ctx.workdir / "adapter"),
            "model": str(ctx.workdir / "adapter"),
            "base": base or "",
            "merged": str(ctx.workdir / "merged"),
        }
        return ctx.plan(
            [Invocation(argv)],
            artifact,
            resume=True,
            inputs=inputs + ([Path(base)] if base and Path(base).exists() else []),
        )

    def figures(self, plan: StagePlan) -> dict[str, Any]:
        """Loss, steps and speed; for GRPO also each reward's mean at the first and the
        last logged step (``format_first``, ``format_last``), what the run changed."""
        metrics = read_json(plan.workdir / "manifest.json").get("metrics", {})
        figures = {
            k: round(v, 4)
            for k, v in metrics.items()
            if k in ("train_loss", "steps", "tokens_per_s", "runtime_s")
        }
        return figures | reward_span(plan.workdir / "metrics.jsonl")

    def resume(self, plan: StagePlan) -> None:
        if (plan.workdir / "checkpoints").is_dir():
            plan.invocations[0].argv.append("--resume")

    def finished(self, plan: StagePlan) -> Artifact:
        artifact = dict(plan.artifact)
        if not Path(artifact["merged"]).is_dir():
            artifact.pop("merged")
        return artifact


def reward_span(metrics_jsonl: Path) -> dict[str, float]:
    """``{NAME_first, NAME_last}`` of each ``rewards/NAME/mean`` TRL's GRPO logged (rows
    without it, such as the closing summary, skipped); {} for SFT or no metrics file."""
    import orjson

    try:
        lines = metrics_jsonl.read_bytes().splitlines()
    except OSError:
        return {}
    seen: dict[str, list[float]] = {}
    for line in lines:
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:  # a torn last line (kill -9 mid-append)
            continue
        if not isinstance(row, dict):
            continue
        for key, value in row.items():
            name = key.removeprefix("rewards/").removesuffix("/mean")
            if key == f"rewards/{name}/mean" and isinstance(value, (int, float)):
                seen.setdefault(name, []).append(float(value))
    out: dict[str, float] = {}
    for name, values in seen.items():
        out[f"{name}_first"], out[f"{name}_last"] = round(values[0], 4), round(values[-1], 4)
    return out


class ExportStage(StageKind):
    """``hegelion export EXPORTER``: a train stage's adapter on its base to a GGUF (or
    another exporter's output)."""

    name = "export"
    provides: ClassVar[dict[str, str]] = {"model": "model"}

    def plan(self, ctx: Planning, options: dict[str, Any]) -> StagePlan:
        exporter = str(options.pop("exporter", DEFAULT_EXPORTER))
        _, trained = ctx.upstream("adapter", usual="train")
        argv = [
            "export",
            exporter,
            "--model",
            trained["base"],
            "--adapter",
            trained["adapter"],
            "--out",
            str(ctx.workdir),
        ]
        options.setdefault("name", ctx.config.name)
        argv += ctx.argv(
            ctx.command("export", exporter), options, reserved={"model", "adapter", "out"}
        )
        return ctx.plan(
            [Invocation(argv)],
            {"export_dir": str(ctx.workdir), "name": str(options["name"])},
            inputs=[Path(trained["adapter"])],
        )

    def figures(self, plan: StagePlan) -> dict[str, Any]:
        w = plan.workdir
        report = read_json(w / "report.json") or read_json(w / "manifest.json").get("report", {})
        figures: dict[str, Any] = {
            "quantization": report.get("quantization"),
            "verified": report.get("passed"),
        }
        for check in report.get("checks", []):
            for key in ("agreement", "max_abs_diff"):
                if key in check.get("figures", {}):
                    figures[f"{check['name']}_{key}"] = round(check["figures"][key], 4)
        return {k: v for k, v in figures.items() if v is not None}

    def expected(self, plan: StagePlan) -> Artifact:
        gguf = str(plan.workdir / f"{plan.artifact['name']}.gguf")  # its real name has the quant
        return {**plan.artifact, "gguf": gguf, "model": gguf}

    def finished(self, plan: StagePlan) -> Artifact:
        artifact = dict(plan.artifact)
        ggufs = sorted(p for p in plan.workdir.glob("*.gguf") if "adapter" not in p.name.lower())
        if ggufs:
            # The smallest is the quantized model the user asked for (f16 stays beside it).
            artifact["gguf"] = str(min(ggufs, key=lambda p: p.stat().st_size))
            artifact["model"] = artifact["gguf"]
        if (modelfile := plan.workdir / "Modelfile").is_file():
            artifact["modelfile"] = str(modelfile)
        return artifact


class EvalStage(StageKind):
    """``hegelion eval``, once per model of ``models:`` (default: the nearest earlier
    export or train stage)."""

    name = "eval"
    provides: ClassVar[dict[str, str]] = {"results": "results"}
    side_by_side: ClassVar[bool] = True

    def plan(self, ctx: Planning, options: dict[str, Any]) -> StagePlan:
        models = options.pop("models", None)
        if models is None:
            name, _ = ctx.upstream("model", usual="export or train")
            models = {"trained": f"stage:{name}"}
        if not isinstance(models, dict) or not models:
            raise ctx.error(
                "models",
                "expected a mapping of label: model",
                hint="models: {before: 'packaged:smollm2', after: 'stage:export'}",
            )
        if "data" not in options:
            options["data"] = ctx.input("eval_items")
        common = ctx.argv(ctx.command("eval"), options, reserved={"model", "adapter", "out"})
        invocations = []
        for label, ref in models.items():
            target = ctx.model(f"models.{label}", str(ref))
            argv = ["eval", "--out", str(ctx.workdir / label), *common]
            if "gguf" in target:  # an export stage: its quantized GGUF
                argv += ["--model", target["gguf"]]
            elif target.get("base"):  # a train stage: its adapter on its base
                argv += ["--model", target["base"], "--adapter", target["adapter"]]
            else:
                argv += ["--model", target["model"]]
            invocations.append(Invocation(argv, label=str(label)))
        return ctx.plan(invocations, {"results": str(ctx.workdir)})

    def figures(self, plan: StagePlan) -> dict[str, Any]:
        return {
            inv.label: read_json(plan.workdir / inv.label / "results.json").get("metrics", {})
            for inv in plan.invocations
        }
