"""What the openai teacher alone sends and makes of the answers: its option defaults,
extra_body, max_completion_tokens, structured output and its fallbacks, the lean
request path, refusals. What every SDK teacher shares (the request, the key, cuts,
streaming, latency, concurrency, faults) is `SDKTeacherContract`'s, in
test_openai_contract.py."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hegelion_openai.teacher import OpenAITeacher

from hegelion_core.contracts import Completion, TeacherError
from hegelion_core.generation.limits import parse_retry_after
from hegelion_core.records import JudgeVerdict, Message
from hegelion_core.testing.calls import complete_once
from hegelion_core.testing.scripted_server import ScriptedOpenAIServer

QUESTION = [
    Message(role="system", content="Be brief."),
    Message(role="user", content="Is water wet?"),
]
SCHEMA = JudgeVerdict.model_json_schema()


def ask(teacher: OpenAITeacher, messages: list[Message] = QUESTION, **kwargs: Any) -> Completion:
    return complete_once(teacher, messages, **kwargs)


# ----- options -----------------------------------------------------------------------


def test_default_model_is_gpt_4o() -> None:
    assert OpenAITeacher().options.model == "gpt-4o"


# ----- the request -------------------------------------------------------------------


def test_option_defaults_fill_in_for_the_call(openai_server: ScriptedOpenAIServer) -> None:
    teacher = OpenAITeacher(
        base_url=openai_server.base_url,
        max_tokens=12,
        temperature=0.0,
        max_tokens_field="max_completion_tokens",
        model="o4-mini",
    )
    ask(teacher)
    body = openai_server.completion_requests[-1].body
    assert body["max_completion_tokens"] == 12 and "max_tokens" not in body
    assert body["temperature"] == 0.0 and body["model"] == "o4-mini"


def test_extra_body_is_sent_as_is(openai_server: ScriptedOpenAIServer) -> None:
    extra = {
        "top_k": 20,
        "repetition_penalty": 1.1,
        "chat_template_kwargs": {"enable_thinking": False},
    }
    ask(OpenAITeacher(base_url=openai_server.base_url, extra_body=extra))
    body = openai_server.completion_requests[-1].body
    assert {k: body[k] for k in extra} == extra


# ----- the answer ----------------------------------------------------------------------


def test_max_completion_tokens_cut_shows_as_length(openai_server: ScriptedOpenAIServer) -> None:
    teacher = OpenAITeacher(
        base_url=openai_server.base_url, max_tokens_field="max_completion_tokens"
    )
    result = ask(teacher, max_tokens=4)
    assert openai_server.completion_requests[-1].body["max_completion_tokens"] == 4
    assert result.truncated and len(result.text.split()) == 4


def test_usage_absent_counts_zero(openai_server: ScriptedOpenAIServer) -> None:
    body = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
    }
    openai_server.enqueue(("status", 200, {}, body))
    result = ask(OpenAITeacher(base_url=openai_server.base_url))
    assert result.text == "hi" and result.usage.total_tokens == 0


# ----- structured output ---------------------------------------------------------------


def test_json_schema_goes_as_response_format(openai_server: ScriptedOpenAIServer) -> None:
    teacher = OpenAITeacher(base_url=openai_server.base_url)
    result = ask(teacher, json_schema=SCHEMA)
    JudgeVerdict.model_validate_json(result.text)
    fmt = openai_server.completion_requests[-1].body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == SCHEMA
    assert fmt["json_schema"]["name"] == "JudgeVerdict"
    assert teacher.structured_output == "json_schema"


def test_rejected_json_schema_falls_back_to_json_object(
    openai_server: ScriptedOpenAIServer,
) -> None:
    openai_server.response_formats = frozenset({"text", "json_object"})
    teacher = OpenAITeacher(base_url=openai_server.base_url)

    async def twice() -> list[Completion]:
        try:
            return [await teacher.complete(QUESTION, json_schema=SCHEMA) for _ in range(2)]
        finally:
            await teacher.aclose()

    results = asyncio.run(twice())
    for result in results:
        JudgeVerdict.model_validate_json(result.text)
    kinds = [r.body["response_format"]["type"] for r in openai_server.completion_requests]
    assert kinds == ["json_schema", "json_object", "json_object"]  # remembered after one miss
    second = openai_server.completion_requests[1].body
    assert second["response_format"]["schema"] == SCHEMA
    assert (
        second["messages"][0]["role"] == "system"
        and "JSON schema" in second["messages"][0]["content"]
    )
    assert second["messages"][0]["content"].startswith("Be brief.")
    assert teacher.structured_output == "json_object"


def test_no_response_format_at_all_falls_back_to_the_prompt(
    openai_server: ScriptedOpenAIServer,
) -> None:
    openai_server.response_formats = frozenset({"text"})
    teacher = OpenAITeacher(base_url=openai_server.base_url)
    ask(teacher, [Message(role="user", content="Score it.")], json_schema=SCHEMA)
    last = openai_server.completion_requests[-1].body
    assert len(openai_server.completion_requests) == 3 and "response_format" not in last
    assert (
        last["messages"][0]["role"] == "system"
        and json.dumps(SCHEMA) in last["messages"][0]["content"]
    )
    assert teacher.structured_output == "prompt"


def test_other_400s_do_not_trigger_the_fallback(openai_server: ScriptedOpenAIServer) -> None:
    openai_server.enqueue(
        ("status", 400, {}, {"error": {"message": "maximum context length exceeded"}})
    )
    teacher = OpenAITeacher(base_url=openai_server.base_url)
    with pytest.raises(TeacherError, match="context length") as info:
        ask(teacher, json_schema=SCHEMA)
    assert not info.value.retryable and len(openai_server.completion_requests) == 1
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


# ----- the lean request path -----------------------------------------------------------


def test_the_lean_path_sends_what_chat_completions_create_sends(
    openai_server: ScriptedOpenAIServer, api_key: str
) -> None:
    """Non-streaming calls go through the SDK's client.post with a prebuilt body; the
    request must be the one the SDK's own create() would have made."""
    from openai import AsyncOpenAI

    extra = {"top_k": 20}
    teacher = OpenAITeacher(
        base_url=openai_server.base_url, max_tokens=33, temperature=0.1, extra_body=extra
    )
    ask(teacher)
    lean = openai_server.completion_requests[-1]

    async def direct() -> None:
        client = AsyncOpenAI(api_key=api_key, base_url=openai_server.base_url, max_retries=0)
        try:
            await client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": m.role, "content": m.content} for m in QUESTION],
                max_tokens=33,
                temperature=0.1,
                extra_body=extra,
            )
        finally:
            await client.close()

    asyncio.run(direct())
    sdk = openai_server.completion_requests[-1]
    assert lean.body == sdk.body
    assert lean.sent_bearer(api_key) and sdk.sent_bearer(api_key)
    assert lean.headers["content-type"] == sdk.headers["content-type"] == "application/json"
    same = (
        "user-agent",
        "x-stainless-lang",
        "x-stainless-package-version",
        "x-stainless-retry-count",
    )
    assert {h: lean.headers.get(h) for h in same} == {h: sdk.headers.get(h) for h in same}


@pytest.mark.parametrize("content", [["a", "list"], {"text": "x"}, 7])
def test_content_that_is_not_text_is_a_malformed_answer(
    openai_server: ScriptedOpenAIServer, content: Any
) -> None:
    body = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }
    openai_server.enqueue(("status", 200, {}, body))
    with pytest.raises(TeacherError, match="malformed response") as info:
        ask(OpenAITeacher(base_url=openai_server.base_url))
    assert info.value.retryable


def test_a_refusal_is_final(openai_server: ScriptedOpenAIServer) -> None:
    body = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": "I can't help with that.",
                },
                "finish_reason": "stop",
            }
        ],
    }
    openai_server.enqueue(("status", 200, {}, body))
    with pytest.raises(TeacherError, match="the model refused: I can't help") as info:
        ask(OpenAITeacher(base_url=openai_server.base_url))
    assert not info.value.retryable
