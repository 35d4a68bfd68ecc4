"""Run a pipeline: each stage in its own process, skipped when nothing it depends on changed.

A stage is done when ``WORKDIR/STAGE/stage.json`` exists: it is written last, atomically,
with a fingerprint of the stage's argv and the content of its inputs. A rerun skips a
stage whose fingerprint is unchanged, resumes one that was interrupted (``generate``
continues its output file, ``train`` its last checkpoint) and starts afresh one whose
fingerprint changed.

The pipeline deletes nothing. It marks each stage directory it creates (``.started``,
holding the fingerprint, before anything else is written there), writes only into
directories so marked, and starting a stage afresh moves its old directory aside to
``STAGE.prev-TIMESTAMP``. A directory of a stage's name that it did not make is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from pydantic import Field

from hegelion_core import secrets
from hegelion_core.contracts import StageKind
from hegelion_core.data.jsonl import atomic_output, dumps
from hegelion_core.defaults import GGUF_TEACHER
from hegelion_core.errors import HegelionError
from hegelion_core.pipeline.config import PipelineConfig
from hegelion_core.pipeline.side_by_side import Job, Run, cpu_shares, run_side_by_side
from hegelion_core.pipeline.stages import (
    DRY_RUN,
    Artifact,
    StageFailed,
    StagePlan,
    finished_artifact,
    plan_stage,
    stage_kind,
)
from hegelion_core.records import FileDigest, StageManifest

RECORD = "stage.json"
STARTED = ".started"  # the pipeline's mark on a stage directory it made: the fingerprint
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


class StageRecord(StageManifest):
    """``stage.json``: the stage's manifest plus what a rerun needs to decide to skip it."""

    kind: str
    fingerprint: str
    commands: list[list[str]]
    artifact: dict[str, str]
    figures: dict[str, Any] = Field(default_factory=dict)
    runs: list[Run] = Field(default_factory=list)
    elapsed_s: float


def workdir_of(config: PipelineConfig) -> Path:
    return (config.workdir or Path("runs") / config.name).resolve()


def _digest(path: Path, exclude: Path) -> list[FileDigest]:
    """Content digests of an input (not of the stage's own output directory)."""
    if not path.exists() or path.resolve().is_relative_to(exclude):
        return []
    return FileDigest.under(path)


def fingerprint(plan: StagePlan) -> tuple[str, list[FileDigest]]:
    """The argv and the content of every input path in it (the stage's own dir excluded).

    The argv is hashed masked: a rotated API key is the same stage, not a rerun."""
    paths = {Path(a) for inv in plan.invocations for a in inv.argv if a.startswith("/")}
    paths |= set(plan.inputs)
    digests = [d for p in sorted(paths) for d in _digest(p, plan.workdir.resolve())]
    h = hashlib.sha256(
        dumps(
            {
                "kind": plan.kind,
                "argv": [secrets.mask_argv(i.argv) for i in plan.invocations],
                "inputs": [(d.path, d.sha256) for d in digests],
            }
        )
    )
    return h.hexdigest(), digests


def read_record(workdir: Path) -> StageRecord | None:
    path = workdir / RECORD
    if not path.is_file():
        return None
    try:
        return StageRecord.model_validate_json(path.read_bytes())
    except ValueError:
        return None


def figures_of(plan: StagePlan) -> dict[str, Any]:
    """The few numbers worth a line in the summary, read by the stage's kind from the
    command's own outputs."""
    return stage_kind(plan.kind).figures(plan)


def redacted(argv: list[str]) -> list[str]:
    """argv fit for logs, the dry run and stage.json: every secret masked
    (`hegelion_core.secrets.mask_argv`: ``api_key=***``, JSON values, URL passwords)."""
    return secrets.mask_argv(argv)


def _redacted_options(options: Any) -> Any:
    return secrets.redact(options)


