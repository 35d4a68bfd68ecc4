"""The kimi-cli teacher's parts that need no Kimi CLI: options, prompts, output
parsing (on output recorded from kimi-cli 1.52.0), and process-group handling with
stand-in scripts that behave worse than the CLI does (ignore SIGTERM, leave
grandchildren behind)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from hegelion_kimi import cli
from hegelion_kimi.cli import KimiCLITeacher, RunResult, render_prompt, run_in_group
from kimi_test_key import TEST_KEY

from hegelion_core.contracts import TeacherError
from hegelion_core.errors import OptionsError
from hegelion_core.records import Message

# ----- options -------------------------------------------------------------------------


def test_defaults(moonshot_key: str) -> None:
    options = KimiCLITeacher().options
    assert options.binary == "kimi" and options.extra_args == []
    assert options.model is None and options.base_url is None  # Moonshot, kimi-k2-thinking
    assert options.api_key_env == "MOONSHOT_API_KEY" and not options.use_user_config


@pytest.mark.parametrize(
    "arg, why",
    [
        ("--yolo", "auto-approves tool calls"),
        ("-y", "auto-approves tool calls"),
        ("--afk", "auto-approves tool calls"),
        ("--agent", "loads an agent with tools"),
        ("--agent-file", "replaces Hegelion's tool-less agent"),
        ("--mcp-config-file", "adds MCP tools"),
        ("--mcp-config", "adds MCP tools"),
        ("--config-file", "replaces Hegelion's config"),
        ("--work-dir", "empty working directory"),
        ("--model", "use the `model` option"),
        ("acp", ""),  # a subcommand
        ("--thinking=1", ""),
        ("--max-steps-per-turn", ""),  # unknown to the allowlist, so refused
    ],
)
def test_extra_args_that_could_enable_tools_are_refused(
    moonshot_key: str, arg: str, why: str
) -> None:
    with pytest.raises(OptionsError, match="extra_args") as info:
        KimiCLITeacher(extra_args=["--no-thinking", arg])
    assert repr(arg) in str(info.value) and why in str(info.value)


def test_allowed_extra_args(moonshot_key: str) -> None:
    args = ["--thinking", "--no-thinking", "--verbose", "--debug"]
    assert KimiCLITeacher(extra_args=args).options.extra_args == args


def test_base_url_conflicts_with_user_config(moonshot_key: str) -> None:
    with pytest.raises(OptionsError, match="base_url comes from your Kimi config"):
        KimiCLITeacher(use_user_config=True, base_url="http://127.0.0.1:1/v1")


@pytest.mark.parametrize("binary", ["", [], ["kimi", ""]])
def test_binary_must_be_a_command(moonshot_key: str, binary: object) -> None:
    with pytest.raises(OptionsError, match="binary"):
        KimiCLITeacher(binary=binary)


def test_missing_binary_is_a_clear_permanent_error(moonshot_key: str) -> None:
    teacher = KimiCLITeacher(binary="no-such-kimi-binary-here")
    with pytest.raises(TeacherError, match="not an executable on PATH") as info:
        asyncio.run(teacher.complete([Message(role="user", content="hi")]))
    assert not info.value.retryable


def test_a_binary_that_is_not_kimi_is_refused(moonshot_key: str) -> None:
    teacher = KimiCLITeacher(binary="true")  # exits 0, prints nothing
    with pytest.raises(TeacherError, match="does not look like Kimi CLI") as info:
        asyncio.run(teacher.complete([Message(role="user", content="hi")]))
    assert not info.value.retryable


# ----- prompts -------------------------------------------------------------------------


def test_single_user_turn_goes_as_it_is() -> None:
    system, prompt = render_prompt(
        [
            Message(role="system", content="Be brief."),
            Message(role="system", content="Use a thesis."),
            Message(role="user", content="Why is the sky blue?"),
        ]
    )
    assert system == "Be brief.\n\nUse a thesis."
    assert prompt == "Why is the sky blue?"


def test_earlier_turns_become_a_transcript() -> None:
    _, prompt = render_prompt(
        [
            Message(role="user", content="Thesis?"),
            Message(role="assistant", content="THESIS: yes."),
            Message(role="user", content="Now attack it."),
        ]
    )
    assert prompt == "[user]\nThesis?\n\n[assistant]\nTHESIS: yes.\n\n[user]\nNow attack it."


@pytest.mark.parametrize("text", ["/init", "  /add-dir /etc", "/yolo"])
def test_a_slash_prompt_is_labelled_so_it_is_not_a_command(text: str) -> None:
    _, prompt = render_prompt([Message(role="user", content=text)])
    assert prompt.startswith("[user]\n") and prompt.endswith(text)


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [Message(role="system", content="x")],
        [Message(role="user", content="q"), Message(role="assistant", content="a")],
        [Message(role="user", content="   ")],
    ],
)
def test_conversation_must_end_with_a_user_turn(messages: list[Message]) -> None:
    with pytest.raises(TeacherError) as info:
        render_prompt(messages)
    assert not info.value.retryable


# ----- output, as kimi-cli 1.52.0 prints it --------------------------------------------

# Recorded from `python -m kimi_cli.cli --print --output-format stream-json` (1.52.0).
THINK_AND_TEXT = (
    '{"role":"assistant","content":[{"type":"think","think":"thinking hard",'
    '"encrypted":null},{"type":"text","text":"Paris is the capital."}]}\n'
)
PLAIN_TEXT = '{"role":"assistant","content":"You said: hi"}\n'
ERROR_401 = (
    "Error code: 401 - {'error': {'message': 'scripted status 401', 'type': 'scripted\n"
    "', 'code': 401}}\n"
)
EMPTY_RESPONSE = "The API returned an empty response.\n"
RESUME_HINT = "\nTo resume this session: kimi -r 7d4bcd0c-3024-412a-a1ce-b98f9a239787\n"
TOOL_CALL = (
    '{"role":"assistant","content":"I will run it.","tool_calls":[{"type":"function",'
    '"id":"call_1","function":{"name":"Shell","arguments":"{\\"command\\": \\"ls\\"}"}}]}\n'
    '{"role":"tool","content":"Tool `Shell` not found","tool_call_id":"call_1"}\n'
)


def test_text_parts_are_kept_and_thinking_dropped() -> None:
    assert cli._final_text(RunResult(0, THINK_AND_TEXT, RESUME_HINT)) == "Paris is the capital."


def test_plain_string_content() -> None:
    assert cli._final_text(RunResult(0, PLAIN_TEXT, RESUME_HINT)) == "You said: hi"


def test_last_assistant_message_wins() -> None:
    second = '{"role":"assistant","content":"final"}\n'
    assert cli._final_text(RunResult(0, PLAIN_TEXT + second, "")) == "final"


def test_tool_calls_are_refused_even_on_success() -> None:
    with pytest.raises(TeacherError, match=r"tool calls \(Shell\)") as info:
        cli._final_text(RunResult(0, TOOL_CALL, ""))
    assert not info.value.retryable


@pytest.mark.parametrize(
    "result, retryable, status",
    [
        (RunResult(1, ERROR_401, RESUME_HINT), False, 401),
        (RunResult(1, "Error code: 503 - {'error': 'busy'}\n", ""), True, 503),
        (RunResult(1, "Error code: 429 - {'error': 'slow down'}\n", ""), True, 429),
        (RunResult(75, EMPTY_RESPONSE, RESUME_HINT), True, None),
        (RunResult(1, "Max number of steps reached: 1\n", ""), False, None),
        (RunResult(2, "", "Usage: kimi [OPTIONS]\nError: No such option: --bogus\n"), False, None),
        (RunResult(-9, "", ""), True, None),
    ],
)
def test_exit_statuses(result: RunResult, retryable: bool, status: int | None) -> None:
    with pytest.raises(TeacherError) as info:
        cli._final_text(result)
    assert info.value.retryable is retryable and info.value.status == status
    assert f"status {result.returncode}" in str(info.value)


@pytest.mark.parametrize(
    "stdout",
    [
        "",
        "not json at all\n",
        '{"type": "Notification"}\n',
        '{"role":"assistant","content":[{"type":"think","think":"x"}]}\n',
    ],
)
def test_success_without_an_answer_is_retryable(stdout: str) -> None:
    with pytest.raises(TeacherError, match="no assistant message") as info:
        cli._final_text(RunResult(0, stdout, ""))
    assert info.value.retryable


def test_error_text_is_scrubbed_of_the_key(moonshot_key: str) -> None:
    KimiCLITeacher()  # reads the key, so scrub knows it
    with pytest.raises(TeacherError) as info:
        cli._final_text(RunResult(1, f"Error code: 401 - bad key {TEST_KEY}\n", ""))
    assert TEST_KEY not in str(info.value) and "***" in str(info.value)


def test_usage_comes_from_the_session_wire_log(tmp_path: Path) -> None:
    wire = tmp_path / "sessions" / "566c409f" / "7e6d5cc0" / "wire.jsonl"
    wire.parent.mkdir(parents=True)
    status = {
        "type": "StatusUpdate",
        "payload": {
            "context_tokens": 12,
            "token_usage": {
                "input_other": 12,
                "output": 4,
                "input_cache_read": 3,
                "input_cache_creation": 0,
            },
        },
    }
    wire.write_text(
        "\n".join(
            [
                json.dumps({"type": "metadata", "protocol_version": "1.10"}),
                json.dumps({"timestamp": 1.0, "message": {"type": "TurnBegin", "payload": {}}}),
                json.dumps({"timestamp": 2.0, "message": status}),
                json.dumps(
                    {
                        "timestamp": 3.0,
                        "message": {"type": "StatusUpdate", "payload": {"token_usage": None}},
                    }
                ),
                "{torn line with token_usage",
            ]
        )
    )
    usage = cli._usage_from_sessions(tmp_path)
    assert (usage.prompt_tokens, usage.completion_tokens) == (15, 4)
    assert cli._usage_from_sessions(tmp_path / "nowhere").total_tokens == 0


# ----- process groups ------------------------------------------------------------------


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)
    return path


def _gone(pid: int, *, group: bool, within: float = 10.0) -> bool:
    """True once no process has this pid (or pgid); orphans take init a moment to reap."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            (os.killpg if group else os.kill)(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _run(argv: list[str], tmp_path: Path, timeout: float, stdin: str = "") -> RunResult:
    return asyncio.run(
        run_in_group(argv, stdin, cwd=tmp_path, env={"PATH": os.environ["PATH"]}, timeout=timeout)
    )


