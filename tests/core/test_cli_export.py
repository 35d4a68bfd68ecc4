"""`hegelion export`: subcommands come from installed exporters, flags from their
Options; a missing first-party exporter names its pip install. No torch needed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import ClassVar, Literal

from click.testing import CliRunner
from pydantic import Field

from hegelion_core.cli.export import exporter_command
from hegelion_core.contracts import Exporter, ExportResult
from hegelion_core.data.jsonl import atomic_output
from hegelion_core.errors import HegelionError
from tests.conftest import left_out_message


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HEGELION_PLUGINS", "HEGELION_DISABLE_PLUGIN_AUTOLOAD")
    }
    return subprocess.run(
        [sys.executable, "-m", "hegelion_core", *args],
        capture_output=True,
        text=True,
        env=environ | env,
        timeout=120,
        check=False,
    )


NO_PLUGINS = {"HEGELION_DISABLE_PLUGIN_AUTOLOAD": "1"}


def test_help_lists_missing_first_party_exporters_with_their_install():
    proc = run("export", "--help", **NO_PLUGINS)
    assert proc.returncode == 0, proc.stderr
    assert "Not installed:" in proc.stdout
    for name in ("gguf", "merged"):
        assert re.search(rf"\n  {name}\s+pip install hegelion-gguf", proc.stdout), proc.stdout


def test_missing_exporter_names_the_pip_install(tmp_path):
    for name in ("gguf", "merged"):
        proc = run(
            "export", name, "--model", str(tmp_path), "--out", str(tmp_path / "o"), **NO_PLUGINS
        )
        assert proc.returncode == 1
        assert left_out_message("exporter", name, "hegelion-gguf") in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_unknown_exporter_lists_the_available_ones():
    proc = run("export", "onnx", "--model", "m", "--out", "o", **NO_PLUGINS)
    assert proc.returncode == 1
    assert "no exporter named 'onnx'. Available: none" in proc.stderr


# ----- a third-party exporter's options become flags ------------------------------------


class TextExporter(Exporter):
    """Write the model directory's file list as text (an exporter in a few lines)."""

    name: ClassVar[str] = "text"

    class Options(Exporter.Options):
        case: Literal["upper", "lower"] = Field("lower", description="Letter case.")
        numbered: bool = Field(False, description="Number the lines.")
        width: int = Field(80, description="Line width.")
        tag: list[str] = Field(default_factory=list, description="Tags.")
        header: Path | None = Field(None, description="A header file.")
        extra: dict[str, int] = Field(default_factory=dict, description="-o only.")
        fail: bool = Field(False, description="Raise a HegelionError.")
        hub_token: str | None = Field(None, description="A registry token (-o only).")

    def export(self, model_dir, dest, *, adapter_dir=None, name=None) -> ExportResult:
        if self.options.fail:
            raise HegelionError(f"{model_dir}: cannot export this, on purpose")
        names = sorted(p.name for p in Path(model_dir).iterdir())
        lines = [n.upper() if self.options.case == "upper" else n for n in names]
        if self.options.numbered:
            lines = [f"{i}. {line}" for i, line in enumerate(lines, 1)]
        header = self.options.header.read_text() if self.options.header else ""
        with atomic_output(dest, directory=True) as tmp:
            (tmp / f"{name or 'model'}.txt").write_text(header + "\n".join(lines) + "\n")
        return ExportResult(
            out_dir=dest,
            files=[dest / f"{name or 'model'}.txt"],
            report={"lines": len(lines), "tags": self.options.tag, "extra": self.options.extra},
            notes=["done: text export"],
            versions={"text": "1"},
        )


def invoke(*args: str):
    return CliRunner().invoke(exporter_command(TextExporter), [str(a) for a in args])


def test_options_become_flags():
    help_text = invoke("--help").output
    for flag in (
        "--model",
        "--adapter",
        "--name",
        "--out",
        "--case [upper|lower]",
        "--numbered / --no-numbered",
        "--width INTEGER",
        "--tag TEXT",
        "--header PATH",
        "-o, --option KEY=VALUE",
    ):
        assert flag in help_text, flag
    assert "--extra" not in help_text  # a dict has no flag form: -o extra=...
    assert "Letter case. [default: lower]" in help_text


