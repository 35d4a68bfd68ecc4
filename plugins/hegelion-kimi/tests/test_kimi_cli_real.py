"""The kimi-cli teacher running the real Kimi CLI (PyPI kimi-cli, in its own venv)
against scripted OpenAI-compatible servers on 127.0.0.1.

What is checked here is what the teacher promises: no tools offered to the model in
any request the CLI makes, tool calls from the endpoint never executed, a fresh empty
working directory and an isolated HOME that are removed afterwards, the user's own
Kimi settings (hooks, MCP servers) never loaded, the key only in the environment,
and no process left behind after a timeout or a cancellation. Where a check is only
meaningful if the hostile input would otherwise work, a control run shows it does.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from extras_server import Answer, extras_server
from hegelion_kimi.cli import KimiCLITeacher
from kimi_test_key import TEST_KEY

from hegelion_core.contracts import Completion, TeacherError
from hegelion_core.records import Message
from hegelion_core.testing import TeacherContract
from hegelion_core.testing.openai_server import ScriptedOpenAIServer

ASK = [Message(role="user", content="Is a hot dog a sandwich?")]


def complete(teacher: KimiCLITeacher, messages: list[Message] = ASK, **kwargs: Any) -> Completion:
    return asyncio.run(teacher.complete(messages, **kwargs))


def failure(teacher: KimiCLITeacher, messages: list[Message] = ASK) -> TeacherError:
    with pytest.raises(TeacherError) as info:
        complete(teacher, messages)
    return info.value


def offered_no_tools(body: Any) -> bool:
    return isinstance(body, dict) and not body.get("tools") and "tool_choice" not in body


def gone(pid: int, *, group: bool, within: float = 10.0) -> bool:
    """True once no process has this pid (or pgid); orphans take init a moment to reap."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            (os.killpg if group else os.kill)(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def recorder(tmp_path: Path, kimi_venv: Path) -> tuple[list[str], Path]:
    """A wrapper that records where and how it was started, starts a grandchild in its
    process group, then becomes the real CLI (exec keeps its pid and group)."""
    record = tmp_path / "record.jsonl"
    python = kimi_venv / "bin" / "python"
    wrapper = tmp_path / "kimi-recorder"
    wrapper.write_text(f"""#!{python}
import json, os, subprocess, sys
child = subprocess.Popen(["sleep", "300"]) if "--print" in sys.argv else None
entry = {{"pid": os.getpid(), "pgid": os.getpgid(0), "cwd": os.getcwd(),
          "entries": sorted(os.listdir(".")), "home": os.environ.get("HOME"),
          "share": os.environ.get("KIMI_SHARE_DIR"), "env": sorted(os.environ),
          "argv": sys.argv[1:], "child": child.pid if child else None}}
with open({str(record)!r}, "a") as fp:
    fp.write(json.dumps(entry) + "\\n")
os.execv({str(python)!r}, [{str(python)!r}, "-m", "kimi_cli.cli", *sys.argv[1:]])
""")
    wrapper.chmod(0o755)
    return [str(wrapper)], record


def last_run(record: Path) -> dict[str, Any]:
    runs = [json.loads(line) for line in record.read_text().splitlines()]
    return [r for r in runs if "--print" in r["argv"]][-1]


class TestKimiCLIContract(TeacherContract):
    @pytest.fixture
    def driver(
        self, server: ScriptedOpenAIServer, moonshot_key: str, kimi_cli: list[str]
    ) -> KimiCLITeacher:
        return KimiCLITeacher(binary=kimi_cli, base_url=server.base_url, timeout=120)

    @pytest.fixture
    def cut_call(self) -> None:
        return None  # kimi-cli's output does not say why the model stopped: see below


def test_a_cut_answer_is_not_reported_as_finished(
    server: ScriptedOpenAIServer, moonshot_key: str, kimi_cli: list[str]
) -> None:
    """The endpoint cuts the answer and says ``length``; kimi-cli's stream-json output
    drops that, so the teacher reports no finish reason rather than a made-up ``stop``."""
    teacher = KimiCLITeacher(binary=kimi_cli, base_url=server.base_url, timeout=120)
    result = complete(teacher, max_tokens=4)
    (request,) = server.completion_requests
    assert request.body["max_completion_tokens"] == 4
    assert len(result.text.split()) == 4  # cut by the server, which answered "length"
    assert result.finish_reason is None and not result.truncated


