"""Generation faults that are not the prompt's: a rejected key, a server that is down or
failing, a ``Retry-After`` too long to wait; the exit statuses that tell them apart;
and keys echoed back in answers. First on an in-process teacher (core alone), then end
to end through ``hegelion generate`` with the ``openai`` teacher on the scripted server."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from hegelion_core.contracts import TeacherError, blame_of
from hegelion_core.data.prompt_sources.file import FilePromptSource
from hegelion_core.generation.generate import ExitCode, GenerateJob, Generator, run_generate
from hegelion_core.generation.limits import parse_retry_after
from hegelion_core.generation.status import render, run_status
from hegelion_core.records import Message
from hegelion_core.testing.openai_server import ScriptedOpenAIServer
from tests.conftest import hegelion, hegelion_env
from tests.core.teachers import RuleTeacher


def prompts_file(tmp_path: Path, n: int, tag: str = "") -> Path:
    p = tmp_path / "prompts.txt"
    p.write_text("".join(f"question {i}{tag if i % 2 else ''}\n" for i in range(n)))
    return p


def lines(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


class BrokenTeacher(RuleTeacher):
    """Every call fails with ``error`` while it is set."""

    error: TeacherError | None = None

    async def complete(self, messages: Any, **kwargs: Any) -> Any:
        if self.error is not None:
            await asyncio.sleep(0.001)
            raise self.error
        return await super().complete(messages, **kwargs)


def run(tmp_path: Path, teacher: RuleTeacher, n: int = 10, **job: Any) -> Generator:
    job.setdefault("backoff_base", 0.0)
    gen = Generator(
        GenerateJob(output=tmp_path / "traces.jsonl", **job),
        teacher,
        FilePromptSource({"path": prompts_file(tmp_path, n)}),
    )
    asyncio.run(gen.run())
    return gen


# ----- whose fault ---------------------------------------------------------------------


def test_teacher_errors_say_whose_fault_they_are() -> None:
    assert TeacherError("x", retryable=False).blame == "prompt"  # the old constructor still works
    assert TeacherError("x", retryable=False, status=401).blame == "auth"
    assert TeacherError("x", retryable=False, status=403).blame == "auth"
    assert TeacherError("x", retryable=True, status=503).blame == "service"
    assert TeacherError("x", retryable=True).blame == "service"  # timeouts, dropped connections
    assert TeacherError("x", retryable=False, status=400).blame == "prompt"
    assert TeacherError("x", retryable=False, blame="service").blame == "service"
    assert blame_of(404, False) == "service"  # no such model or route: not the prompt


def test_an_auth_failure_stops_the_run_and_uses_up_no_prompt(tmp_path: Path) -> None:
    teacher = BrokenTeacher()
    teacher.error = TeacherError("HTTP 401: Incorrect API key", retryable=False, status=401)
    for _ in range(3):
        gen = run(tmp_path, teacher, max_retries=2)
        assert gen.stats.exit_code == ExitCode.STOPPED and "credentials" in gen.stats.stopped
        assert gen.stats.written == 0 and gen.stats.rejected == gen.stats.not_counted >= 1
    rejects = lines(tmp_path / "traces.jsonl.rejects.jsonl")
    assert rejects and {r["blame"] for r in rejects} == {"auth"}
    status = run_status(tmp_path / "traces.jsonl", prices={})
    assert status.rejected_prompts == 0 and status.open_prompts == len(
        {r["prompt_id"] for r in rejects}
    )
    assert list(status.reject_reasons) == [
        "thesis: teacher error: HTTP 401: Incorrect API key (auth, not counted)"
    ]
    assert "failed for reasons not their own (a rerun tries them again)" in render(status)
    teacher.error = None  # the key is fixed
    gen = run(tmp_path, teacher, max_retries=2)
    assert gen.stats.written == 10 and gen.stats.exit_code == ExitCode.OK


def test_the_breaker_stops_after_n_prompts_fail_for_the_service(tmp_path: Path) -> None:
    teacher = BrokenTeacher()
    teacher.error = TeacherError("HTTP 503", retryable=True, status=503)
    gen = run(tmp_path, teacher, n=40, max_retries=1, stop_after_failures=4, concurrency=2)
    assert gen.stats.exit_code == ExitCode.STOPPED
    assert "4 prompts in a row failed for reasons not their own" in gen.stats.stopped
    assert 4 <= gen.stats.rejected <= 6  # the two in flight may finish as the breaker trips
    teacher.error = None
    assert run(tmp_path, teacher, n=40, max_retries=1).stats.written == 40


def test_prompt_failures_still_use_up_their_attempts(tmp_path: Path) -> None:
    teacher = RuleTeacher()
    teacher.failures["question 0"] = [
        TeacherError("HTTP 400: too long", retryable=False, status=400)
    ] * 5
    for expected in (1, 0):  # max_attempts 1: settled after one reject
        gen = run(tmp_path, teacher, n=3, max_retries=1)
        assert gen.stats.rejected == expected and gen.stats.stopped is None
    assert lines(tmp_path / "traces.jsonl.rejects.jsonl")[0]["blame"] == "prompt"


@pytest.mark.parametrize("header", ["3600", "inf"])
def test_a_retry_after_past_the_cap_stops_the_run_instead_of_sleeping(
    tmp_path: Path, header: str
) -> None:
    wait = parse_retry_after({"Retry-After": header})
    teacher = RuleTeacher()
    teacher.failures["question 3"] = [
        TeacherError("HTTP 429", retryable=True, status=429, retry_after=wait)
    ]
    start = time.monotonic()
    gen = run(tmp_path, teacher, n=6, concurrency=1, max_retry_wait=5)
    assert time.monotonic() - start < 30
    assert gen.stats.exit_code == ExitCode.STOPPED and "--max-retry-wait 5s" in gen.stats.stopped
    assert gen.stats.written == 3  # what finished before stays written


def test_retry_after_nonsense_is_no_header() -> None:
    assert parse_retry_after({"Retry-After": "nan"}) is None
    assert parse_retry_after({"retry-after-ms": "nan", "Retry-After": "2"}) == 2.0


def test_keys_echoed_in_answers_are_scrubbed_and_counted(tmp_path: Path, monkeypatch) -> None:
    from hegelion_core.secrets import get_secret

    monkeypatch.setenv("HEGELION_ECHO_KEY", "sk-echoed-back-424242")
    key = get_secret("HEGELION_ECHO_KEY")
    teacher = RuleTeacher()
    teacher.replies["synthesis"] = [f"Synthesis: fine. (Authorization: Bearer {key})"] * 2
    job = GenerateJob(output=tmp_path / "t.jsonl", backoff_base=0)
    stats = run_generate(
        job, teacher, FilePromptSource({"path": prompts_file(tmp_path, 3)}), progress=False
    )
    data = (tmp_path / "t.jsonl").read_bytes()
    assert key.encode() not in data and b"Bearer ***" in data
    assert stats.scrubbed == 2 and stats.written == 3
    assert (
        orjson.loads((tmp_path / "t.jsonl.manifest.json").read_bytes())["counts"]["scrubbed"] == 2
    )


class KeyedTeacher(RuleTeacher):
    """Options like an HTTP teacher's: a key in several places, and max_tokens."""

    class Options(RuleTeacher.Options):
        base_url: str = ""
        api_key: str = ""
        api_key_env: str = "KEYED_API_KEY"
        max_tokens: int = 64
        extra_body: dict[str, Any] = {}