def test_flags_and_o_pairs_reach_the_exporter_and_the_manifest(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "weights.safetensors").write_bytes(b"0123")
    header = tmp_path / "header.txt"
    header.write_text("# files\n")
    out = tmp_path / "out"
    result = invoke(
        "--model",
        model,
        "--out",
        out,
        "--name",
        "list",
        "--case",
        "upper",
        "--numbered",
        "--tag",
        "a",
        "--tag",
        "b",
        "--header",
        header,
        "-o",
        'extra={"k": 1}',
        "-o",
        "width=40",
    )
    assert result.exit_code == 0, result.output
    assert (out / "list.txt").read_text() == "# files\n1. CONFIG.JSON\n2. WEIGHTS.SAFETENSORS\n"
    assert (
        "done: text export" in result.output
        and f"manifest: {out / 'manifest.json'}" in result.output
    )

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "export"
    assert manifest["config"] | {} == manifest["config"]
    assert {
        k: manifest["config"][k]
        for k in ("exporter", "name", "case", "numbered", "width", "tag", "extra")
    } == {
        "exporter": "text",
        "name": "list",
        "case": "upper",
        "numbered": True,
        "width": 40,
        "tag": ["a", "b"],
        "extra": {"k": 1},
    }
    assert manifest["outputs"] == [str(out / "list.txt")]
    assert manifest["counts"] == {"files": 1, "bytes": (out / "list.txt").stat().st_size}
    assert {Path(i["path"]).name: i["bytes"] for i in manifest["inputs"]} == {
        "config.json": 2,
        "weights.safetensors": 4,
    }
    assert manifest["versions"] == {"text": "1"}
    assert manifest["report"] == {"lines": 2, "tags": ["a", "b"], "extra": {"k": 1}}


def test_bad_options_and_errors_are_clean_messages(tmp_path):
    from hegelion_core.cli import cli

    # through the root group, which prints HegelionError without a traceback
    cli.add_command(exporter_command(TextExporter), "text-test")
    try:
        runner = CliRunner()
        bad = runner.invoke(
            cli,
            ["text-test", "--model", str(tmp_path), "--out", str(tmp_path / "o"), "-o", "widht=3"],
        )
        assert bad.exit_code == 1
        assert "invalid options for exporter 'text': widht: unknown field" in bad.output
        failed = runner.invoke(
            cli, ["text-test", "--model", str(tmp_path), "--out", str(tmp_path / "o"), "--fail"]
        )
        assert failed.exit_code == 1
        assert f"Error: {tmp_path}: cannot export this, on purpose" in failed.output
        choice = runner.invoke(cli, ["text-test", "--model", "m", "--out", "o", "--case", "title"])
        assert choice.exit_code == 2 and "'title' is not one of 'upper', 'lower'" in choice.output
    finally:
        cli.commands.pop("text-test")
    assert not (tmp_path / "o").exists()


def test_any_exporters_out_never_replaces_what_hegelion_did_not_write(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("the user's")
    refused = invoke("--model", model, "--out", out)
    assert refused.exit_code == 1 and "holds files that Hegelion did not write (mine.txt)" in str(
        refused.exception
    )
    assert os.listdir(out) == ["mine.txt"]
    (out / "mine.txt").unlink()
    assert invoke("--model", model, "--out", out).exit_code == 0
    assert invoke("--model", model, "--out", out, "--case", "upper").exit_code == 0  # its own
    assert "CONFIG.JSON" in (out / "model.txt").read_text()
    inside = invoke("--model", model, "--out", tmp_path)  # the input inside --out
    assert inside.exit_code == 1 and "the output directory holds the input" in str(inside.exception)


def test_a_credential_among_exporter_options_never_reaches_the_manifest(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    out = tmp_path / "out"
    canary = "sk-canary-export-7f3a9c"
    result = invoke("--model", model, "--out", out, "--name", "list", "-o", f"hub_token={canary}")
    assert result.exit_code == 0, result.output
    text = (out / "manifest.json").read_text()
    assert canary not in text and canary not in result.output
    assert json.loads(text)["config"]["hub_token"] == "***"
