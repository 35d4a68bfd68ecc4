"""The anthropic teacher passes core's teacher contract against the scripted server's
Messages API, through both of the SDK's transports, and streaming."""

from __future__ import annotations

import pytest
from hegelion_anthropic.teacher import AnthropicTeacher

from hegelion_core.testing import TeacherContract
from hegelion_core.testing.openai_server import ScriptedAnthropicServer


class TestAnthropicTeacherScripted(TeacherContract):
    @pytest.fixture
    def driver(self, server: ScriptedAnthropicServer) -> AnthropicTeacher:
        return AnthropicTeacher(base_url=server.base_url, timeout=10, transport="httpx")


class TestAnthropicTeacherScriptedAiohttp(TeacherContract):
    @pytest.fixture
    def driver(self, server: ScriptedAnthropicServer) -> AnthropicTeacher:
        return AnthropicTeacher(base_url=server.base_url, timeout=10, transport="aiohttp")


class TestAnthropicTeacherScriptedStreaming(TeacherContract):
    @pytest.fixture
    def driver(self, server: ScriptedAnthropicServer) -> AnthropicTeacher:
        return AnthropicTeacher(base_url=server.base_url, timeout=10, stream=True)
