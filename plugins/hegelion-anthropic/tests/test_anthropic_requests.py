"""What the anthropic teacher alone sends and makes of the answers: its default model
and max_tokens, system turns, stop sequences, tool-forced structured output. What every
SDK teacher shares (the request, the key, cuts, streaming, latency, concurrency, faults)
is `SDKTeacherContract`'s, in test_anthropic_contract.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hegelion_anthropic.teacher import DEFAULT_MODEL, AnthropicTeacher, split_messages

from hegelion_core.contracts import Completion
from hegelion_core.errors import OptionsError
from hegelion_core.records import JudgeVerdict, Message
from hegelion_core.testing.calls import complete_once
from hegelion_core.testing.scripted_server import ScriptedAnthropicServer

QUESTION = [
    Message(role="system", content="Be brief."),
    Message(role="user", content="Is water wet?"),
]
SCHEMA = JudgeVerdict.model_json_schema()


def ask(teacher: AnthropicTeacher, messages: list[Message] = QUESTION, **kwargs: Any) -> Completion:
    return complete_once(teacher, messages, **kwargs)


def test_default_model_is_a_current_sonnet() -> None:
    import anthropic.resources.messages.messages as sdk_messages

    assert AnthropicTeacher().options.model == DEFAULT_MODEL
    assert DEFAULT_MODEL.startswith("claude-sonnet-")
    # The installed SDK warns about deprecated models; the default must not be one.
    assert DEFAULT_MODEL not in getattr(sdk_messages, "DEPRECATED_MODELS", {})


def test_temperature_is_bounded_like_the_api() -> None:
    with pytest.raises(OptionsError, match="temperature"):
        AnthropicTeacher(temperature=1.5)


def test_default_max_tokens_is_sent(anthropic_server: ScriptedAnthropicServer) -> None:
    ask(
        AnthropicTeacher(
            base_url=anthropic_server.base_url, max_tokens=300, extra_body={"top_k": 5}
        )
    )
    body = anthropic_server.completion_requests[-1].body
    assert body["max_tokens"] == 300 and body["top_k"] == 5


def test_system_turns_join_and_same_role_runs_merge() -> None:
    system, turns = split_messages(
        [
            Message(role="system", content="A."),
            Message(role="user", content="one"),
            Message(role="user", content="two"),
            Message(role="system", content="B."),
            Message(role="assistant", content="three"),
        ]
    )
    assert system == "A.\n\nB."
    assert turns == [
        {"role": "user", "content": "one\n\ntwo"},
        {"role": "assistant", "content": "three"},
    ]


def test_a_stop_sequence_shows_as_stop(anthropic_server: ScriptedAnthropicServer) -> None:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": DEFAULT_MODEL,
        "content": [{"type": "text", "text": "THESIS: yes"}],
        "stop_reason": "stop_sequence",
        "stop_sequence": "END",
        "usage": {"input_tokens": 5, "output_tokens": 3},
    }
    anthropic_server.enqueue(("status", 200, {}, body))
    result = ask(AnthropicTeacher(base_url=anthropic_server.base_url))
    assert result.text == "THESIS: yes" and result.finish_reason == "stop"


@pytest.mark.parametrize("stream", [False, True])
def test_a_cut_structured_answer_shows_as_length(
    anthropic_server: ScriptedAnthropicServer, stream: bool
) -> None:
    result = ask(
        AnthropicTeacher(base_url=anthropic_server.base_url, stream=stream),
        max_tokens=2,
        json_schema=SCHEMA,
    )
    assert result.finish_reason == "length" and result.truncated


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_forces_the_answer_tool(
    anthropic_server: ScriptedAnthropicServer, stream: bool
) -> None:
    result = ask(
        AnthropicTeacher(base_url=anthropic_server.base_url, stream=stream), json_schema=SCHEMA
    )
    verdict = JudgeVerdict.model_validate_json(result.text)
    assert verdict.score == 5.0  # the scripted server's example value for 0 <= score <= 10
    body = anthropic_server.completion_requests[-1].body
    assert body["tools"][0]["name"] == "answer" and body["tools"][0]["input_schema"] == SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": "answer"}
    assert result.finish_reason == "stop"  # the forced tool's call is the whole answer


def test_a_non_object_schema_is_wrapped_and_unwrapped(
    anthropic_server: ScriptedAnthropicServer,
) -> None:
    schema = {"type": "array", "items": {"type": "string"}}
    result = ask(AnthropicTeacher(base_url=anthropic_server.base_url), json_schema=schema)
    assert result.text == '["example text"]'
    sent = anthropic_server.completion_requests[-1].body["tools"][0]["input_schema"]
    assert sent == {"type": "object", "properties": {"value": schema}, "required": ["value"]}


def test_a_server_that_ignores_the_tool_still_answers_text(
    anthropic_server: ScriptedAnthropicServer,
) -> None:
    anthropic_server.enqueue(("reply", "not json at all"))
    result = ask(AnthropicTeacher(base_url=anthropic_server.base_url), json_schema=SCHEMA)
    assert result.text == "not json at all"


def test_every_option_is_documented() -> None:
    docs = (Path(__file__).resolve().parents[3] / "docs" / "teachers.md").read_text()
    section = docs.split("## anthropic (hegelion-anthropic)")[1].split("\n## ")[0]
    for name in AnthropicTeacher.Options.model_fields:
        assert f"| `{name}`" in section, name
