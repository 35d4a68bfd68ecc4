"""The openai teacher passes core's teacher contracts against the scripted server:
`TeacherContract` through both of the SDK's transports and streaming, and
`SDKTeacherContract`'s requests and faults (429 with Retry-After, 5xx, hangs, malformed
and truncated bodies, dropped connections, 4xx, the key never shown)."""

from __future__ import annotations

from typing import Any

import pytest
from hegelion_openai.teacher import OpenAITeacher

from hegelion_core.testing import SDKTeacherContract, TeacherContract
from hegelion_core.testing.scripted_server import ScriptedOpenAIServer


class TestOpenAITeacherScripted(TeacherContract):
    @pytest.fixture
    def driver(self, openai_server: ScriptedOpenAIServer) -> OpenAITeacher:
        return OpenAITeacher(base_url=openai_server.base_url, timeout=10, transport="httpx")


class TestOpenAITeacherScriptedAiohttp(TeacherContract):
    @pytest.fixture
    def driver(self, openai_server: ScriptedOpenAIServer) -> OpenAITeacher:
        return OpenAITeacher(base_url=openai_server.base_url, timeout=10, transport="aiohttp")


class TestOpenAITeacherScriptedStreaming(TeacherContract):
    @pytest.fixture
    def driver(self, openai_server: ScriptedOpenAIServer) -> OpenAITeacher:
        return OpenAITeacher(base_url=openai_server.base_url, timeout=10, stream=True)


class TestOpenAITeacherSDK(SDKTeacherContract):
    teacher_class = OpenAITeacher
    key_env = "OPENAI_API_KEY"
    api = "openai"

    def check_streaming_request(self, body: dict[str, Any]) -> None:
        assert body["stream_options"] == {"include_usage": True}  # usage from the last chunk
