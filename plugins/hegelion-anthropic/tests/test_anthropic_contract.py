"""The anthropic teacher passes core's teacher contracts against the scripted server's
Messages API: `TeacherContract` through both of the SDK's transports and streaming, and
`SDKTeacherContract`'s requests and faults (429 with Retry-After, 5xx and 529, hangs,
malformed and truncated bodies, dropped connections, 4xx, the key never shown)."""

from __future__ import annotations

from typing import Any

import pytest
from hegelion_anthropic.teacher import AnthropicTeacher

from hegelion_core.testing import SDKTeacherContract, TeacherContract
from hegelion_core.testing.scripted_server import RecordedRequest, ScriptedAnthropicServer


class TestAnthropicTeacherScripted(TeacherContract):
    @pytest.fixture
    def driver(self, anthropic_server: ScriptedAnthropicServer) -> AnthropicTeacher:
        return AnthropicTeacher(base_url=anthropic_server.base_url, timeout=10, transport="httpx")


class TestAnthropicTeacherScriptedAiohttp(TeacherContract):
    @pytest.fixture
    def driver(self, anthropic_server: ScriptedAnthropicServer) -> AnthropicTeacher:
        return AnthropicTeacher(base_url=anthropic_server.base_url, timeout=10, transport="aiohttp")


class TestAnthropicTeacherScriptedStreaming(TeacherContract):
    @pytest.fixture
    def driver(self, anthropic_server: ScriptedAnthropicServer) -> AnthropicTeacher:
        return AnthropicTeacher(base_url=anthropic_server.base_url, timeout=10, stream=True)


class TestAnthropicTeacherSDK(SDKTeacherContract):
    teacher_class = AnthropicTeacher
    key_env = "ANTHROPIC_API_KEY"
    clear_env = ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_PROFILE")
    api = "anthropic"
    option_typo = "max_token"
    error_types = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}

    def sent_messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        # System turns go to the system parameter.
        return [{"role": "system", "content": body["system"]}, *body["messages"]]

    def check_request(self, request: RecordedRequest) -> None:
        assert request.headers.get("anthropic-version")
