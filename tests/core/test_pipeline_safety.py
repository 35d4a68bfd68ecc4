"""`hegelion run` never deletes what it did not make, never repays work a rerun can keep,
never records a stage that produced nothing as done, and answers bad input (stage names,
alias bombs, an unwritable or relative workdir) with an error that names the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hegelion_core.errors import InputError
from hegelion_core.pipeline import load_pipeline, workdir_of
from hegelion_core.testing.openai_server import RecordedRequest, ScriptedOpenAIServer, default_reply
from tests.conftest import hegelion

PROMPTS = [f"Question number {i}: is it so?" for i in range(4)]


def write(tmp_path: Path, body: str, name: str = "pipe.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    path.write_text(body)
    return path


def echo_pipe(tmp_path: Path, *, style: str = "trace", fmt: str = "sft") -> Path:
    return write(
        tmp_path,
        f"""\
name: demo
workdir: {tmp_path / "w"}
stages:
  generate:
    teacher: echo
    mode: single
    prompt_file: prompts.txt
    limit: 4
    teacher_option: {{style: {style}}}
  format: {{format: {fmt}}}
""",
    )


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


# ----- 1: a stage name is a directory name, and only the pipeline's own are touched ------


@pytest.mark.parametrize("name", ["..", ".", "../../x", "/tmp/elsewhere", "a/b", ".hidden", ""])
def test_a_stage_name_that_is_a_path_is_refused_with_its_line(tmp_path: Path, name: str) -> None:
    config = write(
        tmp_path,
        f"name: demo\nstages:\n  generate: {{teacher: echo}}\n"
        f"  {json.dumps(name)}:\n    uses: format\n",
    )
    with pytest.raises(InputError, match=r"pipe\.yaml:4: field .*is not a plain name") as caught:
        load_pipeline(config)
    assert "directory under the workdir" in str(caught.value)


def test_plain_stage_names_pass(tmp_path: Path) -> None:
    config = write(tmp_path, "name: demo\nstages:\n  gen_1.v-2: {uses: generate, teacher: echo}\n")
    assert list(load_pipeline(config).stages) == ["gen_1.v-2"]


def test_dry_run_refuses_a_dot_dot_stage(plugin_site: Path, tmp_path: Path) -> None:
    config = write(
        tmp_path, "name: demo\nstages:\n  generate: {teacher: echo}\n  ..: {uses: format}\n"
    )
    out = hegelion(plugin_site, "run", config, "--dry-run")
    assert out.returncode == 1 and f"{config}:4: field 'stages...'" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_stage_directory_the_pipeline_did_not_make_is_refused_not_deleted(
    plugin_site: Path, tmp_path: Path
) -> None:
    config = echo_pipe(tmp_path)
    mine = tmp_path / "w" / "format" / "notes.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("my own work")
    out = hegelion(plugin_site, "run", config)
    assert out.returncode == 1
    assert f"{mine.parent} exists and was not made by `hegelion run`" in out.stderr
    assert "Traceback" not in out.stderr
    assert mine.read_text() == "my own work"
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["format", "generate"]
    # A stage.json that is not this stage's record proves nothing either, with --all too.
    (mine.parent / "stage.json").write_text('{"what": "another tool wrote this"}')
    out = hegelion(plugin_site, "run", config, "--all")
    assert out.returncode == 1 and "was not made by `hegelion run`" in out.stderr
    assert mine.read_text() == "my own work"


@pytest.mark.parametrize("left", [[], ["..started.tmp-k9x2"]])
def test_an_empty_stage_directory_is_adopted(
    plugin_site: Path, tmp_path: Path, left: list[str]
) -> None:
    # What a kill between the pipeline's mkdir and its mark (or during the mark's atomic
    # write) leaves: nothing to lose.
    (tmp_path / "w" / "generate").mkdir(parents=True)
    for name in left:
        (tmp_path / "w" / "generate" / name).write_text("")
    out = hegelion(plugin_site, "run", echo_pipe(tmp_path))
    assert out.returncode == 0, out.stderr
    assert len(lines(tmp_path / "w" / "generate" / "traces.jsonl")) == 4


# ----- 4: --stage tops up; starting afresh moves the old output aside ---------------------


def test_stage_rerun_keeps_finished_traces_and_all_moves_them_aside(
    plugin_site: Path, tmp_path: Path
) -> None:
    config = echo_pipe(tmp_path)
    assert hegelion(plugin_site, "run", config).returncode == 0
    w = tmp_path / "w"
    traces = w / "generate" / "traces.jsonl"
    first = traces.read_bytes()  # each record has its created_at: a rerun would differ

    again = hegelion(plugin_site, "run", config, "--stage", "generate")
    assert again.returncode == 0, again.stderr
    assert "generate: running" in again.stderr
    assert traces.read_bytes() == first  # nothing generated again, nothing lost
    assert (w / "generate" / "stage.json").is_file()
    assert not list(w.glob("*.prev-*"))

    everything = hegelion(plugin_site, "run", config, "--all")
    assert everything.returncode == 0, everything.stderr
    [old_gen] = w.glob("generate.prev-*")
    [old_fmt] = w.glob("format.prev-*")
    assert (old_gen / "traces.jsonl").read_bytes() == first
    assert (old_fmt / "sft.jsonl").is_file()
    assert f"previous output is now in {old_gen}" in everything.stderr
    assert len(lines(traces)) == 4 and traces.read_bytes() != first


def test_a_changed_format_stage_moves_its_old_output_aside(
    plugin_site: Path, tmp_path: Path
) -> None:
    assert hegelion(plugin_site, "run", echo_pipe(tmp_path)).returncode == 0
    changed = hegelion(plugin_site, "run", echo_pipe(tmp_path, fmt="chat"))
    assert changed.returncode == 0, changed.stderr
    w = tmp_path / "w"
    [old] = w.glob("format.prev-*")
    assert (old / "sft.jsonl").is_file() and (w / "format" / "chat.jsonl").is_file()
    assert not (w / "format" / "sft.jsonl").exists()
    assert "format: starting afresh" in changed.stderr


# ----- 6: a stage that produced nothing is not done --------------------------------------


def test_a_generate_stage_with_no_records_is_not_done(plugin_site: Path, tmp_path: Path) -> None:
    # Plain answers have no thesis/antithesis/synthesis: every prompt is rejected.
    config = echo_pipe(tmp_path, style="plain")
    out = hegelion(plugin_site, "run", config)
    assert out.returncode != 0
    assert "stage generate:" in out.stderr and "it is not done" in out.stderr
    assert "Traceback" not in out.stderr
    generate = tmp_path / "w" / "generate"
    assert not (generate / "stage.json").exists()
    assert not (tmp_path / "w" / "format").exists()  # the next stage never started
    assert len(lines(generate / "traces.jsonl.rejects.jsonl")) == 4

    rerun = hegelion(plugin_site, "run", config)
    assert rerun.returncode != 0 and "unchanged, skipped" not in rerun.stderr


# ----- 12: alias bombs -------------------------------------------------------------------


def alias_bomb(levels: int) -> str:
    rows = ['    l0: &l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    rows += [f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "name: bomb\nstages:\n  generate:\n    teacher: echo\n" + "\n".join(rows) + "\n"


def test_an_alias_bomb_is_refused_at_its_line(tmp_path: Path) -> None:
    # Five levels is a hundred thousand nodes: small enough to be harmless where aliases
    # are not bounded, more than the bound allows.
    config = write(tmp_path, alias_bomb(5))
    with pytest.raises(InputError, match=r"pipe\.yaml:8: YAML aliases expand to more than"):
        load_pipeline(config)


def test_dry_run_of_an_alias_bomb_says_so(plugin_site: Path, tmp_path: Path) -> None:
    out = hegelion(plugin_site, "run", write(tmp_path, alias_bomb(5)), "--dry-run")
    assert out.returncode == 1 and "pipe.yaml:8: YAML aliases expand" in out.stderr


def test_aliases_that_share_a_block_still_work(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "name: demo\nstages:\n"
        "  a: {uses: generate, teacher: echo, teacher_option: &opt {delay: 0.5}}\n"
        "  b: {uses: generate, teacher: echo, teacher_option: *opt}\n",
    )
    stages = load_pipeline(config).stages
    assert stages["b"].options["teacher_option"] == {"delay": 0.5}


# ----- 13: an unwritable workdir ---------------------------------------------------------


def test_an_unwritable_workdir_is_an_error_naming_it(plugin_site: Path, tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("a file, not a directory")
    workdir = tmp_path / "file.txt" / "sub"
    config = write(
        tmp_path,
        f"name: demo\nworkdir: {workdir}\nstages:\n  generate:\n"
        "    teacher: echo\n    prompt_file: prompts.txt\n",
    )
    out = hegelion(plugin_site, "run", config)
    assert out.returncode == 1
    assert f"cannot write the work directory {workdir}" in out.stderr
    assert "hint: set `workdir:`" in out.stderr and "Traceback" not in out.stderr


# ----- 15: workdir is relative to the pipeline file ---------------------------------------


def test_workdir_is_relative_to_the_file_and_an_override_to_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path / "project", "name: demo\nworkdir: out/w\nstages:\n  generate: {teacher: echo}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert workdir_of(load_pipeline(config)) == tmp_path / "project" / "out" / "w"
    relative = Path("..") / "project" / "pipe.yaml"  # the file named relative to the cwd
    assert workdir_of(load_pipeline(relative)) == tmp_path / "project" / "out" / "w"
    assert workdir_of(load_pipeline(config, {"workdir": "here"})) == elsewhere / "here"
    default = write(
        tmp_path / "project",
        "name: demo\nstages:\n  generate: {teacher: echo}\n",
        name="default.yaml",
    )
    assert workdir_of(load_pipeline(default)) == elsewhere / "runs" / "demo"


# ----- 16: the summary counts the generator's rejects -------------------------------------


def rejecting(request: RecordedRequest) -> str:
    """A valid trace, except for prompts that say REJECTME: words with no trace in them."""
    if "REJECTME" in json.dumps(request.body.get("messages", [])):
        return "No thesis, no antithesis, no synthesis here."
    return default_reply(request)


@pytest.mark.parametrize("rejects", [None, "my-rejects.jsonl"])
def test_the_summary_counts_the_rejects_the_generator_wrote(
    plugin_site: Path, tmp_path: Path, rejects: str | None
) -> None:
    w = tmp_path / "w"
    with ScriptedOpenAIServer(reply=rejecting) as srv:
        config = write(
            tmp_path,
            f"""\
