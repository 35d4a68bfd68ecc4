"""Plugins: a third-party teacher installed with pip, a broken one, env switches,
and every hook exercised."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hegelion_core import hooks
from hegelion_core.contracts import Formatter, Options
from hegelion_core.errors import DriverNotFound
from hegelion_core.hookspecs import hookimpl
from hegelion_core.plugins import KNOWN_DRIVERS, get_plugin_manager, load_driver
from hegelion_core.testing import sample_records
from tests.conftest import EXAMPLES, PLUGINS, hegelion


def test_third_party_teacher_is_listed(plugin_site) -> None:
    proc = hegelion(plugin_site, "plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    listing = json.loads(proc.stdout)
    echo = next(d for d in listing["drivers"] if d["name"] == "echo")
    assert echo == {
        "role": "teachers",
        "name": "echo",
        "distribution": "hegelion-echo",
        "version": "0.1.0",
        "target": "hegelion_echo.teacher:EchoTeacher",
        "status": "ok",
        "error": None,
        "fix": None,
    }
    hook = next(h for h in listing["hooks"] if h["name"] == "echo")
    assert hook["status"] == "ok"
    assert hook["hooks"] == ["hegelion_accept_record", "hegelion_register_commands"]


def test_broken_plugin_is_listed_as_broken_with_a_fix(plugin_site) -> None:
    proc = hegelion(plugin_site, "plugins")
    assert proc.returncode == 0, proc.stderr
    assert "broken         broken         hegelion-broken 0.0.1" in proc.stdout
    assert "No module named 'hegelion_no_such_dependency'" in proc.stdout
    assert (
        "fix:   pip install hegelion_no_such_dependency, or reinstall hegelion-broken"
        in proc.stdout
    )
    # Only the test plugins, whatever else this environment has installed.
    only = {"HEGELION_PLUGINS": "hegelion-echo,hegelion-broken"}
    listing = json.loads(hegelion(plugin_site, "plugins", "--json", **only).stdout)
    assert {h["name"]: h["status"] for h in listing["hooks"]} == {"echo": "ok", "broken": "broken"}


def test_third_party_teacher_is_selectable_and_adds_a_command(plugin_site) -> None:
    proc = hegelion(plugin_site, "echo", "Is this thing on?")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "You asked: Is this thing on?"


def test_third_party_teacher_passes_the_contract_suite(plugin_site) -> None:
    environ = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(plugin_site), os.environ.get("PYTHONPATH", "")])
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(PLUGINS / "hegelion-echo" / "tests"),
        ],
        capture_output=True,
        text=True,
        env=environ,
        cwd=PLUGINS / "hegelion-echo",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "9 passed" in proc.stdout


def test_other_commands_work_beside_a_broken_plugin(plugin_site, example_traces, tmp_path) -> None:
    out = tmp_path / "sft.jsonl"
    proc = hegelion(plugin_site, "dataset", str(example_traces), str(out), "--format", "sft")
    assert proc.returncode == 0, proc.stderr
    assert out.exists()


def test_a_plugin_hook_filters_records(plugin_site, tmp_path) -> None:
    from tests.conftest import write_jsonl

    records = [r.model_dump(mode="json") for r in sample_records()]
    records[0]["instruction"] += " [echo-drop]"
    src = write_jsonl(tmp_path / "t.jsonl", records)
    proc = hegelion(plugin_site, "dataset", str(src), str(tmp_path / "o.jsonl"), "--format", "sft")
    assert proc.returncode == 0, proc.stderr
    assert "1  rejected by plugin" in proc.stdout


def test_selecting_the_broken_teacher_explains_how_to_fix_it(plugin_site) -> None:
    code = "from hegelion_core.plugins import load_driver; load_driver('teachers', 'broken')"
    environ = os.environ | {"PYTHONPATH": str(plugin_site)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ)
    assert "DriverLoadError: teacher 'broken' from hegelion-broken failed to import" in proc.stderr
    assert "fix: pip install hegelion_no_such_dependency" in proc.stderr


def test_autoload_can_be_turned_off(plugin_site) -> None:
    listing = json.loads(
        hegelion(plugin_site, "plugins", "--json", HEGELION_DISABLE_PLUGIN_AUTOLOAD="1").stdout
    )
    assert {d["distribution"] for d in listing["drivers"] if d["status"] != "not installed"} == {
        "hegelion-core"
    }
    assert listing["hooks"] == []


def test_allow_list(plugin_site) -> None:
    listing = json.loads(
        hegelion(plugin_site, "plugins", "--json", HEGELION_PLUGINS="hegelion-echo").stdout
    )
    installed = {d["distribution"] for d in listing["drivers"] if d["status"] != "not installed"}
    assert installed == {"hegelion-core", "hegelion-echo"}
    assert [h["name"] for h in listing["hooks"]] == ["echo"]


# ----- in-process: names, and each hook ---------------------------------------------


def test_missing_first_party_driver_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # A first-party name that no environment has installed, so the test means the same
    # in a core-only environment and in one with every plugin.
    monkeypatch.setitem(KNOWN_DRIVERS["teachers"], "imaginary", "hegelion-imaginary")
    with pytest.raises(
        DriverNotFound,
        match=r"teacher 'imaginary' is not installed. Install it with: "
        r"pip install hegelion-imaginary",
    ):
        load_driver("teachers", "imaginary")


def test_installed_but_excluded_driver_says_what_leaves_it_out(plugin_site, tmp_path) -> None:
    proc = hegelion(
        plugin_site,
        "generate",
        "--prompt-file",
        EXAMPLES / "prompts.txt",
        "-o",
        tmp_path / "o.jsonl",
        "--teacher",
        "echo",
        HEGELION_PLUGINS="hegelion-broken",
    )
    assert proc.returncode != 0
    assert (
        "teacher 'echo' comes from hegelion-echo, which is installed but left out by "
        "HEGELION_PLUGINS"
    ) in proc.stderr


def test_unknown_driver_lists_the_available_ones() -> None:
    with pytest.raises(
        DriverNotFound,
        match=r"no formatter named 'nope'. Available: chat, dpo, mlx, scu, sft, simplex",
    ):
        load_driver("formatters", "nope")


def test_builtin_formatters_load_through_entry_points() -> None:
    cls = load_driver("formatters", "dpo")
    assert issubclass(cls, Formatter) and cls.__module__ == "hegelion_core.data.formatters.dpo"


def test_cores_stage_kinds_and_schemes_load_through_entry_points() -> None:
    from hegelion_core.contracts import ModelScheme, StageKind
    from hegelion_core.plugins import driver_names

    assert {"generate", "curate", "format", "train", "export", "eval"} <= set(
        driver_names("stage_kinds")
    )
    assert "stage" in driver_names("model_schemes")
    kind = load_driver("stage_kinds", "curate")
    assert issubclass(kind, StageKind) and kind.__module__ == "hegelion_core.pipeline.kinds"
    assert issubclass(load_driver("model_schemes", "stage"), ModelScheme)
    # The plugins' own are known by name, so a missing one gets its pip command.
    assert KNOWN_DRIVERS["stage_kinds"]["simplex"] == "hegelion-simplex"
    assert KNOWN_DRIVERS["model_schemes"]["packaged"] == "hegelion-gguf"


def test_plugins_lists_stage_kinds_and_model_schemes(run_cli) -> None:
    out = run_cli("plugins").output
    kinds = out[out.index("stage_kinds:") : out.index("model_schemes:")]
    assert "curate" in kinds and "hegelion-core" in kinds and "simplex" in kinds
    schemes = out[out.index("model_schemes:") : out.index("hooks:")]
    assert "stage" in schemes and "packaged" in schemes  # installed, or "not installed" + fix


def test_hooks_run_transform_and_filter(run_cli, example_traces, tmp_path) -> None:
    from hegelion_core.data.traces import ReadStats, iter_records

    dropped = next(iter_records(example_traces, ReadStats())).prompt_id
    events: list[tuple] = []

    class Plugin:
        @hookimpl
        def hegelion_run_started(self, command, config):
            events.append(("started", command, config["format"]))

        @hookimpl
        def hegelion_run_finished(self, command, summary, error):
            events.append(("finished", command, summary.get("records"), error))

        @hookimpl
        def hegelion_accept_record(self, record):
            return record.prompt_id != dropped

        @hookimpl
        def hegelion_transform_record(self, record):
            return record.model_copy(update={"system": "Redacted system."})

    get_plugin_manager().register(Plugin(), name="test-plugin")
    out = tmp_path / "o.jsonl"
    result = run_cli("dataset", example_traces, out, "--format", "sft")
    assert "11 records used, 1 skipped" in result.output and "rejected by plugin" in result.output
    assert events == [("started", "dataset", "sft"), ("finished", "dataset", 11, None)]
    assert out.read_bytes().count(b'"system":"Redacted system."') == 11


def test_transforms_chain_in_call_order() -> None:
    record = sample_records()[0]

    class Upper:
        @hookimpl
        def hegelion_transform_record(self, record):
            return record.model_copy(update={"system": record.system.upper()})

    class Exclaim:
        @hookimpl
        def hegelion_transform_record(self, record):
            return record.model_copy(update={"system": record.system + "!"})

    class NoOpinion:
        @hookimpl
        def hegelion_transform_record(self):
            return None

    pm = get_plugin_manager()
    pm.register(Upper(), name="upper")
    pm.register(NoOpinion(), name="none")
    pm.register(Exclaim(), name="exclaim")  # pluggy calls the last registered first
    assert hooks.transform_record(record).system == (record.system + "!").upper()


def test_run_finished_reports_errors(run_cli, tmp_path) -> None:
    seen = []

    class Plugin:
        @hookimpl
        def hegelion_run_finished(self, error):  # fewer args than the spec is fine
            seen.append(error)

    get_plugin_manager().register(Plugin(), name="p")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"foo": 1}\n')
    run_cli("dataset", bad, tmp_path / "o.jsonl", "--format", "sft", ok=False)
    assert seen and "no valid records" in seen[0]


def test_record_written_fires_after_the_append(tmp_path) -> None:
    from hegelion_core.data.traces import append_records

    seen = []

    class Plugin:
        @hookimpl
        def hegelion_record_written(self, record, path):
            seen.append((record.prompt_id, path.read_bytes().count(b"\n")))

    get_plugin_manager().register(Plugin(), name="p")
    records = sample_records()
    append_records(tmp_path / "t.jsonl", records)
    assert seen == [(r.prompt_id, 3) for r in records]  # the lines were on disk already


def test_train_metrics_reach_plugins() -> None:
    seen = []

    class Plugin:
        @hookimpl
        def hegelion_train_metrics(self, step, metrics):
            seen.append((step, metrics))

    get_plugin_manager().register(Plugin(), name="p")
    hooks.train_metrics(3, {"loss": 1.5, "lambda": 0.9})
    assert seen == [(3, {"loss": 1.5, "lambda": 0.9})]


def test_run_started_never_sees_secrets() -> None:
    seen = []

    class Plugin:
        @hookimpl
        def hegelion_run_started(self, config):
            seen.append(config)

    get_plugin_manager().register(Plugin(), name="p")
    hooks.run_started("generate", {"api_key": "sk-secret", "model": "m", "hf_token": "t"})
    assert seen == [{"api_key": "***", "model": "m", "hf_token": "***"}]


def test_register_commands_failure_is_not_fatal(run_cli, capsys) -> None:
    class Bad:
        @hookimpl
        def hegelion_register_commands(self, cli):
            raise RuntimeError("boom")

    get_plugin_manager().register(Bad(), name="bad")
    result = run_cli("plugins")
    assert "plugin 'bad' failed to add commands: boom" in capsys.readouterr().err
    assert "formatters:" in result.output


def test_a_plugin_driver_with_options(tmp_path) -> None:
    class Shout(Formatter):
        name = "shout"

        class Options(Options):
            times: int = 1

        def format(self, record):
            yield {"text": record.instruction.upper() * self.options.times}

    rows = list(Shout({"times": 2}).format(sample_records()[0]))
    assert rows == [{"text": sample_records()[0].instruction.upper() * 2}]
