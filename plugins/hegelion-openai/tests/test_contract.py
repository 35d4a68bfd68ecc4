"""The openai teacher passes core's teacher contract against the scripted server,
through both of the SDK's transports, and streaming."""

from __future__ import annotations

import pytest
from hegelion_openai.teacher import OpenAITeacher

from hegelion_core.testing import TeacherContract
from hegelion_core.testing.openai_server import ScriptedOpenAIServer


class TestOpenAITeacherScripted(TeacherContract):
    @pytest.fixture
    def driver(self, server: ScriptedOpenAIServer) -> OpenAITeacher:
        return OpenAITeacher(base_url=server.base_url, timeout=10, transport="httpx")


class TestOpenAITeacherScriptedAiohttp(TeacherContract):
    @pytest.fixture
    def driver(self, server: ScriptedOpenAIServer) -> OpenAITeacher:
        return OpenAITeacher(base_url=server.base_url, timeout=10, transport="aiohttp")


class TestOpenAITeacherScriptedStreaming(TeacherContract):
    @pytest.fixture
    def driver(self, server: ScriptedOpenAIServer) -> OpenAITeacher:
        return OpenAITeacher(base_url=server.base_url, timeout=10, stream=True)
