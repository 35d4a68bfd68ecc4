"""The ``kimi`` teacher against real HTTP: the openai SDK talking to a scripted server.

Its requests and the faults every SDK teacher shares are `SDKTeacherContract`'s (below);
the rest of this file is Kimi's own: its defaults, a key needed at construction, empty
answers, reasoning_content, JSON mode."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from extras_server import Answer, extras_server
from hegelion_kimi.api import KimiTeacher

from hegelion_core.contracts import Completion, TeacherError
from hegelion_core.errors import HegelionError
from hegelion_core.records import Message
from hegelion_core.testing import SDKTeacherContract, TeacherContract
from hegelion_core.testing.calls import complete_error, complete_once
from hegelion_core.testing.scripted_server import ScriptedOpenAIServer

ASK = [Message(role="user", content="Is a hot dog a sandwich?")]


def complete(teacher: KimiTeacher, messages: list[Message] = ASK, **kwargs: Any) -> Completion:
    return complete_once(teacher, messages, **kwargs)


def failure(teacher: KimiTeacher, **kwargs: Any) -> TeacherError:
    return complete_error(teacher, ASK, **kwargs)


class TestKimiTeacherContract(TeacherContract):
    @pytest.fixture
    def driver(self, openai_server: ScriptedOpenAIServer, moonshot_key: str) -> KimiTeacher:
        return KimiTeacher({"base_url": openai_server.base_url})


class TestKimiTeacherSDK(SDKTeacherContract):
    teacher_class = KimiTeacher
    key_env = "MOONSHOT_API_KEY"
    api = "openai"
    streams = False  # one non-streaming call; kimi has no stream option
    local_server_needs_no_key = False  # Moonshot wants a key behind any base_url
    aiohttp_extra = False  # depends on plain openai; auto takes aiohttp only if installed


def test_defaults_are_moonshot_and_kimi_k2_thinking(moonshot_key: str) -> None:
    options = KimiTeacher().options
    assert options.base_url == "https://api.moonshot.ai/v1"
    assert options.model == "kimi-k2-thinking"
    assert options.api_key_env == "MOONSHOT_API_KEY"


def test_missing_key_stops_at_construction(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MOONSHOT_API_KEY", raising=False)
    monkeypatch.setenv("HEGELION_CONFIG_DIR", str(tmp_path))
    with pytest.raises(HegelionError, match="MOONSHOT_API_KEY"):
        KimiTeacher()


# ----- faults --------------------------------------------------------------------------


def test_empty_content_is_a_retryable_malformed_answer(moonshot_key: str) -> None:
    with ScriptedOpenAIServer([("reply", "")]) as srv:
        error = failure(KimiTeacher(base_url=srv.base_url))
    assert error.retryable and "empty content" in str(error)


# ----- Kimi specifics ------------------------------------------------------------------


def test_reasoning_content_stays_out_of_the_text(moonshot_key: str) -> None:
    answer = Answer(
        text="THESIS: yes. ANTITHESIS: no. SYNTHESIS: it depends.",
        reasoning="Let me think about bread geometry first.",
    )
    with extras_server(answer) as srv:
        result = complete(KimiTeacher(base_url=srv.base_url))
    assert result.text == answer.text
    assert "bread geometry" not in result.text


def test_an_answer_cut_after_reasoning_shows_as_length(moonshot_key: str) -> None:
    answer = Answer(
        text="THESIS: a hot dog is", reasoning="Bread first. " * 5, finish_reason="length"
    )
    with extras_server(answer) as srv:
        result = complete(KimiTeacher(base_url=srv.base_url), max_tokens=32)
    assert result.text == answer.text and result.truncated


def test_all_tokens_spent_reasoning_says_raise_max_tokens(moonshot_key: str) -> None:
    answer = Answer(text="", reasoning="Hmm, " * 20, finish_reason="length")
    with extras_server(answer) as srv:
        error = failure(KimiTeacher(base_url=srv.base_url), max_tokens=32)
    assert not error.retryable and "raise max_tokens" in str(error)


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("json_object", {"type": "json_object"}),
        (
            "json_schema",
            {
                "type": "json_schema",
                "json_schema": {"name": "hegelion", "schema": {"type": "object"}},
            },
        ),
        ("off", None),
    ],
)
def test_json_schema_follows_json_mode(
    openai_server: ScriptedOpenAIServer, moonshot_key: str, mode: str, expected: object
) -> None:
    complete(
        KimiTeacher(base_url=openai_server.base_url, json_mode=mode), json_schema={"type": "object"}
    )
    assert openai_server.completion_requests[0].body.get("response_format") == expected


def test_one_teacher_serves_successive_event_loops(
    openai_server: ScriptedOpenAIServer, moonshot_key: str
) -> None:
    teacher = KimiTeacher(base_url=openai_server.base_url)
    for _ in range(3):  # a client bound to a closed loop would fail here
        assert asyncio.run(teacher.complete(ASK)).text
    asyncio.run(teacher.aclose())
    assert len(openai_server.completion_requests) == 3