name: demo
workdir: {w}
stages:
  generate:
    teacher: openai
    base_url: {srv.base_url}
    model: scripted
    mode: single
    prompt_file: prompts.txt
    max_retries: 0
    concurrency: 1
{f"    rejects: {rejects}" if rejects else ""}
""",
        )
        (tmp_path / "prompts.txt").write_text("Is it so?\nREJECTME please\nIs it not?\n")
        out = hegelion(
            plugin_site,
            "run",
            config,
            OPENAI_API_KEY="sk-test-not-a-key",
            HEGELION_CONFIG_DIR=str(tmp_path / "config"),
        )
    assert out.returncode == 0, out.stderr
    rejects_file = tmp_path / rejects if rejects else w / "generate" / "traces.jsonl.rejects.jsonl"
    assert len(lines(rejects_file)) == 1
    record = json.loads((w / "generate" / "stage.json").read_text())
    assert record["figures"] == {"records": 2, "rejected": 1}
    assert "rejected: 1" in out.stdout


def test_a_generate_stage_that_stopped_early_is_not_done(plugin_site: Path, tmp_path: Path) -> None:
    # A refused key stops `hegelion generate` early (its exit status 5): not the prompts'
    # fault, and not a finished stage either.
    w = tmp_path / "w"
    with ScriptedOpenAIServer(script=[("status", 401)] * 20) as srv:
        config = write(
            tmp_path,
            f"name: demo\nworkdir: {w}\nstages:\n  generate:\n"
            f"    teacher: openai\n    base_url: {srv.base_url}\n"
            "    mode: single\n    prompt_file: prompts.txt\n",
        )
        out = hegelion(
            plugin_site,
            "run",
            config,
            OPENAI_API_KEY="sk-test-not-a-key",
            HEGELION_CONFIG_DIR=str(tmp_path / "config"),
        )
    assert out.returncode == 1
    assert "stage generate: `hegelion generate` stopped early (" in out.stderr
    assert "(exit status 5)" in out.stderr and "it is not done" in out.stderr
    assert not (w / "generate" / "stage.json").exists()


def test_rotating_an_api_key_keeps_the_stage_fingerprint(tmp_path: Path) -> None:
    """A new key is the same work: hashing the raw argv would rerun the stage (and put a
    digest of the key in stage.json); any other change still changes the fingerprint."""
    from hegelion_core.pipeline.runner import fingerprint
    from hegelion_core.pipeline.stages import Invocation, StagePlan

    def plan(*argv: str) -> StagePlan:
        return StagePlan(
            name="generate",
            kind="generate",
            workdir=tmp_path / "generate",
            invocations=[Invocation(argv=["hegelion", "generate", *argv])],
            artifact={"output": str(tmp_path / "generate" / "traces.jsonl")},
        )

    old = fingerprint(plan("--teacher-option", "api_key=sk-old-aaaaaaaaaaaa"))[0]
    new = fingerprint(plan("--teacher-option", "api_key=sk-new-bbbbbbbbbbbb"))[0]
    other = fingerprint(plan("--teacher-option", "api_key=sk-new-bbbbbbbbbbbb", "--limit", "9"))[0]
    assert old == new
    assert other != new
