"""Every failure a provider produces becomes a TeacherError that says whether to retry.

The SDK talks real HTTP to the scripted server, which injects each fault."""

from __future__ import annotations

import asyncio
import time

import pytest
from hegelion_openai.teacher import OpenAITeacher

from hegelion_core.contracts import Completion, TeacherError
from hegelion_core.testing.calls import QUESTION, complete_error
from hegelion_core.testing.openai_server import ScriptedOpenAIServer


@pytest.fixture(params=["httpx", "aiohttp"])
def transport(request: pytest.FixtureRequest) -> str:
    """Every fault, through both of the SDK's transports."""
    return request.param


@pytest.fixture
def teacher(server: ScriptedOpenAIServer, transport: str) -> OpenAITeacher:
    return OpenAITeacher(base_url=server.base_url, timeout=5, transport=transport)


def test_429_is_retryable_with_retry_after(server: ScriptedOpenAIServer, teacher: OpenAITeacher) -> None:
    server.enqueue(("status", 429, {"Retry-After": "1"}))
    error = complete_error(teacher)
    assert error.retryable and error.status == 429
    assert error.retry_after == 1.0


def test_503_retry_after_as_an_http_date(server: ScriptedOpenAIServer, teacher: OpenAITeacher) -> None:
    server.enqueue(("status", 503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    error = complete_error(teacher)
    assert error.retryable and error.status == 503
    assert error.retry_after == 0.0  # a date in the past: retry now


def test_retry_after_ms_wins(server: ScriptedOpenAIServer, teacher: OpenAITeacher) -> None:
    server.enqueue(("status", 429, {"retry-after-ms": "250", "Retry-After": "1"}))
    assert complete_error(teacher).retry_after == 0.25


def test_500_is_retryable(server: ScriptedOpenAIServer, teacher: OpenAITeacher) -> None:
    server.enqueue(("status", 500))
    error = complete_error(teacher)
    assert error.retryable and error.status == 500 and error.retry_after is None
    assert "500" in str(error)


def test_hung_connection_times_out_within_the_timeout(server: ScriptedOpenAIServer, transport: str) -> None:
    teacher = OpenAITeacher(base_url=server.base_url, timeout=0.5, transport=transport)
    server.enqueue(("hang",))
    start = time.monotonic()
    error = complete_error(teacher)
    elapsed = time.monotonic() - start
    assert error.retryable
    assert 0.4 <= elapsed < 2.0, elapsed


def test_hung_stream_times_out_too(server: ScriptedOpenAIServer, transport: str) -> None:
    teacher = OpenAITeacher(base_url=server.base_url, timeout=0.5, stream=True, transport=transport)
    server.enqueue(("hang",))
    start = time.monotonic()
    assert complete_error(teacher).retryable
    assert time.monotonic() - start < 2.0


def test_malformed_json_is_retryable(server: ScriptedOpenAIServer, teacher: OpenAITeacher) -> None:
    server.enqueue(("malformed",))
    error = complete_error(teacher)
    assert error.retryable and "malformed" in str(error)


def test_json_without_choices_is_retryable(server: ScriptedOpenAIServer, teacher: OpenAITeacher) -> None:
    server.enqueue(("status", 200, {}, {"id": "x", "object": "chat.completion"}))
    error = complete_error(teacher)
    assert error.retryable and "malformed" in str(error)


@pytest.mark.parametrize("how", ["mid-chunk", "clean"])
def test_truncated_stream_is_retryable(server: ScriptedOpenAIServer, how: str, transport: str) -> None:
    teacher = OpenAITeacher(base_url=server.base_url, timeout=5, stream=True, transport=transport)
    server.enqueue(("truncated_stream",) if how == "mid-chunk" else ("truncated_stream", "clean"))
    error = complete_error(teacher)
    assert error.retryable
    if how == "clean":  # the HTTP body ended properly; only the missing finish reason tells
        assert "truncated stream" in str(error)


def test_truncated_body_is_retryable(server: ScriptedOpenAIServer, teacher: OpenAITeacher) -> None:
    server.enqueue(("truncated_stream",))  # a non-streaming call gets half its JSON body
    assert complete_error(teacher).retryable


def test_dropped_connection_is_retryable(server: ScriptedOpenAIServer, teacher: OpenAITeacher) -> None:
    server.enqueue(("close",))
    error = complete_error(teacher)
    # httpx reports a connection error; the SDK's aiohttp transport, a timeout.
    assert error.retryable and ("connection" in str(error) or "timed out" in str(error))


def test_401_is_final_and_never_shows_the_key(server: ScriptedOpenAIServer, teacher: OpenAITeacher,
                                               api_key: str) -> None:
    # A careless proxy echoes the key back; the error must still not contain it.
    body = {"error": {"message": f"Incorrect API key provided: {api_key}", "type": "invalid_request_error"}}
    server.enqueue(("status", 401, {}, body))
    error = complete_error(teacher)
    assert not error.retryable and error.status == 401
    assert api_key not in str(error) and api_key not in repr(error.args)
    assert "Incorrect API key" in str(error) and "OPENAI_API_KEY" in str(error)


@pytest.mark.parametrize("status", [400, 403, 404, 422])
def test_client_errors_are_final(server: ScriptedOpenAIServer, teacher: OpenAITeacher, status: int) -> None:
    server.enqueue(("status", status))
    error = complete_error(teacher)
    assert not error.retryable and error.status == status


def test_the_next_call_after_a_fault_succeeds(server: ScriptedOpenAIServer, transport: str) -> None:
    teacher = OpenAITeacher(base_url=server.base_url, timeout=5, transport=transport)
    server.enqueue(("status", 500), ("ok",))

    async def twice() -> tuple[BaseException | Completion, Completion]:
        try:
            first: BaseException | Completion = await teacher.complete(QUESTION)
        except TeacherError as exc:
            first = exc
        second = await teacher.complete(QUESTION)
        await teacher.aclose()
        return first, second

    first, second = asyncio.run(twice())
    assert isinstance(first, TeacherError) and first.retryable
    assert "THESIS:" in second.text
    assert [r.action[0] for r in server.completion_requests] == ["status", "ok"]


def test_error_event_inside_a_stream_is_retryable(server: ScriptedOpenAIServer, transport: str) -> None:
    teacher = OpenAITeacher(base_url=server.base_url, timeout=5, stream=True, transport=transport)
    server.enqueue(("stream_error", "server_error"))
    assert complete_error(teacher).retryable