def test_timeout_kills_a_group_that_ignores_sigterm(tmp_path: Path) -> None:
    stubborn = _script(
        tmp_path / "stubborn",
        f"""
trap '' TERM
echo $$ > {tmp_path}/leader
( trap '' TERM; exec sleep 300 ) &
echo $! > {tmp_path}/child
exec sleep 300
""",
    )
    start = time.monotonic()
    with pytest.raises(TeacherError, match="did not finish within 1s") as info:
        _run([str(stubborn)], tmp_path, timeout=1)
    elapsed = time.monotonic() - start
    assert info.value.retryable
    assert elapsed < 1 + cli.KILL_GRACE_S + 4, elapsed  # SIGKILL after the grace period
    leader = int((tmp_path / "leader").read_text())
    child = int((tmp_path / "child").read_text())
    assert _gone(leader, group=True) and _gone(child, group=False)


def test_normal_exit_kills_leftover_grandchildren_and_does_not_wait_for_them(
    tmp_path: Path,
) -> None:
    leaver = _script(
        tmp_path / "leaver",
        f"""
sleep 300 &
echo $! > {tmp_path}/child
echo '{{"role":"assistant","content":"done"}}'
exit 0
""",
    )
    start = time.monotonic()
    result = _run([str(leaver)], tmp_path, timeout=60)
    # The grandchild holds stdout open; the call still ends when the leader exits.
    assert time.monotonic() - start < 10
    assert result.returncode == 0 and cli._final_text(result) == "done"
    assert _gone(int((tmp_path / "child").read_text()), group=False)


