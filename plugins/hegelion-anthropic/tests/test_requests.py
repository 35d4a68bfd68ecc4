"""What the anthropic teacher sends and what it makes of the answers: options, headers,
system turns, streaming, tool-forced structured output, usage and latency."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from hegelion_anthropic.teacher import DEFAULT_MODEL, AnthropicTeacher, split_messages

from hegelion_core.contracts import Completion
from hegelion_core.errors import HegelionError, OptionsError
from hegelion_core.parsing import parse_trace
from hegelion_core.plugins import make_driver
from hegelion_core.records import JudgeVerdict, Message
from hegelion_core.testing.calls import complete_once
from hegelion_core.testing.openai_server import ScriptedAnthropicServer

QUESTION = [Message(role="system", content="Be brief."), Message(role="user", content="Is water wet?")]
SCHEMA = JudgeVerdict.model_json_schema()


def ask(teacher: AnthropicTeacher, messages: list[Message] = QUESTION, **kwargs: Any) -> Completion:
    return complete_once(teacher, messages, **kwargs)


def test_default_model_is_a_current_sonnet() -> None:
    import anthropic.resources.messages.messages as sdk_messages

    assert AnthropicTeacher().options.model == DEFAULT_MODEL
    assert DEFAULT_MODEL.startswith("claude-sonnet-")
    # The installed SDK warns about deprecated models; the default must not be one.
    assert DEFAULT_MODEL not in getattr(sdk_messages, "DEPRECATED_MODELS", {})


def test_an_options_typo_is_an_error() -> None:
    with pytest.raises(OptionsError, match="max_token"):
        AnthropicTeacher(max_token=10)


def test_temperature_is_bounded_like_the_api() -> None:
    with pytest.raises(OptionsError, match="temperature"):
        AnthropicTeacher(temperature=1.5)


def test_the_cli_can_make_it_by_name(server: ScriptedAnthropicServer) -> None:
    teacher = make_driver("teachers", "anthropic", {"base_url": server.base_url})
    assert isinstance(teacher, AnthropicTeacher)


def test_request_shape_and_key(server: ScriptedAnthropicServer, api_key: str) -> None:
    ask(AnthropicTeacher(base_url=server.base_url), max_tokens=64, temperature=0.2)
    (request,) = server.completion_requests
    assert request.path == "/v1/messages"
    body = request.body
    assert body["model"] == DEFAULT_MODEL and body["max_tokens"] == 64 and body["temperature"] == 0.2
    assert body["system"] == "Be brief."  # system turns go to the system parameter
    assert body["messages"] == [{"role": "user", "content": "Is water wet?"}]
    assert "tools" not in body and "stream" not in body
    # SDK 2.x sends the key as a bearer token; older ones as x-api-key.
    assert request.sent_bearer(api_key) or request.sent_credential("x-api-key", api_key)
    assert "<redacted>" in (request.headers.get("authorization"), request.headers.get("x-api-key"))
    assert request.headers.get("anthropic-version")


def test_default_max_tokens_is_sent(server: ScriptedAnthropicServer) -> None:
    ask(AnthropicTeacher(base_url=server.base_url, max_tokens=300, extra_body={"top_k": 5}))
    body = server.completion_requests[-1].body
    assert body["max_tokens"] == 300 and body["top_k"] == 5


def test_system_turns_join_and_same_role_runs_merge() -> None:
    system, turns = split_messages([
        Message(role="system", content="A."), Message(role="user", content="one"),
        Message(role="user", content="two"), Message(role="system", content="B."),
        Message(role="assistant", content="three"),
    ])
    assert system == "A.\n\nB."
    assert turns == [{"role": "user", "content": "one\n\ntwo"}, {"role": "assistant", "content": "three"}]


def test_a_local_server_needs_no_key(server: ScriptedAnthropicServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    assert "THESIS:" in ask(AnthropicTeacher(base_url=server.base_url)).text
    request = server.completion_requests[-1]
    assert request.sent_bearer("not-needed") or request.sent_credential("x-api-key", "not-needed")


def test_anthropic_itself_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(HegelionError, match="ANTHROPIC_API_KEY"):  # before any network
        ask(AnthropicTeacher())


def test_answer_text_usage_and_stop_reason(server: ScriptedAnthropicServer) -> None:
    result = ask(AnthropicTeacher(base_url=server.base_url))
    assert "Is water wet?" in parse_trace(result.text).thesis
    assert result.finish_reason == "stop" and result.model == DEFAULT_MODEL
    assert result.usage.prompt_tokens == 5  # "Be brief." + "Is water wet?" in words
    assert result.usage.completion_tokens == len(result.text.split())


@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_cut_shows_as_length(server: ScriptedAnthropicServer, stream: bool) -> None:
    result = ask(AnthropicTeacher(base_url=server.base_url, stream=stream), max_tokens=3)
    assert result.finish_reason == "length" and result.truncated  # stop_reason "max_tokens"
    assert result.usage.completion_tokens == 3 and len(result.text.split()) == 3


def test_a_stop_sequence_shows_as_stop(server: ScriptedAnthropicServer) -> None:
    body = {"id": "msg_1", "type": "message", "role": "assistant", "model": DEFAULT_MODEL,
            "content": [{"type": "text", "text": "THESIS: yes"}], "stop_reason": "stop_sequence",
            "stop_sequence": "END", "usage": {"input_tokens": 5, "output_tokens": 3}}
    server.enqueue(("status", 200, {}, body))
    result = ask(AnthropicTeacher(base_url=server.base_url))
    assert result.text == "THESIS: yes" and result.finish_reason == "stop"


@pytest.mark.parametrize("stream", [False, True])
def test_a_cut_structured_answer_shows_as_length(server: ScriptedAnthropicServer,
                                                 stream: bool) -> None:
    result = ask(AnthropicTeacher(base_url=server.base_url, stream=stream), max_tokens=2,
                 json_schema=SCHEMA)
    assert result.finish_reason == "length" and result.truncated


def test_latency_is_measured(server: ScriptedAnthropicServer) -> None:
    server.latency = 0.3
    assert ask(AnthropicTeacher(base_url=server.base_url)).latency_s >= 0.3


def test_streaming_assembles_the_same_text(server: ScriptedAnthropicServer) -> None:
    plain = ask(AnthropicTeacher(base_url=server.base_url))
    streamed = ask(AnthropicTeacher(base_url=server.base_url, stream=True))
    assert streamed.text == plain.text and streamed.usage == plain.usage
    assert streamed.finish_reason == "stop"
    assert server.completion_requests[-1].body["stream"] is True


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_forces_the_answer_tool(server: ScriptedAnthropicServer, stream: bool) -> None:
    result = ask(AnthropicTeacher(base_url=server.base_url, stream=stream), json_schema=SCHEMA)
    verdict = JudgeVerdict.model_validate_json(result.text)
    assert verdict.score == 5.0  # the scripted server's example value for 0 <= score <= 10
    body = server.completion_requests[-1].body
    assert body["tools"][0]["name"] == "answer" and body["tools"][0]["input_schema"] == SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": "answer"}
    assert result.finish_reason == "stop"  # the forced tool's call is the whole answer


def test_a_non_object_schema_is_wrapped_and_unwrapped(server: ScriptedAnthropicServer) -> None:
    schema = {"type": "array", "items": {"type": "string"}}
    result = ask(AnthropicTeacher(base_url=server.base_url), json_schema=schema)
    assert result.text == '["example text"]'
    sent = server.completion_requests[-1].body["tools"][0]["input_schema"]
    assert sent == {"type": "object", "properties": {"value": schema}, "required": ["value"]}


def test_a_server_that_ignores_the_tool_still_answers_text(server: ScriptedAnthropicServer) -> None:
    server.enqueue(("reply", "not json at all"))
    result = ask(AnthropicTeacher(base_url=server.base_url), json_schema=SCHEMA)
    assert result.text == "not json at all"


def test_many_concurrent_calls_overlap(server: ScriptedAnthropicServer) -> None:
    server.latency = 0.3
    teacher = AnthropicTeacher(base_url=server.base_url)

    async def many() -> list[Completion]:
        try:
            return await asyncio.gather(*[teacher.complete(QUESTION) for _ in range(64)])
        finally:
            await teacher.aclose()

    start = time.perf_counter()
    results = asyncio.run(many())
    assert len(results) == 64 and all("THESIS:" in r.text for r in results)
    assert time.perf_counter() - start < 0.3 * 64 / 4


def test_every_option_is_documented() -> None:
    docs = (Path(__file__).resolve().parents[3] / "docs" / "teachers.md").read_text()
    section = docs.split("## anthropic (hegelion-anthropic)")[1].split("\n## ")[0]
    for name in AnthropicTeacher.Options.model_fields:
        assert f"| `{name}`" in section, name


def test_auto_transport_takes_aiohttp_when_installed(server: ScriptedAnthropicServer) -> None:
    teacher = AnthropicTeacher(base_url=server.base_url)
    assert teacher.transport == "aiohttp"  # the plugin depends on the SDK's aiohttp extra
    assert "THESIS:" in ask(teacher).text
    assert AnthropicTeacher(transport="httpx").transport == "httpx"
