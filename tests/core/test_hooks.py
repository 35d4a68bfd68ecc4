"""Every hook, called as core calls it, with plugins registered in-process: one test
named ``test_hook_X`` per hook ``hegelion_X`` (tests/core/test_docs.py checks it)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from hegelion_core.hookspecs import hookimpl
from hegelion_core.plugins import get_plugin_manager
from tests.conftest import EXAMPLES


class RunRecorder:
    """Every run-started and run-finished this process fires, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    @hookimpl
    def hegelion_run_started(self, command: str, config: dict[str, Any]) -> None:
        self.events.append(("started", command, config))

    @hookimpl
    def hegelion_run_finished(
        self, command: str, summary: dict[str, Any], error: str | None
    ) -> None:
        self.events.append(("finished", command, summary, error))


@pytest.fixture
def runs() -> RunRecorder:
    recorder = RunRecorder()
    get_plugin_manager().register(recorder, name="run-recorder")
    return recorder


def _simplex(run_cli, tmp_path: Path) -> tuple[str, Any]:
    pytest.importorskip("hegelion_simplex")
    out = tmp_path / "cal"
    run_cli(
        "simplex", "generate", "--stage", "calibration", "-n", "4", "--eval-n", "2", "--out", out
    )
    return (
        "simplex generate",
        lambda config, summary: (
            config["stage"] == "calibration"
            and config["n"] == 4
            and config["out"] == str(out)
            and summary["counts"]["eval"] == 2
        ),
    )


def _run(run_cli, tmp_path: Path) -> tuple[str, Any]:
    shutil.copy(EXAMPLES / "traces.jsonl", tmp_path / "traces.jsonl")
    pipeline = tmp_path / "pipe.yaml"
    pipeline.write_text(
        f"name: demo\nworkdir: {tmp_path / 'w'}\n"
        "stages:\n  format: {format: sft, input: traces.jsonl}\n"
    )
    run_cli("run", pipeline)
    # The stage itself is `hegelion dataset` in a process of its own, which fires its own pair.
    return (
        "run",
        lambda config, summary: (
            config["name"] == "demo"
            and config["stage"] is None
            and [s["stage"] for s in summary["stages"]] == ["format"]
        ),
    )


def _dataset(run_cli, tmp_path: Path) -> tuple[str, Any]:
    run_cli("dataset", EXAMPLES / "traces.jsonl", tmp_path / "o.jsonl", "--format", "sft")
    return "dataset", lambda config, summary: config["format"] == "sft" and summary["records"] == 12


def _curate(run_cli, tmp_path: Path) -> tuple[str, Any]:
    run_cli("curate", EXAMPLES / "traces.jsonl", "-o", tmp_path / "c.jsonl")
    return "curate", lambda config, summary: summary["filters"][0]["rows_in"] == 12


def _generate(run_cli, tmp_path: Path) -> tuple[str, Any]:
    from hegelion_core.data.prompt_sources.file import FilePromptSource
    from hegelion_core.generation.generate import GenerateJob, run_generate
    from tests.core.teachers import RuleTeacher

    (tmp_path / "prompts.txt").write_text("one?\ntwo?\n")
    job = GenerateJob(output=tmp_path / "t.jsonl", backoff_base=0.0)
    run_generate(
        job, RuleTeacher(), FilePromptSource({"path": tmp_path / "prompts.txt"}), progress=False
    )
    return (
        "generate",
        lambda config, summary: config["teacher"] == "rule" and summary["written"] == 2,
    )


@pytest.mark.parametrize(
    "command",
    [_simplex, _run, _dataset, _curate, _generate],
    ids=["simplex generate", "run", "dataset", "curate", "generate"],
)
def test_hook_run_started(command, runs: RunRecorder, run_cli, tmp_path: Path) -> None:
    """Each command fires run-started before its work and run-finished after it, once."""
    name, fits = command(run_cli, tmp_path)
    assert [e[:2] for e in runs.events] == [("started", name), ("finished", name)]
    (_, _, config), (_, _, summary, error) = runs.events
    assert error is None and fits(config, summary), runs.events


