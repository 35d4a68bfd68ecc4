"""The ``kimi`` teacher against real HTTP: the openai SDK talking to a scripted server."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_KEY
from extras_server import Answer, extras_server
from hegelion_kimi.api import KimiTeacher

from hegelion_core.contracts import Completion, TeacherError
from hegelion_core.errors import HegelionError, OptionsError
from hegelion_core.records import Message
from hegelion_core.testing import TeacherContract
from hegelion_core.testing.calls import complete_error, complete_once
from hegelion_core.testing.openai_server import ScriptedOpenAIServer

ASK = [Message(role="user", content="Is a hot dog a sandwich?")]


def complete(teacher: KimiTeacher, messages: list[Message] = ASK, **kwargs: Any) -> Completion:
    return complete_once(teacher, messages, **kwargs)


def failure(teacher: KimiTeacher, **kwargs: Any) -> TeacherError:
    return complete_error(teacher, ASK, **kwargs)


class TestKimiTeacherContract(TeacherContract):
    @pytest.fixture
    def driver(self, server: ScriptedOpenAIServer, moonshot_key: str) -> KimiTeacher:
        return KimiTeacher({"base_url": server.base_url})


def test_defaults_are_moonshot_and_kimi_k2_thinking(moonshot_key: str) -> None:
    options = KimiTeacher().options
    assert options.base_url == "https://api.moonshot.ai/v1"
    assert options.model == "kimi-k2-thinking"
    assert options.api_key_env == "MOONSHOT_API_KEY"


def test_request_carries_the_moonshot_key_and_the_conversation(
        server: ScriptedOpenAIServer, moonshot_key: str) -> None:
    teacher = KimiTeacher(base_url=server.base_url, model="kimi-test")
    messages = [Message(role="system", content="Answer briefly."), *ASK]
    result = complete(teacher, messages, max_tokens=500, temperature=0.3)

    (request,) = server.completion_requests
    assert request.sent_bearer(TEST_KEY)
    assert request.body["model"] == "kimi-test"
    assert request.body["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Is a hot dog a sandwich?"},
    ]
    assert request.body["max_tokens"] == 500 and request.body["temperature"] == 0.3
    assert not request.body.get("stream") and "tools" not in request.body
    assert "THESIS" in result.text.upper()
    assert result.model == "kimi-test" and result.finish_reason == "stop"
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0


def test_key_env_option_names_another_variable(
        server: ScriptedOpenAIServer, moonshot_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KIMI_KEY", "sk-other-kimi-key-123456")
    complete(KimiTeacher(base_url=server.base_url, api_key_env="MY_KIMI_KEY"))
    (request,) = server.completion_requests
    assert request.sent_bearer("sk-other-kimi-key-123456") and not request.sent_bearer(TEST_KEY)


def test_key_from_hegelion_secrets_file(
        server: ScriptedOpenAIServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MOONSHOT_API_KEY", raising=False)
    monkeypatch.setenv("HEGELION_CONFIG_DIR", str(tmp_path))
    (tmp_path / "secrets.toml").write_text('MOONSHOT_API_KEY = "sk-from-secrets-file-99"\n')
    complete(KimiTeacher(base_url=server.base_url))
    assert server.completion_requests[0].sent_bearer("sk-from-secrets-file-99")


def test_missing_key_stops_at_construction(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.delenv("MOONSHOT_API_KEY", raising=False)
    monkeypatch.setenv("HEGELION_CONFIG_DIR", str(tmp_path))
    with pytest.raises(HegelionError, match="MOONSHOT_API_KEY"):
        KimiTeacher()


def test_timeout_must_be_positive(moonshot_key: str) -> None:
    with pytest.raises(OptionsError, match="timeout"):
        KimiTeacher(timeout=0)


# ----- faults --------------------------------------------------------------------------


@pytest.mark.parametrize("headers, expected", [
    ({"Retry-After": "7"}, 7.0),
    ({"retry-after-ms": "1500"}, 1.5),
    ({}, None),
])
def test_429_is_retryable_with_retry_after(moonshot_key: str, headers: dict[str, str],
                                           expected: float | None) -> None:
    with ScriptedOpenAIServer([("status", 429, headers)]) as srv:
        error = failure(KimiTeacher(base_url=srv.base_url))
        assert len(srv.completion_requests) == 1, "the SDK must not retry by itself"
    assert error.retryable and error.status == 429 and error.retry_after == expected


def test_retry_after_as_an_http_date(moonshot_key: str) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    with ScriptedOpenAIServer([("status", 429, {"Retry-After": when})]) as srv:
        error = failure(KimiTeacher(base_url=srv.base_url))
    assert error.retry_after is not None and 20 < error.retry_after <= 31


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retryable(moonshot_key: str, status: int) -> None:
    with ScriptedOpenAIServer([("status", status)]) as srv:
        error = failure(KimiTeacher(base_url=srv.base_url))
        assert len(srv.completion_requests) == 1
    assert error.retryable and error.status == status


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_are_not_retryable(moonshot_key: str, status: int) -> None:
    with ScriptedOpenAIServer([("status", status)]) as srv:
        error = failure(KimiTeacher(base_url=srv.base_url))
    assert not error.retryable and error.status == status
    assert f"HTTP {status}" in str(error) and f"scripted {status}" in str(error)


def test_error_text_never_holds_the_key(moonshot_key: str) -> None:
    body = {"error": {"message": f"Incorrect API key provided: {TEST_KEY}", "type": "auth"}}
    with ScriptedOpenAIServer([("status", 401, {}, body)]) as srv:
        error = failure(KimiTeacher(base_url=srv.base_url))
    assert TEST_KEY not in str(error) and "Incorrect API key provided: ***" in str(error)


def test_hung_server_times_out_retryably(moonshot_key: str) -> None:
    with ScriptedOpenAIServer([("hang",)]) as srv:
        error = failure(KimiTeacher(base_url=srv.base_url, timeout=0.5))
    assert error.retryable and "timed out after 0.5s" in str(error)


def test_refused_connection_is_retryable(moonshot_key: str) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = failure(KimiTeacher(base_url=f"http://127.0.0.1:{port}/v1", timeout=5))
    assert error.retryable and "connection error" in str(error)


@pytest.mark.parametrize("action", [("malformed",), ("truncated_stream",), ("close",)])
def test_broken_bodies_are_retryable(moonshot_key: str, action: tuple[str, ...]) -> None:
    with ScriptedOpenAIServer([action]) as srv:
        error = failure(KimiTeacher(base_url=srv.base_url, timeout=5))
    assert error.retryable, str(error)


def test_empty_content_is_a_retryable_malformed_answer(moonshot_key: str) -> None:
    with ScriptedOpenAIServer([("reply", "")]) as srv:
        error = failure(KimiTeacher(base_url=srv.base_url))
    assert error.retryable and "empty content" in str(error)


# ----- Kimi specifics ------------------------------------------------------------------


def test_reasoning_content_stays_out_of_the_text(moonshot_key: str) -> None:
    answer = Answer(text="THESIS: yes. ANTITHESIS: no. SYNTHESIS: it depends.",
                    reasoning="Let me think about bread geometry first.")
    with extras_server(answer) as srv:
        result = complete(KimiTeacher(base_url=srv.base_url))
    assert result.text == answer.text
    assert "bread geometry" not in result.text


def test_max_tokens_cut_shows_as_length(server: ScriptedOpenAIServer, moonshot_key: str) -> None:
    result = complete(KimiTeacher(base_url=server.base_url), max_tokens=4)
    assert result.finish_reason == "length" and result.truncated
    assert len(result.text.split()) == 4 and server.completion_requests[-1].body["max_tokens"] == 4


def test_an_answer_cut_after_reasoning_shows_as_length(moonshot_key: str) -> None:
    answer = Answer(text="THESIS: a hot dog is", reasoning="Bread first. " * 5,
                    finish_reason="length")
    with extras_server(answer) as srv:
        result = complete(KimiTeacher(base_url=srv.base_url), max_tokens=32)
    assert result.text == answer.text and result.truncated


def test_all_tokens_spent_reasoning_says_raise_max_tokens(moonshot_key: str) -> None:
    answer = Answer(text="", reasoning="Hmm, " * 20, finish_reason="length")
    with extras_server(answer) as srv:
        error = failure(KimiTeacher(base_url=srv.base_url), max_tokens=32)
    assert not error.retryable and "raise max_tokens" in str(error)


@pytest.mark.parametrize("mode, expected", [
    ("json_object", {"type": "json_object"}),
    ("json_schema", {"type": "json_schema",
                     "json_schema": {"name": "hegelion", "schema": {"type": "object"}}}),
    ("off", None),
])
def test_json_schema_follows_json_mode(server: ScriptedOpenAIServer, moonshot_key: str,
                                       mode: str, expected: object) -> None:
    complete(KimiTeacher(base_url=server.base_url, json_mode=mode),
             json_schema={"type": "object"})
    assert server.completion_requests[0].body.get("response_format") == expected


def test_one_teacher_serves_successive_event_loops(server: ScriptedOpenAIServer,
                                                   moonshot_key: str) -> None:
    teacher = KimiTeacher(base_url=server.base_url)
    for _ in range(3):  # a client bound to a closed loop would fail here
        assert asyncio.run(teacher.complete(ASK)).text
    asyncio.run(teacher.aclose())
    assert len(server.completion_requests) == 3
