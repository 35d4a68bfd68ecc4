"""`hegelion run` is open to plugins: a third-party stage kind and model-reference scheme,
pip-installed for real (tests/plugins/hegelion-stagekind), are planned and run like core's
own; and a kind or scheme whose plugin is absent is an error naming its pip command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import hegelion, install_plugins, left_out_message

PROMPTS = [
    "Is it so?",
    "Is this one short?",
    "A much longer question that no toy judge keeps?",
    "Why?",
    "Another question far too long for the short judge?",
    "Say it?",
]
SHORT = [p for p in PROMPTS if len(p) <= 24]  # toy:short's max_chars


@pytest.fixture(scope="module")
def stagekind_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stage-kind plugin and the echo teacher, pip-installed into a directory of their own."""
    return install_plugins(tmp_path_factory, "hegelion-stagekind", "hegelion-echo")


def write(tmp_path: Path, stages: str) -> Path:
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    path = tmp_path / "pipe.yaml"
    path.write_text(f"name: demo\nworkdir: {tmp_path / 'w'}\nstages:\n{stages}")
    return path


GENERATE = "  generate: {teacher: echo, mode: single, prompt_file: prompts.txt}\n"


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_the_plugins_kind_and_scheme_are_listed_beside_cores(stagekind_site: Path) -> None:
    listing = json.loads(hegelion(stagekind_site, "plugins", "--json").stdout)
    found = {(d["role"], d["name"]): (d["distribution"], d["status"]) for d in listing["drivers"]}
    assert found[("stage_kinds", "shortlist")] == ("hegelion-stagekind", "ok")
    assert found[("model_schemes", "toy")] == ("hegelion-stagekind", "ok")
    for kind in ("generate", "curate", "format", "train", "export", "eval"):
        assert found[("stage_kinds", kind)] == ("hegelion-core", "ok")
    assert found[("model_schemes", "stage")] == ("hegelion-core", "ok")


def test_a_third_party_stage_kind_and_scheme_plan_and_run(
    stagekind_site: Path, tmp_path: Path
) -> None:
    config = write(
        tmp_path, GENERATE + '  shortlist: {judge: "toy:short"}\n  format: {format: sft}\n'
    )
    judge = next(stagekind_site.rglob("hegelion_stagekind/models/short.json"))

    plan = hegelion(stagekind_site, "run", config, "--dry-run")
    assert plan.returncode == 0, plan.stderr
    w = tmp_path / "w"
    assert (
        f"shortlist (shortlist):\n  hegelion shortlist {w / 'generate' / 'traces.jsonl'} "
        f"--output {w / 'shortlist' / 'shortlist.jsonl'} --judge {judge}"
    ) in plan.stdout
    # format reads the plugin stage's traces: it is the nearest earlier stage that makes them.
    assert (
        f"hegelion dataset {w / 'shortlist' / 'shortlist.jsonl'} {w / 'format' / 'sft.jsonl'}"
        in plan.stdout
    )

    first = hegelion(stagekind_site, "run", config)
    assert first.returncode == 0, first.stderr
    assert len(lines(w / "generate" / "traces.jsonl")) == len(PROMPTS)
    assert [r["instruction"] for r in lines(w / "shortlist" / "shortlist.jsonl")] == SHORT
    record = json.loads((w / "shortlist" / "stage.json").read_text())
    assert record["kind"] == "shortlist"
    assert record["figures"] == {"rows_in": len(PROMPTS), "rows_out": len(SHORT)}  # its own figures
    assert record["artifact"] == {"traces": str(w / "shortlist" / "shortlist.jsonl")}
    assert "shortlist: done" in first.stderr and f"rows_out={len(SHORT)}" in first.stderr
    assert len(lines(w / "format" / "sft.jsonl")) == len(SHORT)
    assert json.loads((w / "format" / "stage.json").read_text())["inputs"][0]["path"] == str(
        w / "shortlist" / "shortlist.jsonl"
    )

    again = hegelion(stagekind_site, "run", config)
    assert again.returncode == 0, again.stderr
    assert "shortlist: unchanged, skipped" in again.stderr

    # Another model behind the same scheme changes the fingerprint: the stage runs afresh.
    longer = write(
        tmp_path, GENERATE + '  shortlist: {judge: "toy:long"}\n  format: {format: sft}\n'
    )
    changed = hegelion(stagekind_site, "run", longer)
    assert changed.returncode == 0, changed.stderr
    assert "shortlist: starting afresh" in changed.stderr
    assert len(lines(w / "format" / "sft.jsonl")) == len(PROMPTS)


def test_a_plugin_scheme_serves_cores_kinds_and_reports_bad_names(
    stagekind_site: Path, tmp_path: Path
) -> None:
    config = write(
        tmp_path,
        GENERATE + '  format: {format: sft}\n  train: {trainer: trl, model: "toy:short"}\n',
    )
    plan = hegelion(stagekind_site, "run", config, "--dry-run")
    assert plan.returncode == 0, plan.stderr
    judge = next(stagekind_site.rglob("hegelion_stagekind/models/short.json"))
    assert f"--model {judge}" in plan.stdout

    bad = write(tmp_path, GENERATE + '  shortlist:\n    judge: "toy:nothing"\n')
    out = hegelion(stagekind_site, "run", bad, "--dry-run")
    assert out.returncode == 1
    assert "pipe.yaml:6: field 'stages.shortlist.judge': no toy model 'nothing'" in out.stderr
    assert "known: toy:long, toy:short" in out.stderr


def test_without_the_plugin_its_kind_is_unknown_at_its_line(
    plugin_site: Path, tmp_path: Path
) -> None:
    config = write(tmp_path, GENERATE + '  shortlist: {judge: "toy:short"}\n')
    out = hegelion(plugin_site, "run", config, "--dry-run")
    assert out.returncode == 1
    assert "pipe.yaml:5: field 'stages.shortlist': unknown kind 'shortlist'" in out.stderr
    assert "a stage is one of curate, eval, export, format, generate" in out.stderr


def test_first_party_kind_and_scheme_left_out_name_their_plugin(
    plugin_site: Path, tmp_path: Path
) -> None:
    only_echo = {"HEGELION_PLUGINS": "hegelion-echo"}
    simplex = write(tmp_path, "  data: {uses: simplex, stage: context, n: 10}\n")
    out = hegelion(plugin_site, "run", simplex, "--dry-run", **only_echo)
    assert out.returncode == 1
    assert "pipe.yaml:4: field 'stages.data': unknown kind 'simplex'" in out.stderr
    assert left_out_message("stage kind", "simplex", "hegelion-simplex") in out.stderr

    packaged = write(
        tmp_path,
        GENERATE + "  format: {format: sft}\n"
        '  train: {trainer: trl, model: "packaged:smollm2-hf"}\n',
    )
    out = hegelion(plugin_site, "run", packaged, "--dry-run", **only_echo)
    assert out.returncode == 1
    assert "pipe.yaml:6: field 'stages.train.model': 'packaged:smollm2-hf': " in out.stderr
    assert left_out_message("model scheme", "packaged", "hegelion-gguf") in out.stderr
