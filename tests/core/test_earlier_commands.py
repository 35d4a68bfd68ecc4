"""The earlier tool's commands, run as its documents write them (issue 14 §2).

`hegelion-dataset` keeps the earlier defaults (no ``--format`` is DPO, synthesis over
thesis; ``--format instruction`` is SFT of the synthesis alone) while ``hegelion dataset``
keeps requiring ``--format``; `hegelion-agent` runs the documented collection commands;
a teacher's name given as ``--model`` is refused with the ``--teacher`` to use; and a
teacher error shows its first line where rejects are counted. Every command runs as a
real subprocess of the installed console scripts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from hegelion_core.cli.agent import CODING_GUIDANCE
from hegelion_core.cli.dataset import earlier_dataset_args
from hegelion_core.generation.reasons import reject_label
from hegelion_core.records import TraceRecord
from hegelion_core.testing.openai_server import ScriptedOpenAIServer
from tests.core.scripted_dialectic import phase_reply

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BIN = Path(sys.executable).parent
KEY = "sk-earlier-test-0123456789"


def env(tmp_path: Path) -> dict[str, str]:
    out = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HEGELION_PLUGINS", "HEGELION_DISABLE_PLUGIN_AUTOLOAD")
    }
    return out | {"OPENAI_API_KEY": KEY, "HEGELION_CONFIG_DIR": str(tmp_path / "config")}


def run(tmp_path: Path, *argv: str | Path) -> subprocess.CompletedProcess:
    """``argv`` as a shell runs it in ``tmp_path``: the first word is a console script."""
    exe, *rest = (str(a) for a in argv)
    return subprocess.run(
        [str(BIN / exe), *rest],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env(tmp_path),
        timeout=300,
    )


def rows(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


def traces(path: Path) -> list[TraceRecord]:
    return [TraceRecord.model_validate(r) for r in rows(path)]


@pytest.fixture
def collected(tmp_path: Path) -> Path:
    """The earlier docs' input, ``collected_data/coding_traces.jsonl`` (the example traces)."""
    (tmp_path / "collected_data").mkdir()
    target = tmp_path / "collected_data" / "coding_traces.jsonl"
    target.write_bytes((EXAMPLES / "traces.jsonl").read_bytes())
    return target


# ----- hegelion-dataset ---------------------------------------------------------------------


def test_default_conversion_is_dpo_synthesis_over_thesis(tmp_path: Path, collected: Path) -> None:
    proc = run(
        tmp_path, "hegelion-dataset", "collected_data/coding_traces.jsonl", "train_dpo.jsonl"
    )
    assert proc.returncode == 0, proc.stderr
    out = rows(tmp_path / "train_dpo.jsonl")
    records = traces(collected)
    assert [set(r) for r in out] == [{"prompt", "chosen", "rejected"}] * len(records)
    assert [(r["chosen"], r["rejected"]) for r in out] == [
        (t.hegelion_trace.synthesis, t.hegelion_trace.thesis) for t in records
    ]
    # One line names the command it ran; the summary goes to stdout as usual.
    assert proc.stderr.splitlines() == [
        "hegelion-dataset: running `hegelion dataset collected_data/coding_traces.jsonl "
        "train_dpo.jsonl --format dpo` (the earlier defaults; see docs/migrating.md)"
    ]
    assert f"wrote {len(records)} rows" in proc.stdout


def test_rejected_antithesis_without_format_is_dpo(tmp_path: Path, collected: Path) -> None:
    proc = run(
        tmp_path,
        "hegelion-dataset",
        "collected_data/coding_traces.jsonl",
        "train_dpo_anti.jsonl",
        "--rejected",
        "antithesis",
    )
    assert proc.returncode == 0, proc.stderr
    out = rows(tmp_path / "train_dpo_anti.jsonl")
    assert [(r["chosen"], r["rejected"]) for r in out] == [
        (t.hegelion_trace.synthesis, t.hegelion_trace.antithesis) for t in traces(collected)
    ]


def test_format_instruction_is_sft_of_the_synthesis_alone(tmp_path: Path, collected: Path) -> None:
    proc = run(
        tmp_path,
        "hegelion-dataset",
        "collected_data/coding_traces.jsonl",
        "train_sft.jsonl",
        "--format",
        "instruction",
    )
    assert proc.returncode == 0, proc.stderr
    out = rows(tmp_path / "train_sft.jsonl")
    records = traces(collected)
    assert [set(r) for r in out] == [{"instruction", "input", "output", "system"}] * len(records)
    assert [(r["instruction"], r["output"]) for r in out] == [
        (t.instruction, t.hegelion_trace.synthesis) for t in records
    ]
    assert "--format sft --synthesis-only" in proc.stderr


