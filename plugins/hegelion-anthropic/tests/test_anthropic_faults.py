"""The faults only the Messages API has: an error event inside a stream is a TeacherError
with the status its type stands for. The SDK talks real HTTP to the scripted server,
which injects each fault; the faults every SDK teacher shares are `SDKTeacherContract`'s,
in test_anthropic_contract.py."""

from __future__ import annotations

import pytest
from hegelion_anthropic.teacher import AnthropicTeacher

from hegelion_core.testing.calls import complete_error
from hegelion_core.testing.scripted_server import ScriptedAnthropicServer


@pytest.fixture(params=["httpx", "aiohttp"])
def transport(request: pytest.FixtureRequest) -> str:
    """Every fault, through both of the SDK's transports."""
    return request.param


def test_overloaded_inside_a_stream_is_retryable(
    anthropic_server: ScriptedAnthropicServer, transport: str
) -> None:
    teacher = AnthropicTeacher(
        base_url=anthropic_server.base_url, timeout=5, stream=True, transport=transport
    )
    anthropic_server.enqueue(("stream_error", "overloaded_error"))
    error = complete_error(teacher)
    assert error.retryable and error.status == 529 and "overloaded_error" in str(error)


def test_invalid_request_inside_a_stream_is_final(
    anthropic_server: ScriptedAnthropicServer, transport: str
) -> None:
    teacher = AnthropicTeacher(
        base_url=anthropic_server.base_url, timeout=5, stream=True, transport=transport
    )
    anthropic_server.enqueue(("stream_error", "invalid_request_error"))
    error = complete_error(teacher)
    assert not error.retryable and error.status == 400
