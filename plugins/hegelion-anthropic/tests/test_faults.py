"""Every failure the Messages API produces becomes a TeacherError that says whether to
retry. The SDK talks real HTTP to the scripted server, which injects each fault."""

from __future__ import annotations

import time

import pytest
from hegelion_anthropic.teacher import AnthropicTeacher

from hegelion_core.testing.calls import complete_error
from hegelion_core.testing.openai_server import ScriptedAnthropicServer


@pytest.fixture(params=["httpx", "aiohttp"])
def transport(request: pytest.FixtureRequest) -> str:
    """Every fault, through both of the SDK's transports."""
    return request.param


@pytest.fixture
def teacher(server: ScriptedAnthropicServer, transport: str) -> AnthropicTeacher:
    return AnthropicTeacher(base_url=server.base_url, timeout=5, transport=transport)


def test_429_is_retryable_with_retry_after(server: ScriptedAnthropicServer, teacher: AnthropicTeacher) -> None:
    server.enqueue(("status", 429, {"Retry-After": "2"}))
    error = complete_error(teacher)
    assert error.retryable and error.status == 429 and error.retry_after == 2.0
    assert "rate_limit_error" in str(error)


def test_529_overloaded_is_retryable(server: ScriptedAnthropicServer, teacher: AnthropicTeacher) -> None:
    server.enqueue(("status", 529))
    error = complete_error(teacher)
    assert error.retryable and error.status == 529 and "overloaded_error" in str(error)


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_retryable(server: ScriptedAnthropicServer, teacher: AnthropicTeacher, status: int) -> None:
    server.enqueue(("status", status, {"Retry-After": "3"} if status == 503 else {}))
    error = complete_error(teacher)
    assert error.retryable and error.status == status
    assert error.retry_after == (3.0 if status == 503 else None)


def test_hung_connection_times_out_within_the_timeout(server: ScriptedAnthropicServer, transport: str) -> None:
    teacher = AnthropicTeacher(base_url=server.base_url, timeout=0.5, transport=transport)
    server.enqueue(("hang",))
    start = time.monotonic()
    error = complete_error(teacher)
    elapsed = time.monotonic() - start
    assert error.retryable and 0.4 <= elapsed < 2.0, elapsed


def test_malformed_json_is_retryable(server: ScriptedAnthropicServer, teacher: AnthropicTeacher) -> None:
    server.enqueue(("malformed",))
    error = complete_error(teacher)
    assert error.retryable and "malformed" in str(error)


@pytest.mark.parametrize("how", ["mid-chunk", "clean"])
def test_truncated_stream_is_retryable(server: ScriptedAnthropicServer, how: str, transport: str) -> None:
    teacher = AnthropicTeacher(base_url=server.base_url, timeout=5, stream=True, transport=transport)
    server.enqueue(("truncated_stream",) if how == "mid-chunk" else ("truncated_stream", "clean"))
    error = complete_error(teacher)
    assert error.retryable
    if how == "clean":  # the HTTP body ended properly; only the missing message_stop tells
        assert "truncated stream" in str(error)


def test_overloaded_inside_a_stream_is_retryable(server: ScriptedAnthropicServer, transport: str) -> None:
    teacher = AnthropicTeacher(base_url=server.base_url, timeout=5, stream=True, transport=transport)
    server.enqueue(("stream_error", "overloaded_error"))
    error = complete_error(teacher)
    assert error.retryable and error.status == 529 and "overloaded_error" in str(error)


def test_invalid_request_inside_a_stream_is_final(server: ScriptedAnthropicServer, transport: str) -> None:
    teacher = AnthropicTeacher(base_url=server.base_url, timeout=5, stream=True, transport=transport)
    server.enqueue(("stream_error", "invalid_request_error"))
    error = complete_error(teacher)
    assert not error.retryable and error.status == 400


def test_dropped_connection_is_retryable(server: ScriptedAnthropicServer, teacher: AnthropicTeacher) -> None:
    server.enqueue(("close",))
    error = complete_error(teacher)
    # httpx reports a connection error; the SDK's aiohttp transport, a timeout.
    assert error.retryable and ("connection" in str(error) or "timed out" in str(error))


def test_401_is_final_and_never_shows_the_key(server: ScriptedAnthropicServer, teacher: AnthropicTeacher,
                                               api_key: str) -> None:
    body = {"type": "error", "error": {"type": "authentication_error", "message": f"invalid x-api-key {api_key}"}}
    server.enqueue(("status", 401, {}, body))
    error = complete_error(teacher)
    assert not error.retryable and error.status == 401
    assert api_key not in str(error) and "ANTHROPIC_API_KEY" in str(error)
    assert "invalid x-api-key" in str(error)


@pytest.mark.parametrize("status", [400, 403, 404, 413])
def test_client_errors_are_final(server: ScriptedAnthropicServer, teacher: AnthropicTeacher, status: int) -> None:
    server.enqueue(("status", status))
    error = complete_error(teacher)
    assert not error.retryable and error.status == status