def _hegelion(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command line of ``hegelion ARGV`` and the environment its secrets travel in
    (never its argv: `ps` shows argv to all)."""
    sealed, env = secrets.seal_argv(argv)
    return [sys.executable, "-m", "hegelion_core", *sealed], env


def _run_command(argv: list[str], echo: Callable[[str], None], kind: StageKind) -> None:
    cmd, env = _hegelion(argv)
    echo("  $ hegelion " + " ".join(redacted(argv)))
    proc = subprocess.Popen(cmd, env=os.environ | env if env else None)
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        # The child got the same Ctrl-C (one process group); give it time to close its files.
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        raise
    if rc not in kind.ok_exit:
        raise StageFailed(f"`hegelion {argv[0]}` {kind.failure(rc)} (exit status {rc})")


def _run_commands(plan: StagePlan, echo: Callable[[str], None], kind: StageKind) -> list[Run]:
    """Every command of the stage: side by side on shares of the cores where the kind
    allows it and there are cores enough (`hegelion_core.pipeline.side_by_side`), else
    one after the other. Returns each command's window."""
    invocations = plan.invocations
    shares = cpu_shares(len(invocations)) if kind.side_by_side and len(invocations) > 1 else None
    if shares is None:
        runs = []
        t0 = time.monotonic()
        for inv in invocations:
            started = time.monotonic() - t0
            _run_command(inv.argv, echo, kind)
            runs.append(
                Run(label=inv.label, started_s=started, elapsed_s=time.monotonic() - t0 - started)
            )
        return runs
    jobs = []
    for i, inv in enumerate(invocations):
        cmd, env = _hegelion(inv.argv)
        label = inv.label or str(i + 1)
        echo(f"  $ hegelion {' '.join(redacted(inv.argv))}  [{label}]")
        jobs.append(Job(label, cmd, env))
    echo(
        f"  {len(jobs)} commands, {len(shares)} at a time, each on its own CPUs: "
        + "; ".join(",".join(map(str, share)) for share in shares)
    )
    runs = run_side_by_side(jobs, shares)
    for inv, run in zip(invocations, runs, strict=True):
        if run.returncode not in kind.ok_exit:
            raise StageFailed(
                f"`hegelion {inv.argv[0]}` [{run.label}] {kind.failure(run.returncode)} "
                f"(exit status {run.returncode})"
            )
    return runs


def plan_pipeline(config: PipelineConfig, commands: click.Group) -> list[StagePlan]:
    """Every stage's commands, checked against the flags of the commands in ``commands``
    (the ``hegelion`` root group), without running any."""
    token = DRY_RUN.set(True)
    try:
        done: dict[str, Artifact] = {}
        plans = []
        for name in config.stages:
            plan = plan_stage(config, name, workdir_of(config) / name, done, commands)
            done[name] = stage_kind(plan.kind).expected(plan)
            plans.append(plan)
        return plans
    finally:
        DRY_RUN.reset(token)


def run_pipeline(
    config: PipelineConfig,
    commands: click.Group,
    *,
    only: str | None = None,
    force_all: bool = False,
    echo: Callable[[str], None] = print,
) -> list[StageRecord]:
    """Run (or skip) each stage in order; return every stage's record.

    ``only`` runs that stage even when unchanged, in place (generate tops up, train
    resumes); ``force_all`` starts every stage afresh, its old directory moved aside.
    """
    if only is not None and only not in config.stages:
        raise HegelionError(
            f"--stage {only}: no such stage; the stages are {', '.join(config.stages)}"
        )
    root = workdir_of(config)
    with _writing(config, root):
        root.mkdir(parents=True, exist_ok=True)
    done: dict[str, Artifact] = {}
    records: list[StageRecord] = []
    names = list(config.stages)
    for i, name in enumerate(names, 1):
        workdir = root / name
        head = f"[{i}/{len(names)}] {name}"
        if only is not None and name != only:
            if (previous := read_record(workdir)) is not None and previous.stage == name:
                done[name] = previous.artifact
                records.append(previous)
            continue
        held = held_fingerprint(workdir, name)
        previous = read_record(workdir) if held is not None else None
        previous = previous if previous is not None and previous.stage == name else None
        plan = plan_stage(config, name, workdir, done, commands)
        kind = stage_kind(plan.kind)
        fp, digests = fingerprint(plan)
        if previous is not None and previous.fingerprint == fp and not force_all and only != name:
            echo(f"{head}: unchanged, skipped ({previous.elapsed_s:.0f}s when it ran)")
            done[name] = previous.artifact
            records.append(previous)
            continue
        # generate (a kind that tops up) keeps what it has and adds to it, whatever changed;
        # the others continue in place only what they made with this very fingerprint.
        afresh = force_all or (not kind.tops_up and held not in (None, fp))
        resuming = plan.resume and not afresh and held == fp and previous is None
        with _writing(config, workdir):
            if afresh and _has_output(workdir):
                aside = _move_aside(workdir)
                echo(f"{head}: starting afresh; its previous output is now in {aside}")
            workdir.mkdir(exist_ok=True)
            with atomic_output(workdir / STARTED) as tmp:  # the mark, before anything else
                tmp.write_text(fp)
            (workdir / RECORD).unlink(missing_ok=True)
        if not afresh:
            kind.resume(plan)  # train: --resume when it has checkpoints
        echo(f"{head}: {'resuming' if resuming else 'running'} {plan.kind}")
        t0 = time.monotonic()
        try:
            runs = _run_commands(plan, echo, kind)
            figures = kind.figures(plan)
            kind.check(plan, figures)  # generate: a stage with no records is not done
        except StageFailed as exc:
            raise StageFailed(
                f"stage {name}: {exc}; it is not done. Rerun `hegelion run "
                f"{config.source}` to resume it once the cause is fixed"
            ) from None
        artifact = finished_artifact(plan)
        record = StageRecord(
            stage=name,
            kind=plan.kind,
            fingerprint=fp,
            inputs=digests,
            outputs=sorted(v for v in artifact.values() if v.startswith("/")),
            config=_redacted_options(dict(config.stages[name].options)),
            commands=[redacted(inv.argv) for inv in plan.invocations],
            artifact=artifact,
            figures=figures,
            runs=runs,
            versions=_versions(),
            elapsed_s=time.monotonic() - t0,
        )
        with _writing(config, workdir), atomic_output(workdir / RECORD) as tmp:
            tmp.write_bytes(dumps(record.model_dump(mode="json")))
        echo(f"{head}: done in {record.elapsed_s:.0f}s {_brief(record.figures)}".rstrip())
        done[name] = artifact
        records.append(record)
    return records


def held_fingerprint(workdir: Path, stage: str) -> str | None:
    """The fingerprint of what ``workdir`` holds; None when it is absent or empty.

    Raises when the directory is not one the pipeline made: neither a ``stage.json`` of
    this stage nor the ``.started`` mark in it (the pipeline writes that first, into a
    directory it just created, so an interrupted stage has it too).
    """
    if not workdir.exists() and not workdir.is_symlink():
        return None
    if workdir.is_dir() and not workdir.is_symlink():
        record = read_record(workdir)
        if record is not None and record.stage == stage:
            return record.fingerprint
        started = workdir / STARTED
        if started.is_file() and _FINGERPRINT.fullmatch(mark := started.read_text().strip()):
            return mark
        # Empty, or only a temporary of the mark (a kill while it was written): nothing to lose.
        if all(p.name.startswith(f".{STARTED}.tmp-") for p in workdir.iterdir()):
            return None
    raise StageFailed(
        f"{workdir} exists and was not made by `hegelion run` (it has no {RECORD} or {STARTED} "
        f"of stage {stage!r}); it is left as it is. Move it away, or set `workdir:` to another "
        "directory, and rerun"
    )


def _has_output(workdir: Path) -> bool:
    return workdir.is_dir() and any(p.name != STARTED for p in workdir.iterdir())


def _move_aside(workdir: Path) -> Path:
    """Rename a stage directory to ``NAME.prev-TIMESTAMP`` beside it (never over another)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = workdir.with_name(f"{workdir.name}.prev-{stamp}")
    n = 1
    while target.exists() or target.is_symlink():
        n += 1
        target = workdir.with_name(f"{workdir.name}.prev-{stamp}-{n}")
    workdir.rename(target)
    return target


@contextlib.contextmanager
def _writing(config: PipelineConfig, path: Path) -> Iterator[None]:
    """A work directory that cannot be written is the user's to fix: say where and how."""
    try:
        yield
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        raise HegelionError(
            f"cannot write the work directory {path} ({exc.strerror or exc}{where})\n"
            f"  hint: set `workdir:` in {config.source}, or pass -c workdir=PATH, to a directory "
            "you can write"
        ) from None


def _brief(figures: dict[str, Any]) -> str:
    return " ".join(f"{k}={_num(v)}" for k, v in figures.items() if not isinstance(v, dict))


def _versions() -> dict[str, str]:
    from importlib.metadata import distributions

    return {
        d.metadata["Name"]: d.version
        for d in distributions()
        if (d.metadata["Name"] or "").lower().startswith("hegelion")
    }


def summary(config: PipelineConfig, records: list[StageRecord]) -> list[str]:
    """The closing lines: each stage's output and figures, and how to talk to the result."""
    lines = [f"pipeline {config.name}: {workdir_of(config)}"]
    for r in records:
        main = (
            r.artifact.get("gguf")
            or r.artifact.get("adapter")
            or r.artifact.get("data")
            or r.artifact.get("traces")
            or r.artifact.get("results")
            or ""
        )
        lines.append(f"  {r.stage:<12} {main}")
        for key, value in r.figures.items():
            if isinstance(value, dict):
                shown = ", ".join(
                    f"{k} {_num(v)}" for k, v in value.items() if not isinstance(v, (dict, list))
                )
                lines.append(f"  {'':<12}   {key}: {shown}")
            else:
                lines.append(f"  {'':<12}   {key}: {_num(value)}")
    export = next((r for r in reversed(records) if "gguf" in r.artifact), None)
    if export is not None:
        lines.append("chat with it:")
        lines.append(
            f'  hegelion dialectic "Is free will compatible with determinism?" '
            f"--teacher {GGUF_TEACHER} -t model_path={export.artifact['gguf']}"
        )
        if "modelfile" in export.artifact:
            name = export.artifact.get("name", config.name)
            lines.append(
                f"  ollama create {name} -f {export.artifact['modelfile']} && ollama run {name}"
            )
    return lines


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
