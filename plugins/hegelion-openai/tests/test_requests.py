"""What the openai teacher sends and what it makes of the answers: options, headers,
streaming, structured output and its fallbacks, usage and latency."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hegelion_openai.teacher import OpenAITeacher

from hegelion_core.contracts import Completion, TeacherError
from hegelion_core.errors import HegelionError, OptionsError
from hegelion_core.limits import parse_retry_after
from hegelion_core.parsing import parse_trace
from hegelion_core.plugins import make_driver
from hegelion_core.records import JudgeVerdict, Message
from hegelion_core.testing.calls import complete_once
from hegelion_core.testing.openai_server import ScriptedOpenAIServer

QUESTION = [Message(role="system", content="Be brief."), Message(role="user", content="Is water wet?")]
SCHEMA = JudgeVerdict.model_json_schema()


def ask(teacher: OpenAITeacher, messages: list[Message] = QUESTION, **kwargs: Any) -> Completion:
    return complete_once(teacher, messages, **kwargs)


# ----- options -----------------------------------------------------------------------


def test_default_model_is_gpt_4o() -> None:
    assert OpenAITeacher().options.model == "gpt-4o"


def test_an_options_typo_is_an_error() -> None:
    with pytest.raises(OptionsError, match="temprature"):
        OpenAITeacher(temprature=0.2)


def test_options_are_validated() -> None:
    with pytest.raises(OptionsError, match="timeout"):
        OpenAITeacher(timeout=0)


def test_the_cli_can_make_it_by_name(server: ScriptedOpenAIServer) -> None:
    teacher = make_driver("teachers", "openai", {"base_url": server.base_url, "model": "llama3.1"})
    assert isinstance(teacher, OpenAITeacher) and teacher.options.model == "llama3.1"


# ----- the request -------------------------------------------------------------------


def test_request_carries_model_messages_max_tokens_and_the_key(server: ScriptedOpenAIServer,
                                                                api_key: str) -> None:
    ask(OpenAITeacher(base_url=server.base_url), max_tokens=77, temperature=0.3)
    (request,) = server.completion_requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "gpt-4o"  # the default model goes on the wire
    assert request.body["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is water wet?"}]
    assert request.body["max_tokens"] == 77 and request.body["temperature"] == 0.3
    assert "stream" not in request.body and "response_format" not in request.body
    assert request.sent_bearer(api_key)
    assert request.headers["authorization"] == "<redacted>"
    assert not request.sent_bearer(api_key + "x")


def test_option_defaults_fill_in_for_the_call(server: ScriptedOpenAIServer) -> None:
    teacher = OpenAITeacher(base_url=server.base_url, max_tokens=12, temperature=0.0,
                            max_tokens_field="max_completion_tokens", model="o4-mini")
    ask(teacher)
    body = server.completion_requests[-1].body
    assert body["max_completion_tokens"] == 12 and "max_tokens" not in body
    assert body["temperature"] == 0.0 and body["model"] == "o4-mini"


def test_extra_body_is_sent_as_is(server: ScriptedOpenAIServer) -> None:
    extra = {"top_k": 20, "repetition_penalty": 1.1, "chat_template_kwargs": {"enable_thinking": False}}
    ask(OpenAITeacher(base_url=server.base_url, extra_body=extra))
    body = server.completion_requests[-1].body
    assert {k: body[k] for k in extra} == extra


def test_key_from_another_env_var(server: ScriptedOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test-0123456789")
    ask(OpenAITeacher(base_url=server.base_url, api_key_env="OPENROUTER_API_KEY"))
    assert server.completion_requests[-1].sent_bearer("sk-or-test-0123456789")


def test_key_from_secrets_toml(server: ScriptedOpenAIServer, monkeypatch: pytest.MonkeyPatch,
                               tmp_path: Path) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    config = tmp_path / "config"
    config.mkdir()
    (config / "secrets.toml").write_text('OPENAI_API_KEY = "sk-from-file-0123456789"\n')
    ask(OpenAITeacher(base_url=server.base_url))
    assert server.completion_requests[-1].sent_bearer("sk-from-file-0123456789")


def test_a_local_server_needs_no_key(server: ScriptedOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    assert "THESIS:" in ask(OpenAITeacher(base_url=server.base_url)).text
    assert server.completion_requests[-1].sent_bearer("not-needed")


def test_openai_itself_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(HegelionError, match="OPENAI_API_KEY"):  # before any network
        ask(OpenAITeacher())


# ----- the answer ----------------------------------------------------------------------


def test_answer_is_the_servers_trace_with_usage(server: ScriptedOpenAIServer) -> None:
    result = ask(OpenAITeacher(base_url=server.base_url))
    trace = parse_trace(result.text)
    assert "Is water wet?" in trace.thesis and trace.synthesis
    assert result.finish_reason == "stop" and result.model == "gpt-4o"
    assert result.usage.prompt_tokens == 5  # the scripted server counts words
    assert result.usage.completion_tokens == len(result.text.split())


@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_cut_shows_as_length(server: ScriptedOpenAIServer, stream: bool) -> None:
    result = ask(OpenAITeacher(base_url=server.base_url, stream=stream), max_tokens=4)
    assert result.finish_reason == "length" and result.truncated
    assert result.usage.completion_tokens == 4 and len(result.text.split()) == 4


def test_max_completion_tokens_cut_shows_as_length(server: ScriptedOpenAIServer) -> None:
    teacher = OpenAITeacher(base_url=server.base_url, max_tokens_field="max_completion_tokens")
    result = ask(teacher, max_tokens=4)
    assert server.completion_requests[-1].body["max_completion_tokens"] == 4
    assert result.truncated and len(result.text.split()) == 4


def test_usage_absent_counts_zero(server: ScriptedOpenAIServer) -> None:
    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                         "finish_reason": "stop"}]}
    server.enqueue(("status", 200, {}, body))
    result = ask(OpenAITeacher(base_url=server.base_url))
    assert result.text == "hi" and result.usage.total_tokens == 0


def test_latency_is_measured(server: ScriptedOpenAIServer) -> None:
    server.latency = 0.3
    start = time.perf_counter()
    result = ask(OpenAITeacher(base_url=server.base_url))
    assert 0.3 <= result.latency_s <= time.perf_counter() - start


def test_streaming_assembles_the_same_text(server: ScriptedOpenAIServer) -> None:
    plain = ask(OpenAITeacher(base_url=server.base_url))
    streamed = ask(OpenAITeacher(base_url=server.base_url, stream=True))
    assert streamed.text == plain.text
    assert streamed.finish_reason == "stop"
    assert streamed.usage == plain.usage  # from the include_usage chunk
    body = server.completion_requests[-1].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_many_concurrent_calls_overlap(server: ScriptedOpenAIServer) -> None:
    server.latency = 0.3
    teacher = OpenAITeacher(base_url=server.base_url)

    async def many() -> list[Completion]:
        try:
            return await asyncio.gather(*[teacher.complete(QUESTION) for _ in range(64)])
        finally:
            await teacher.aclose()

    start = time.perf_counter()
    results = asyncio.run(many())
    assert len(results) == 64 and all("THESIS:" in r.text for r in results)
    assert time.perf_counter() - start < 0.3 * 64 / 4  # far from one call at a time


# ----- structured output ---------------------------------------------------------------


def test_json_schema_goes_as_response_format(server: ScriptedOpenAIServer) -> None:
    teacher = OpenAITeacher(base_url=server.base_url)
    result = ask(teacher, json_schema=SCHEMA)
    JudgeVerdict.model_validate_json(result.text)
    fmt = server.completion_requests[-1].body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == SCHEMA
    assert fmt["json_schema"]["name"] == "JudgeVerdict"
    assert teacher.structured_output == "json_schema"


def test_rejected_json_schema_falls_back_to_json_object(server: ScriptedOpenAIServer) -> None:
    server.response_formats = frozenset({"text", "json_object"})
    teacher = OpenAITeacher(base_url=server.base_url)

    async def twice() -> list[Completion]:
        try:
            return [await teacher.complete(QUESTION, json_schema=SCHEMA) for _ in range(2)]
        finally:
            await teacher.aclose()

    results = asyncio.run(twice())
    for result in results:
        JudgeVerdict.model_validate_json(result.text)
    kinds = [r.body["response_format"]["type"] for r in server.completion_requests]
    assert kinds == ["json_schema", "json_object", "json_object"]  # remembered after one miss
    second = server.completion_requests[1].body
    assert second["response_format"]["schema"] == SCHEMA
    assert second["messages"][0]["role"] == "system" and "JSON schema" in second["messages"][0]["content"]
    assert second["messages"][0]["content"].startswith("Be brief.")
    assert teacher.structured_output == "json_object"


def test_no_response_format_at_all_falls_back_to_the_prompt(server: ScriptedOpenAIServer) -> None:
    server.response_formats = frozenset({"text"})
    teacher = OpenAITeacher(base_url=server.base_url)
    ask(teacher, [Message(role="user", content="Score it.")], json_schema=SCHEMA)
    last = server.completion_requests[-1].body
    assert len(server.completion_requests) == 3 and "response_format" not in last
    assert last["messages"][0]["role"] == "system" and json.dumps(SCHEMA) in last["messages"][0]["content"]
    assert teacher.structured_output == "prompt"


def test_other_400s_do_not_trigger_the_fallback(server: ScriptedOpenAIServer) -> None:
    server.enqueue(("status", 400, {}, {"error": {"message": "maximum context length exceeded"}}))
    teacher = OpenAITeacher(base_url=server.base_url)
    with pytest.raises(TeacherError, match="context length") as info:
        ask(teacher, json_schema=SCHEMA)
    assert not info.value.retryable and len(server.completion_requests) == 1
    assert teacher.structured_output == "json_schema"


def test_parse_retry_after() -> None:
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None and parse_retry_after(None) is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= (parse_retry_after({"retry-after": future}) or 0) <= 31


def test_every_option_is_documented() -> None:
    docs = (Path(__file__).resolve().parents[3] / "docs" / "teachers.md").read_text()
    section = docs.split("## openai (hegelion-openai)")[1].split("\n## ")[0]
    for name in OpenAITeacher.Options.model_fields:
        assert f"| `{name}`" in section, name


def test_auto_transport_takes_aiohttp_when_installed(server: ScriptedOpenAIServer) -> None:
    teacher = OpenAITeacher(base_url=server.base_url)
    assert teacher.transport == "aiohttp"  # the plugin depends on the SDK's aiohttp extra
    assert "THESIS:" in ask(teacher).text
    assert OpenAITeacher(transport="httpx").transport == "httpx"


# ----- the lean request path -----------------------------------------------------------


def test_the_lean_path_sends_what_chat_completions_create_sends(server: ScriptedOpenAIServer,
                                                                 api_key: str) -> None:
    """Non-streaming calls go through the SDK's client.post with a prebuilt body; the
    request must be the one the SDK's own create() would have made."""
    from openai import AsyncOpenAI

    extra = {"top_k": 20}
    teacher = OpenAITeacher(base_url=server.base_url, max_tokens=33, temperature=0.1, extra_body=extra)
    ask(teacher)
    lean = server.completion_requests[-1]

    async def direct() -> None:
        client = AsyncOpenAI(api_key=api_key, base_url=server.base_url, max_retries=0)
        try:
            await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": m.role, "content": m.content} for m in QUESTION],
                max_tokens=33, temperature=0.1, extra_body=extra)
        finally:
            await client.close()

    asyncio.run(direct())
    sdk = server.completion_requests[-1]
    assert lean.body == sdk.body
    assert lean.sent_bearer(api_key) and sdk.sent_bearer(api_key)
    assert lean.headers["content-type"] == sdk.headers["content-type"] == "application/json"
    same = ("user-agent", "x-stainless-lang", "x-stainless-package-version", "x-stainless-retry-count")
    assert {h: lean.headers.get(h) for h in same} == {h: sdk.headers.get(h) for h in same}


@pytest.mark.parametrize("content", [["a", "list"], {"text": "x"}, 7])
def test_content_that_is_not_text_is_a_malformed_answer(server: ScriptedOpenAIServer, content: Any) -> None:
    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}]}
    server.enqueue(("status", 200, {}, body))
    with pytest.raises(TeacherError, match="malformed response") as info:
        ask(OpenAITeacher(base_url=server.base_url))
    assert info.value.retryable


def test_a_refusal_is_final(server: ScriptedOpenAIServer) -> None:
    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": None,
                                                 "refusal": "I can't help with that."},
                         "finish_reason": "stop"}]}
    server.enqueue(("status", 200, {}, body))
    with pytest.raises(TeacherError, match="the model refused: I can't help") as info:
        ask(OpenAITeacher(base_url=server.base_url))
    assert not info.value.retryable