def test_hegelion_dataset_still_requires_format(tmp_path: Path, collected: Path) -> None:
    proc = run(tmp_path, "hegelion", "dataset", "collected_data/coding_traces.jsonl", "train.jsonl")
    assert proc.returncode == 2 and "Missing option '--format'" in proc.stderr
    assert not (tmp_path / "train.jsonl").exists()
    unknown = run(tmp_path, "hegelion", "dataset", collected, "t.jsonl", "--format", "instruction")
    assert unknown.returncode != 0 and "no formatter named 'instruction'" in unknown.stderr


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["a", "b"], ["a", "b", "--format", "dpo"]),
        (["a", "b", "-f", "chat"], ["a", "b", "--format", "chat"]),
        (["a", "b", "--format=instruction"], ["a", "b", "--format", "sft", "--synthesis-only"]),
        (
            ["a", "b", "-finstruction", "-q"],
            ["a", "b", "--format", "sft", "--synthesis-only", "-q"],
        ),
        (
            ["a", "b", "--system", "-f x"],
            ["a", "b", "--system", "-f x", "--format", "dpo"],
        ),  # a value
        (["a", "--", "-f"], ["a", "--format", "dpo", "--", "-f"]),  # after --: a file named -f
        (["a", "b", "--format"], ["a", "b", "--format"]),  # click says the value is missing
    ],
)
def test_earlier_dataset_args(argv: list[str], expected: list[str]) -> None:
    assert earlier_dataset_args(argv) == ["dataset", *expected]


# ----- hegelion-agent -----------------------------------------------------------------------


@pytest.fixture
def server() -> ScriptedOpenAIServer:
    pytest.importorskip("hegelion_openai")
    with ScriptedOpenAIServer(reply=phase_reply) as srv:
        yield srv


def teacher(srv: ScriptedOpenAIServer) -> list[str]:
    """The documents' teacher came from the earlier tool's config; here it is a flag."""
    return ["--teacher", "openai", "--base-url", srv.base_url, "-m", "scripted-model"]


def test_agent_coding_iterations_log_file(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    proc = run(
        tmp_path,
        "hegelion-agent",
        "Fix the memory leak in the image processor",
        "--coding",
        "--iterations",
        "2",
        "--log-file",
        "collected_data/coding_traces.jsonl",
        *teacher(server),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Action: add a heap snapshot test")
    (record,) = traces(tmp_path / "collected_data" / "coding_traces.jsonl")  # its directory made
    assert record.hegelion_trace.iterations == 2
    assert CODING_GUIDANCE in record.instruction
    phases = [r.body["messages"][0]["content"].split()[3] for r in server.completion_requests]
    assert phases == ["THESIS", "ANTITHESIS", "SYNTHESIS", "ANTITHESIS", "SYNTHESIS"]
    # Phase 2 of the documents: the log converts with the earlier defaults.
    dpo = run(tmp_path, "hegelion-dataset", "collected_data/coding_traces.jsonl", "train_dpo.jsonl")
    assert dpo.returncode == 0, dpo.stderr
    assert [r["chosen"] for r in rows(tmp_path / "train_dpo.jsonl")] == [
        record.hegelion_trace.synthesis
    ]


def test_agent_in_a_shell_loop_appends(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    (tmp_path / "my_prompts.txt").write_text("Speed up the build\nFix the flaky test\n")
    script = (
        "while read -r prompt; do\n"
        f'  hegelion-agent "$prompt" --log-file collected_data/batch_1.jsonl {" ".join(teacher(server))}\n'
        "done < my_prompts.txt\n"
    )
    proc = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env(tmp_path) | {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
    )
    assert proc.returncode == 0, proc.stderr
    logged = rows(tmp_path / "collected_data" / "batch_1.jsonl")
    assert [r["observation"] for r in logged] == ["Speed up the build", "Fix the flaky test"]


def test_earlier_dialectic_flags_council_judge(
    tmp_path: Path, server: ScriptedOpenAIServer
) -> None:
    """``hegelion_cli --query Q --council --judge`` is ``hegelion dialectic Q --council --judge``."""
    proc = run(
        tmp_path,
        "hegelion",
        "dialectic",
        "Should we implement feature X?",
        "--council",
        "--judge",
        "--format",
        "json",
        *teacher(server),
    )
    assert proc.returncode == 0, proc.stderr
    result = orjson.loads(proc.stdout)
    assert len(result["trace"]["critiques"]) >= 2 and result["trace"]["judge"]["score"] == 8


# ----- --model kimi-cli ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [
            "hegelion",
            "generate",
            "--dataset",
            "HuggingFaceH4/ultrafeedback_binarized",
            "--limit",
            "100",
            "--output",
            "hegelion_kimi_training_data.jsonl",
            "--model",
            "kimi-cli",
        ],
        [
            "hegelion",
            "generate",
            "--prompt-file",
            "my_prompts.txt",
            "-o",
            "out.jsonl",
            "--model",
            "kimi",
        ],
        ["hegelion", "dialectic", "Should we implement feature X?", "-m", "kimi-cli"],
        ["hegelion-agent", "Fix the memory leak", "--model", "kimi", "--log-file", "log.jsonl"],
    ],
)
def test_a_teacher_name_as_model_says_use_teacher(tmp_path: Path, argv: list[str]) -> None:
    name = argv[argv.index("--model") + 1] if "--model" in argv else argv[argv.index("-m") + 1]
    proc = run(tmp_path, *argv)
    assert proc.returncode == 2
    assert f"{name!r} is a teacher, not a model: use --teacher {name}" in proc.stderr
    assert list(tmp_path.glob("*.jsonl")) == []  # refused before anything ran