def test_cancellation_kills_the_group(tmp_path: Path) -> None:
    sleeper = _script(
        tmp_path / "sleeper",
        f"""
echo $$ > {tmp_path}/leader
sleep 300 &
echo $! > {tmp_path}/child
wait
""",
    )

    async def go() -> None:
        task = asyncio.ensure_future(
            run_in_group(
                [str(sleeper)], "", cwd=tmp_path, env={"PATH": os.environ["PATH"]}, timeout=60
            )
        )
        for _ in range(200):  # bounded: the script writes its pids at once
            if (tmp_path / "child").exists():
                break
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    leader = int((tmp_path / "leader").read_text())
    assert _gone(leader, group=True)
    assert _gone(int((tmp_path / "child").read_text()), group=False)


def test_stdin_reaches_the_process_and_exit_status_comes_back(tmp_path: Path) -> None:
    echo = _script(tmp_path / "echo", "cat; echo; echo oops >&2; exit 3\n")
    result = _run([str(echo)], tmp_path, timeout=30, stdin="naïve prompt 😀")
    assert result.returncode == 3
    assert result.stdout.strip() == "naïve prompt 😀" and result.stderr.strip() == "oops"


def test_a_process_that_never_reads_stdin_is_fine(tmp_path: Path) -> None:
    deaf = _script(tmp_path / "deaf", "exec 0<&-; echo ok\n")
    result = _run([str(deaf)], tmp_path, timeout=30, stdin="x" * 1_000_000)
    assert result.returncode == 0 and result.stdout.strip() == "ok"


def test_sigterm_alone_is_enough_for_a_polite_group(tmp_path: Path) -> None:
    polite = _script(
        tmp_path / "polite",
        f"""
trap 'echo term > {tmp_path}/got; exit 0' TERM
echo $$ > {tmp_path}/leader
while true; do sleep 0.05; done
""",
    )
    with pytest.raises(TeacherError):
        _run([str(polite)], tmp_path, timeout=1)
    assert (tmp_path / "got").read_text().strip() == "term"
    assert _gone(int((tmp_path / "leader").read_text()), group=True)