def test_hook_run_finished(
    runs: RunRecorder, run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command that fails still fires run-finished, with the error's message: here
    `hegelion eval` whose model's teacher plugin is left out."""
    data = tmp_path / "eval.jsonl"
    data.write_text("")
    monkeypatch.setenv("HEGELION_PLUGINS", "hegelion-core")
    result = run_cli(
        "eval",
        "--model",
        tmp_path / "model-dir",
        "--suite",
        "calibration",
        "--data",
        data,
        "--out",
        tmp_path / "o",
        ok=False,
    )
    assert result.exit_code == 1
    assert [e[:2] for e in runs.events] == [("started", "eval"), ("finished", "eval")]
    (_, _, config), (_, _, summary, error) = runs.events
    assert config["suite"] == "calibration" and summary == {}
    assert error is not None and "teacher 'transformers'" in error and "hegelion-trl" in error


def test_hook_transform_record() -> None:
    """Transforms chain through pluggy's calling path: tryfirst goes first, and a wrapper
    runs once around the whole chain, seeing the record as it came and the chain's result."""
    from hegelion_core import hooks
    from hegelion_core.testing import sample_records

    record = sample_records()[0]
    seen: list[Any] = []

    class Upper:
        @hookimpl
        def hegelion_transform_record(self, record):
            return record.model_copy(update={"system": record.system.upper()})

    class First:
        @hookimpl(tryfirst=True)
        def hegelion_transform_record(self, record):
            return record.model_copy(update={"system": record.system + "!"})

    class Around:
        @hookimpl(wrapper=True)
        def hegelion_transform_record(self, record):
            seen.append(record.system)
            result = yield
            seen.append([r.system for r in result])
            return [result[0].model_copy(update={"system": result[0].system + " [checked]"})]

    pm = get_plugin_manager()
    pm.register(First(), name="first")  # registered first, called first all the same
    pm.register(Upper(), name="upper")
    pm.register(Around(), name="around")
    expected = (record.system + "!").upper()
    assert hooks.transform_record(record).system == expected + " [checked]"
    assert seen == [record.system, [expected]]  # once, around the whole chain


def test_hook_register_commands(run_cli) -> None:
    """Each plugin adds its commands through pluggy's calling path: one that raises is
    reported and the others still add theirs, and a wrapper runs once around them all."""
    import click

    from hegelion_core import hooks

    seen: list[Any] = []

    class Good:
        @hookimpl
        def hegelion_register_commands(self, cli):
            @cli.command("good-one")
            def good_one() -> None:
                click.echo("good")

    class Bad:
        @hookimpl
        def hegelion_register_commands(self, cli):
            raise RuntimeError("boom")

    class Around:
        @hookimpl(wrapper=True)
        def hegelion_register_commands(self, cli):
            seen.append("good-one" in cli.commands)
            yield
            seen.append("good-one" in cli.commands)

    pm = get_plugin_manager()
    for plugin in (Good(), Bad(), Around()):
        pm.register(plugin, name=type(plugin).__name__.lower())
    group = click.Group("g")
    failed = hooks.register_commands(group)
    assert [(name, str(exc)) for name, exc in failed] == [("bad", "boom")]
    assert seen == [False, True]
    assert run_cli("good-one").output == "good\n"

    class BrokenAround:
        @hookimpl(wrapper=True)
        def hegelion_register_commands(self, cli):
            raise RuntimeError("no")
            yield

    pm.register(BrokenAround(), name="broken-around")
    failed = hooks.register_commands(click.Group("g2"))
    assert [(name, str(exc)) for name, exc in failed] == [("around, broken-around", "no")]


def _admitted_by_generate(tmp_path: Path) -> list[str]:
    from hegelion_core.data.prompt_sources.file import FilePromptSource
    from hegelion_core.generation.generate import GenerateJob, run_generate
    from tests.core.teachers import RuleTeacher

    (tmp_path / "prompts.txt").write_text("one?\ntwo?\n")
    job = GenerateJob(output=tmp_path / "t.jsonl", backoff_base=0.0)
    run_generate(
        job, RuleTeacher(), FilePromptSource({"path": tmp_path / "prompts.txt"}), progress=False
    )
    return [line for line in (tmp_path / "t.jsonl").read_text().splitlines() if line]


def _admitted_by_dataset(tmp_path: Path) -> list[str]:
    from click.testing import CliRunner

    from hegelion_core.cli import cli

    out = tmp_path / "o.jsonl"
    result = CliRunner().invoke(
        cli, ["dataset", str(EXAMPLES / "traces.jsonl"), str(out), "--format", "sft"]
    )
    assert result.exit_code == 0, result.output
    return out.read_text().splitlines()


@pytest.mark.parametrize(
    "admitted_by", [_admitted_by_generate, _admitted_by_dataset], ids=["generate", "dataset"]
)
def test_hook_accept_record(admitted_by, tmp_path: Path) -> None:
    """Generation and `hegelion dataset` admit a record in one order: the transforms
    first, then the votes, on the transformed record."""
    votes: list[str] = []

    class Redact:
        @hookimpl
        def hegelion_transform_record(self, record):
            return record.model_copy(update={"system": "Redacted."})

    class OnlyRedacted:
        @hookimpl
        def hegelion_accept_record(self, record):
            votes.append(record.system)
            return record.system == "Redacted."

    get_plugin_manager().register(Redact(), name="redact")
    get_plugin_manager().register(OnlyRedacted(), name="only-redacted")
    rows = admitted_by(tmp_path)
    assert rows and all("Redacted." in row for row in rows)
    assert votes and set(votes) == {"Redacted."}


def test_hook_record_written(tmp_path: Path) -> None:
    """Generation tells plugins about each record it appended, once it is on disk."""
    seen: list[tuple[str, Path, bool]] = []

    class Plugin:
        @hookimpl
        def hegelion_record_written(self, record, path):
            on_disk = f'"prompt_id":"{record.prompt_id}"'.encode() in path.read_bytes()
            seen.append((record.instruction, path, on_disk))

    get_plugin_manager().register(Plugin(), name="p")
    rows = _admitted_by_generate(tmp_path)
    assert len(rows) == 2
    assert sorted(seen) == [
        ("one?", tmp_path / "t.jsonl", True),
        ("two?", tmp_path / "t.jsonl", True),
    ]


def test_hook_train_metrics(tmp_path: Path) -> None:
    """A trainer's metrics reach plugins after they are in metrics.jsonl, numbers only."""
    import json

    from hegelion_core.training.metrics import MetricsLog

    seen: list[tuple[int, dict[str, float], int]] = []
    log = MetricsLog(tmp_path)

    class Plugin:
        @hookimpl
        def hegelion_train_metrics(self, step, metrics):
            seen.append((step, metrics, len(log.path.read_text().splitlines())))

    get_plugin_manager().register(Plugin(), name="p")
    log.log(1, {"loss": 2.5, "learning_rate": 1e-4, "note": "warmup"})  # type: ignore[dict-item]
    log.log(2, {"loss": 2})
    assert seen == [(1, {"loss": 2.5, "learning_rate": 1e-4}, 1), (2, {"loss": 2.0}, 2)]
    assert json.loads(log.path.read_text().splitlines()[1]) == {"step": 2, "loss": 2.0}