def test_no_request_offers_tools_and_the_key_rides_in_the_environment(
    server: ScriptedOpenAIServer, moonshot_key: str, kimi_cli: list[str]
) -> None:
    teacher = KimiCLITeacher(binary=kimi_cli, base_url=server.base_url, timeout=120)
    messages = [Message(role="system", content="Answer as a dialectic."), *ASK]
    result = complete(teacher, messages, max_tokens=200, temperature=0.25)

    requests = server.completion_requests
    assert requests, "the CLI made no request"
    assert all(offered_no_tools(r.body) for r in requests), [r.body.get("tools") for r in requests]
    (request,) = requests  # one step, one attempt
    assert request.sent_bearer(TEST_KEY)
    assert request.body["model"] == "kimi-k2-thinking"
    assert request.body["messages"] == [
        {"role": "system", "content": "Answer as a dialectic."},
        {"role": "user", "content": "Is a hot dog a sandwich?"},
    ]
    assert request.body["max_completion_tokens"] == 200 and request.body["temperature"] == 0.25
    assert "THESIS" in result.text.upper() and result.model == "kimi-k2-thinking"
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    assert teacher.version is not None and teacher.version >= (1, 0, 0)


def test_fresh_empty_workdir_isolated_home_and_nothing_left_behind(
    server: ScriptedOpenAIServer,
    moonshot_key: str,
    recorder: tuple[list[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The user's own Kimi settings: if they leaked into the CLI, the call would go to
    # port 9 (nothing there) or carry the wrong key.
    monkeypatch.setenv("KIMI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("KIMI_API_KEY", "sk-user-shell-kimi-key-000")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-user-shell-openai-key-000")
    binary, record = recorder
    result = complete(KimiCLITeacher(binary=binary, base_url=server.base_url, timeout=120))
    assert result.text

    run = last_run(record)
    work, home = Path(run["cwd"]), Path(run["home"])
    root = work.parent
    assert root.name.startswith("hegelion-kimi-") and work.name == "work"
    assert run["entries"] == []  # started in an empty directory
    assert home == root / "home" and run["share"] == str(home / ".kimi")
    assert home != Path.home()
    assert "KIMI_API_KEY" in run["env"]
    assert not {"KIMI_BASE_URL", "OPENAI_API_KEY", "MOONSHOT_API_KEY"} & set(run["env"])
    assert not any(TEST_KEY in arg for arg in run["argv"])
    assert server.completion_requests[-1].sent_bearer(TEST_KEY)
    assert not root.exists(), "the temporary HOME and working directory must be removed"
    assert gone(run["pgid"], group=True) and gone(run["child"], group=False)


def test_system_prompt_reaches_the_model_verbatim(
    server: ScriptedOpenAIServer, moonshot_key: str, kimi_cli: list[str]
) -> None:
    # The CLI renders its system prompt as a Jinja template: none of this may be evaluated.
    system = (
        'Use {{ 7 * 7 }} and {% include "/etc/passwd" %} and ${KIMI_WORK_DIR}.\n'
        "Quotes \" ' and \\ backslash, tab\there, naïve café, 😀, and \x7f."
    )
    complete(
        KimiCLITeacher(binary=kimi_cli, base_url=server.base_url, timeout=120),
        [Message(role="system", content=system), *ASK],
    )
    (request,) = server.completion_requests
    assert request.body["messages"][0] == {"role": "system", "content": system}


def test_a_slash_prompt_is_text_not_a_cli_command(
    server: ScriptedOpenAIServer, moonshot_key: str, recorder: tuple[list[str], Path]
) -> None:
    binary, record = recorder
    complete(
        KimiCLITeacher(binary=binary, base_url=server.base_url, timeout=120),
        [Message(role="user", content="/init")],
    )
    (request,) = server.completion_requests  # /init would have run its own agent turn
    assert request.body["messages"][-1] == {"role": "user", "content": "[user]\n/init"}


def _control_config(tmp: Path, base_url: str) -> Path:
    config = tmp / "control.json"
    config.write_text(
        json.dumps(
            {
                "default_model": "m",
                "telemetry": False,
                "providers": {
                    "p": {"type": "kimi", "base_url": base_url, "api_key": "sk-control-key"}
                },
                "models": {"m": {"provider": "p", "model": "m", "max_context_size": 8192}},
            }
        )
    )
    return config


def _run_cli_directly(
    kimi_cli: list[str], tmp: Path, args: list[str], share: Path | None = None
) -> subprocess.CompletedProcess[str]:
    work = tmp / "control-work"
    work.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp / "control-home"),
        "KIMI_SHARE_DIR": str(share or tmp / "control-home" / ".kimi"),
    }
    return subprocess.run(
        [*kimi_cli, "--print", "--output-format", "stream-json", *args],
        input="Go.",
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=180,
        start_new_session=True,
    )


def test_tool_calls_from_the_endpoint_execute_nothing(
    moonshot_key: str, kimi_cli: list[str], tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    answer = Answer(
        text="Running it.",
        finish_reason="tool_calls",
        tool_calls=[
            {
                "id": "call_1",
                "type": "function",
                "function": {
                    "name": "Shell",
                    "arguments": json.dumps({"command": f"touch {marker}"}),
                },
            }
        ],
    )
    with extras_server(answer) as srv:
        # Control: the CLI's default agent in print mode runs the endpoint's command.
        control = _run_cli_directly(
            kimi_cli,
            tmp_path,
            [
                "--config-file",
                str(_control_config(tmp_path, srv.base_url)),
                "--agent",
                "default",
                "--max-steps-per-turn",
                "2",
            ],
        )
        assert marker.exists(), (
            "control run did not execute the tool call; the check "
            f"below would prove nothing: {control.stdout[-500:]}"
        )
        marker.unlink()
        srv.bodies.clear()

        teacher = KimiCLITeacher(binary=kimi_cli, base_url=srv.base_url, timeout=120)
        error = failure(teacher)
        bodies = list(srv.bodies)
    assert not error.retryable and "tool calls (Shell)" in str(error)
    assert not marker.exists(), "a tool call ran on this machine"
    assert bodies and all(offered_no_tools(b) for b in bodies)


def test_user_config_brings_providers_only_never_hooks_or_mcp(
    server: ScriptedOpenAIServer,
    kimi_cli: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook_marker, mcp_marker = tmp_path / "hook-ran", tmp_path / "mcp-ran"
    share = tmp_path / "user-kimi"
    share.mkdir()
    (share / "config.toml").write_text(f"""
default_model = "mine"
telemetry = false

[providers.mine]
type = "kimi"
base_url = "{server.base_url}"
api_key = "sk-user-config-key-1234"

[models.mine]
provider = "mine"
model = "user-model"
max_context_size = 8192

[[hooks]]
event = "SessionStart"
command = "touch {hook_marker}"
""")
    (share / "mcp.json").write_text(
        json.dumps(
            {
                "mcpServers": {
                    "evil": {"command": "/bin/sh", "args": ["-c", f"touch {mcp_marker}; sleep 1"]}
                }
            }
        )
    )

    # Control: run with the user's own setup, the hook and the MCP server both run.
    _run_cli_directly(
        kimi_cli, tmp_path, ["--config-file", str(share / "config.toml")], share=share
    )
    assert hook_marker.exists() and mcp_marker.exists(), "control run did not load them"
    hook_marker.unlink()
    mcp_marker.unlink()
    server.reset()

    monkeypatch.setenv("KIMI_SHARE_DIR", str(share))
    monkeypatch.delenv("MOONSHOT_API_KEY", raising=False)
    teacher = KimiCLITeacher(binary=kimi_cli, use_user_config=True, timeout=120)
    result = complete(teacher)
    assert result.model == "user-model" and result.text
    (request,) = server.completion_requests
    assert request.sent_bearer("sk-user-config-key-1234")
    assert request.body["model"] == "user-model" and offered_no_tools(request.body)
    assert not hook_marker.exists() and not mcp_marker.exists()


def test_user_config_model_must_exist(
    server: ScriptedOpenAIServer, kimi_cli: list[str], tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"""
[providers.p]
type = "kimi"
base_url = "{server.base_url}"
api_key = "sk-user-config-key-1234"
[models.known]
provider = "p"
model = "x"
max_context_size = 8192
""")
    teacher = KimiCLITeacher(
        binary=kimi_cli, use_user_config=True, user_config_file=config, model="unknown"
    )
    error = failure(teacher)
    assert not error.retryable and "'unknown' is not in your Kimi config" in str(error)
    assert not server.completion_requests


def test_reasoning_is_not_part_of_the_text(moonshot_key: str, kimi_cli: list[str]) -> None:
    answer = Answer(
        text="THESIS: yes. ANTITHESIS: no. SYNTHESIS: sometimes.",
        reasoning="private scratchpad about bread",
    )
    with extras_server(answer) as srv:
        result = complete(KimiCLITeacher(binary=kimi_cli, base_url=srv.base_url, timeout=120))
    assert result.text == answer.text


@pytest.mark.parametrize(
    "script, retryable, status",
    [
        ([("status", 401)], False, 401),
        ([("status", 400)], False, 400),
        ([("status", 503)] * 3, True, 503),  # the CLI's SDK retries twice, then exits 75
        ([("malformed",)], True, None),
    ],
)
def test_api_failures_map_to_teacher_errors(
    moonshot_key: str,
    kimi_cli: list[str],
    script: list[tuple[Any, ...]],
    retryable: bool,
    status: int | None,
) -> None:
    with ScriptedOpenAIServer(script) as srv:
        error = failure(KimiCLITeacher(binary=kimi_cli, base_url=srv.base_url, timeout=120))
    assert error.retryable is retryable and error.status == status, str(error)
    assert "kimi-cli exited with status" in str(error) and TEST_KEY not in str(error)


def test_timeout_kills_the_whole_process_group(
    moonshot_key: str, recorder: tuple[list[str], Path]
) -> None:
    binary, record = recorder
    with ScriptedOpenAIServer([("hang",)]) as srv:
        teacher = KimiCLITeacher(binary=binary, base_url=srv.base_url, timeout=10)
        start = time.monotonic()
        error = failure(teacher)
        elapsed = time.monotonic() - start
        assert srv.completion_requests, "the CLI never reached the server"
    assert error.retryable and "did not finish within 10s" in str(error)
    assert elapsed < 10 + 3 + 6, elapsed
    run = last_run(record)
    assert run["pid"] == run["pgid"], "the CLI must lead its own process group"
    assert gone(run["pgid"], group=True), "a process of the CLI's group survived the timeout"
    assert gone(run["child"], group=False)
    assert not Path(run["cwd"]).parent.exists()


def test_cancellation_kills_the_whole_process_group(
    moonshot_key: str, recorder: tuple[list[str], Path]
) -> None:
    binary, record = recorder
    with ScriptedOpenAIServer([("hang",)]) as srv:
        teacher = KimiCLITeacher(binary=binary, base_url=srv.base_url, timeout=300)

        async def go() -> None:
            task = asyncio.ensure_future(teacher.complete(ASK))
            for _ in range(1200):  # bounded: the CLI reaches the server in seconds
                if srv.completion_requests or task.done():
                    break
                await asyncio.sleep(0.05)
            assert srv.completion_requests, "the CLI never reached the server"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(go())
    run = last_run(record)
    assert gone(run["pgid"], group=True), "a process of the CLI's group survived cancellation"
    assert gone(run["child"], group=False)
    assert not Path(run["cwd"]).parent.exists()


def test_kimi_cli_1_52_stub_script_is_refused(
    server: ScriptedOpenAIServer, moonshot_key: str, kimi_venv: Path
) -> None:
    teacher = KimiCLITeacher(binary=str(kimi_venv / "bin" / "kimi"), base_url=server.base_url)
    error = failure(teacher)
    assert not error.retryable and "deprecation stub" in str(error)
    assert str(kimi_venv / "bin" / "python") in str(error) and '"kimi_cli.cli"' in str(error)
    assert not server.requests