def test_the_manifest_masks_keys_anywhere_but_not_max_tokens(tmp_path: Path) -> None:
    teacher = KeyedTeacher(
        {
            "base_url": "https://user:sk-url-key-777777@api.example/v1",
            "api_key": "sk-option-key-888888",
            "extra_body": {"api_key": "sk-body-key-999999"},
        }
    )
    job = GenerateJob(output=tmp_path / "t.jsonl", limit=1)
    run_generate(
        job, teacher, FilePromptSource({"path": prompts_file(tmp_path, 2)}), progress=False
    )
    raw = (tmp_path / "t.jsonl.manifest.json").read_bytes()
    for key in (b"sk-url-key-777777", b"sk-option-key-888888", b"sk-body-key-999999"):
        assert key not in raw
    options = orjson.loads(raw)["config"]["teacher_options"]
    assert options["max_tokens"] == 64 and options["api_key_env"] == "KEYED_API_KEY"
    assert options["api_key"] == "***" and options["extra_body"] == {"api_key": "***"}
    assert options["base_url"] == "https://user:***@api.example/v1"


# ----- exit statuses, through the command --------------------------------------------------


def test_exit_statuses_0_3_4(plugin_site: Path, tmp_path: Path) -> None:
    base = ["generate", "--teacher", "echo", "--mode", "single", "--quiet"]
    ok = hegelion(
        plugin_site, *base, "--prompt-file", prompts_file(tmp_path, 3), "-o", tmp_path / "a.jsonl"
    )
    assert ok.returncode == ExitCode.OK, ok.stderr
    again = hegelion(
        plugin_site, *base, "--prompt-file", prompts_file(tmp_path, 3), "-o", tmp_path / "a.jsonl"
    )
    assert again.returncode == ExitCode.OK and "(0 new)" in again.stdout  # nothing left to do
    some = hegelion(
        plugin_site,
        *base,
        "--prompt-file",
        prompts_file(tmp_path, 4, " [echo-drop]"),
        "-o",
        tmp_path / "b.jsonl",
    )
    assert some.returncode == ExitCode.SOME_REJECTED, some.stderr
    assert "2 records (2 new), 2 rejected" in some.stdout
    none = hegelion(
        plugin_site,
        *base,
        "-t",
        "style=plain",
        "--prompt-file",
        prompts_file(tmp_path, 3),
        "-o",
        tmp_path / "c.jsonl",
    )
    assert (
        none.returncode == ExitCode.ALL_REJECTED and "0 records (0 new), 3 rejected" in none.stdout
    )