def test_a_model_that_is_not_a_teacher_name_is_passed_on(
    tmp_path: Path, server: ScriptedOpenAIServer
) -> None:
    proc = run(
        tmp_path, "hegelion", "dialectic", "Is water wet?", "--mode", "single", *teacher(server)
    )
    assert proc.returncode == 0, proc.stderr
    assert server.completion_requests[-1].body["model"] == "scripted-model"


# ----- a teacher error in the counts ------------------------------------------------------


def test_teacher_error_first_line_in_progress_and_status(tmp_path: Path) -> None:
    """The issue's run reported only ``thesis: teacher error``; a missing model file is a
    teacher error that needs no network, and its first line is what to fix."""
    pytest.importorskip("hegelion_gguf")
    (tmp_path / "my_prompts.txt").write_text("one\ntwo\nthree\n")
    proc = run(
        tmp_path,
        "hegelion",
        "generate",
        "--prompt-file",
        "my_prompts.txt",
        "-o",
        "out.jsonl",
        "--teacher",
        "llama-cpp",
        "-t",
        "model_path=no-such-model.gguf",
        "--quiet",
    )
    assert proc.returncode == 4, proc.stderr
    label = "thesis: teacher error: model_path: GGUF file not found: no-such-model.gguf"
    assert f"       3  {label}" in proc.stdout.splitlines()
    status = run(tmp_path, "hegelion", "status", "out.jsonl")
    assert f"       3  {label}" in status.stdout.splitlines()


def test_teacher_errors_that_differ_by_ids_count_as_one_reason(tmp_path: Path) -> None:
    pytest.importorskip("hegelion_openai")
    bodies = [
        {
            "error": {
                "message": f"Invalid request (request id req_{i}f3a9b2c1d4e5f6{i}, "
                f"took {i}.{i}s, port 1877{i})",
                "type": "invalid_request_error",
            }
        }
        for i in range(3)
    ]
    (tmp_path / "my_prompts.txt").write_text("one\ntwo\nthree\n")
    with ScriptedOpenAIServer(script=[("status", 400, {}, b) for b in bodies]) as srv:
        proc = run(
            tmp_path,
            "hegelion",
            "generate",
            "--prompt-file",
            "my_prompts.txt",
            "-o",
            "out.jsonl",
            "--max-retries",
            "0",
            "--concurrency",
            "1",
            "--quiet",
            *teacher(srv),
        )
    assert proc.returncode == 4, proc.stderr
    status = orjson.loads(run(tmp_path, "hegelion", "status", "out.jsonl", "--json").stdout)
    ((label, count),) = status["reject_reasons"].items()
    assert count == 3 and label.startswith("thesis: teacher error: ")
    assert "Invalid request (request id req_<id>, took Ns, port N)" in label
    assert label in proc.stdout


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("teacher error: HTTP 401 bad key", "thesis: teacher error: HTTP 401 bad key"),
        (
            "teacher error after 3 attempts: 503\nretry later",
            "thesis: teacher error after 3 attempts: 503",
        ),
        (
            "teacher error: kimi-cli exited with status 1: session 3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "thesis: teacher error: kimi-cli exited with status 1: session <id>",
        ),
        (
            "teacher error: gpt-4o-2024-08-06 at 127.0.0.1 is busy",
            "thesis: teacher error: gpt-4o-2024-08-06 at 127.0.0.1 is busy",
        ),
        ("truncated: cut at max_tokens=40, and again at 80", "thesis: truncated"),
        ("teacher error: " + "x" * 300, "thesis: teacher error: " + "x" * 102 + "..."),
    ],
)
def test_reject_label(reason: str, label: str) -> None:
    assert reject_label("thesis", reason) == label