@pytest.mark.parametrize(
    ("sig", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_signals_exit_130_and_143_leaving_valid_files(
    plugin_site: Path, tmp_path: Path, sig: signal.Signals, code: int, word: str
) -> None:
    out = tmp_path / "traces.jsonl"
    # 30 prompts of 0.5 s each: a signal sent after the first record lands mid-run even
    # on a loaded machine (with 7, a descheduled test could find the run already over).
    total = 30
    (tmp_path / "p.txt").write_text("fast\n" + "".join(f"slow {i}\n" for i in range(total - 1)))
    args = [
        sys.executable,
        "-m",
        "hegelion_core",
        "generate",
        "--prompt-file",
        str(tmp_path / "p.txt"),
        "-o",
        str(out),
        "--teacher",
        "echo",
        "-t",
        "delay=0.5",
        "--mode",
        "single",
        "--concurrency",
        "1",
        "--quiet",
    ]
    proc = subprocess.Popen(
        args,
        env=hegelion_env(plugin_site),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a job started in the background (CI, nohup) inherits
        # SIGINT ignored, and Python keeps it ignored, so Ctrl-C would never arrive.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not (out.exists() and out.read_bytes().count(b"\n") >= 1) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert word in stderr and "Traceback" not in stderr
    rows = lines(out)
    assert 1 <= len(rows) < total
    manifest = orjson.loads((tmp_path / "traces.jsonl.manifest.json").read_bytes())
    assert manifest["counts"]["written"] == len(rows) and manifest["counts"]["exit_code"] == code


# ----- end to end: the openai teacher on the scripted server ---------------------------------


@pytest.fixture
def openai_plugin() -> None:
    pytest.importorskip("hegelion_openai")


def generate_cli(tmp_path: Path, base_url: str, *extra: str, n: int = 6, **env: str) -> Any:
    """``hegelion generate`` in this process (click's runner), openai teacher."""
    from click.testing import CliRunner

    from hegelion_core.cli import cli

    args = [
        "generate",
        "--prompt-file",
        str(prompts_file(tmp_path, n)),
        "-o",
        str(tmp_path / "t.jsonl"),
        "--teacher",
        "openai",
        "--base-url",
        base_url,
        "-m",
        "scripted-model",
        "--mode",
        "single",
        "--quiet",
        *extra,
    ]
    env = {"HEGELION_CONFIG_DIR": str(tmp_path / "config"), **env}
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def test_cli_three_runs_on_a_bad_key_then_the_good_key_generates_everything(
    tmp_path: Path, openai_plugin: None
) -> None:
    with ScriptedOpenAIServer(api_key="sk-good-key-123456") as server:
        for _ in range(3):
            bad = generate_cli(tmp_path, server.base_url, OPENAI_API_KEY="sk-bad-key-654321")
            assert bad.exit_code == ExitCode.STOPPED, bad.output
            assert "stopped early: the teacher refused the credentials" in bad.stderr
            assert "OPENAI_API_KEY" in bad.stderr and "sk-bad-key-654321" not in bad.output
        good = generate_cli(tmp_path, server.base_url, OPENAI_API_KEY="sk-good-key-123456")
    assert good.exit_code == ExitCode.OK, good.output
    assert "6 records (6 new), 0 rejected" in good.stdout
    assert {r["blame"] for r in lines(tmp_path / "t.jsonl.rejects.jsonl")} == {"auth"}


def test_cli_server_down_with_max_retries_1_then_up(tmp_path: Path, openai_plugin: None) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    down = generate_cli(tmp_path, url, "--max-retries", "1", OPENAI_API_KEY="sk-any-key-000000")
    assert down.exit_code == ExitCode.ALL_REJECTED, down.output
    assert "6 rejected (6 not the prompts' fault, not counted)" in down.stdout
    with ScriptedOpenAIServer(port=port):
        up = generate_cli(tmp_path, url, "--max-retries", "1", OPENAI_API_KEY="sk-any-key-000000")
    assert up.exit_code == ExitCode.OK and "6 records (6 new)" in up.stdout, up.output


def test_cli_breaker_stops_a_5xx_storm_early(tmp_path: Path, openai_plugin: None) -> None:
    with ScriptedOpenAIServer(script=[("status", 500)] * 200) as server:
        stormed = generate_cli(
            tmp_path,
            server.base_url,
            "--max-retries",
            "0",
            "--stop-after-failures",
            "3",
            "--concurrency",
            "1",
            n=30,
            OPENAI_API_KEY="sk-any-key-000000",
        )
        assert stormed.exit_code == ExitCode.STOPPED, stormed.output
        assert (
            "stopped early: 3 prompts in a row failed for reasons not their own" in stormed.stderr
        )
        assert len(server.completion_requests) == 3
        server.reset()
        healed = generate_cli(
            tmp_path,
            server.base_url,
            "--max-retries",
            "0",
            n=30,
            OPENAI_API_KEY="sk-any-key-000000",
        )
    assert healed.exit_code == ExitCode.OK and "30 records (30 new)" in healed.stdout, healed.output


def test_cli_retry_after_3600_stops_cleanly(tmp_path: Path, openai_plugin: None) -> None:
    script = [("ok",), ("ok",), *[("status", 429, {"Retry-After": "3600"})] * 20]
    with ScriptedOpenAIServer(script=script) as server:
        start = time.monotonic()
        result = generate_cli(
            tmp_path,
            server.base_url,
            "--concurrency",
            "1",
            "--timeout",
            "10",
            OPENAI_API_KEY="sk-any-key-000000",
        )
    assert time.monotonic() - start < 60
    assert result.exit_code == ExitCode.STOPPED, result.output
    assert "asked to wait 3600s (Retry-After), longer than --max-retry-wait 300s" in result.stderr
    assert len(lines(tmp_path / "t.jsonl")) == 2


def test_cli_an_answer_echoing_the_key_is_stored_scrubbed(
    tmp_path: Path, openai_plugin: None
) -> None:
    key = "sk-echo-me-" + "7" * 20
    with ScriptedOpenAIServer(echo_credentials=True) as server:
        result = generate_cli(tmp_path, server.base_url, n=3, OPENAI_API_KEY=key)
    assert result.exit_code == ExitCode.OK, result.output
    data = (tmp_path / "t.jsonl").read_bytes()
    assert key.encode() not in data and b"Authorization: Bearer ***" in data
    assert ", 3 keys scrubbed from answers" in result.stdout
    assert (
        orjson.loads((tmp_path / "t.jsonl.manifest.json").read_bytes())["counts"]["scrubbed"] == 3
    )


def test_the_openai_teacher_classifies_auth_and_connection_failures(
    openai_plugin: None, monkeypatch
) -> None:
    from hegelion_openai.teacher import OpenAITeacher

    from hegelion_core.testing.calls import complete_error

    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-000000")
    with ScriptedOpenAIServer(api_key="sk-right-000000") as server:
        refused = complete_error(
            OpenAITeacher(base_url=server.base_url), [Message(role="user", content="q")]
        )
        url = server.base_url
    assert refused.status == 401 and refused.blame == "auth"
    down = complete_error(OpenAITeacher(base_url=url), [Message(role="user", content="q")])
    assert down.blame == "service" and down.retryable
