"""Contract tests every driver must pass. A plugin's tests subclass them.

Provide a ``driver`` fixture that returns a constructed instance::

    from hegelion_core.testing import TeacherContract

    class TestMyTeacher(TeacherContract):
        @pytest.fixture
        def driver(self):
            return MyTeacher({"model": "tiny"})

The suite checks what core relies on: the driver is registered under its name,
rejects unknown options, and honours its role's method contract. A teacher must also
say when its backend cut an answer at ``max_tokens`` (``finish_reason == "length"``):
a cut answer is never data. Override the ``cut_call`` fixture with a call your backend
surely cuts, or return None from it for a backend that never says why it stopped.

A teacher on an HTTP SDK (`hegelion_core.generation.sdk_teacher.SDKTeacher`) subclasses
`SDKTeacherContract` too: its requests and every fault a provider produces, against
the pytest plugin's scripted servers (see the class).
"""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar, Literal

import orjson
import pytest

from hegelion_core.contracts import (
    BASES,
    Completion,
    Driver,
    Formatter,
    PromptSource,
    Role,
    SkipRecord,
    Teacher,
    TeacherError,
)
from hegelion_core.data.parsing import parse_trace
from hegelion_core.errors import HegelionError, OptionsError
from hegelion_core.plugins import load_driver, make_driver
from hegelion_core.records import (
    Message,
    Prompt,
    TraceRecord,
    prompt_id,
)
from hegelion_core.testing.calls import complete_error, complete_once
from hegelion_core.testing.sample_traces import sample_records
from hegelion_core.testing.scripted_server import RecordedRequest

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")


class DriverContract:
    """What every driver of every role must satisfy."""

    role: ClassVar[Role]

    @pytest.fixture
    def driver(self) -> Driver:  # pragma: no cover - subclasses provide it
        raise NotImplementedError("provide a `driver` fixture returning an instance")

    def test_is_a_driver_of_its_role(self, driver: Driver) -> None:
        assert isinstance(driver, BASES[self.role])
        assert driver.role == self.role

    def test_name_is_a_cli_word(self, driver: Driver) -> None:
        assert isinstance(driver.name, str) and _NAME.match(driver.name), driver.name

    def test_registered_under_its_name(self, driver: Driver) -> None:
        assert load_driver(self.role, driver.name) is type(driver)

    def test_unknown_option_is_an_error(self, driver: Driver) -> None:
        options = driver.options.model_dump()
        with pytest.raises(OptionsError, match="no_such_option"):
            type(driver)({**options, "no_such_option": 1})

    def test_options_round_trip(self, driver: Driver) -> None:
        again = type(driver)(driver.options.model_dump())
        assert again.options == driver.options


@dataclass(frozen=True)
class CutCall:
    """A call a teacher's backend will cut at its token limit."""

    messages: list[Message]
    max_tokens: int


#: A question no model answers in a few tokens.
LONG_ANSWER = [
    Message(
        role="user", content="Count from 1 to 200, one number per line, and write nothing else."
    )
]


class TeacherContract(DriverContract):
    role: ClassVar[Role] = "teachers"
    #: Override for slow or costly backends.
    max_tokens: ClassVar[int] = 32

    def _complete(self, driver: Teacher, messages: list[Message]) -> Completion:
        return complete_once(driver, messages, max_tokens=self.max_tokens)

    @pytest.fixture
    def cut_call(self) -> CutCall | None:
        """A call the backend cuts at ``max_tokens``. None: the backend never says why a
        completion ended (the teacher then reports None, never a made-up "stop")."""
        return CutCall(LONG_ANSWER, max_tokens=4)

    def test_reports_length_when_cut(self, driver: Teacher, cut_call: CutCall | None) -> None:
        if cut_call is None:
            pytest.skip("this teacher's backend does not say why a completion ended")
        result = complete_once(driver, cut_call.messages, max_tokens=cut_call.max_tokens)
        assert result.finish_reason == "length" and result.truncated, (
            f"cut at max_tokens={cut_call.max_tokens}, the teacher reported "
            f"finish_reason={result.finish_reason!r} for {result.text[:80]!r}"
        )

    def test_complete_returns_text(self, driver: Teacher) -> None:
        result = self._complete(driver, [Message(role="user", content="Name one prime number.")])
        assert isinstance(result, Completion)
        assert result.text.strip()
        assert result.usage.prompt_tokens >= 0 and result.usage.completion_tokens >= 0
        assert result.latency_s >= 0

    def test_complete_accepts_a_system_turn(self, driver: Teacher) -> None:
        messages = [
            Message(role="system", content="Answer in one short sentence."),
            Message(role="user", content="What is the capital of France?"),
        ]
        assert self._complete(driver, messages).text.strip()

    def test_concurrent_calls(self, driver: Teacher) -> None:
        async def three() -> list[Completion]:
            prompts = ["Say one.", "Say two.", "Say three."]
            calls = [
                driver.complete([Message(role="user", content=p)], max_tokens=self.max_tokens)
                for p in prompts
            ]
            try:
                return list(await asyncio.gather(*calls))
            finally:
                await driver.aclose()

        results = asyncio.run(three())
        assert len(results) == 3 and all(r.text.strip() for r in results)

    def test_aclose_can_be_called_twice(self, driver: Teacher) -> None:
        async def use_then_close_twice() -> None:
            await driver.complete(
                [Message(role="user", content="Say yes.")], max_tokens=self.max_tokens
            )
            await driver.aclose()
            await driver.aclose()

        asyncio.run(use_then_close_twice())
        asyncio.run(driver.aclose())  # and once more from another loop, after its own closed


class FormatterContract(DriverContract):
    role: ClassVar[Role] = "formatters"

    @pytest.fixture
    def records(self) -> list[TraceRecord]:
        return sample_records()

    def _rows(self, driver: Formatter, record: TraceRecord) -> list[dict[str, Any]]:
        try:
            return list(driver.format(record))
        except SkipRecord as skip:
            assert skip.reason and isinstance(skip.reason, str)
            return []

    def test_rows_are_json_objects(self, driver: Formatter, records: list[TraceRecord]) -> None:
        produced = 0
        for record in records:
            for row in self._rows(driver, record):
                assert isinstance(row, dict) and row
                assert orjson.loads(orjson.dumps(row)) == row
                produced += 1
        assert produced, "the formatter produced no row for any sample record"

    def test_rows_are_deterministic(self, driver: Formatter, records: list[TraceRecord]) -> None:
        for record in records:
            assert self._rows(driver, record) == self._rows(driver, record)

    def test_record_is_not_mutated(self, driver: Formatter, records: list[TraceRecord]) -> None:
        for record in records:
            before = copy.deepcopy(record.model_dump())
            self._rows(driver, record)
            assert record.model_dump() == before

    def test_describe(self, driver: Formatter) -> None:
        assert isinstance(driver.describe(), str) and driver.describe().strip()


class PromptSourceContract(DriverContract):
    role: ClassVar[Role] = "prompt_sources"

    def test_yields_prompts_lazily(self, driver: PromptSource) -> None:
        prompts = driver.iter_prompts()
        assert isinstance(prompts, Iterator), "iter_prompts must stream, not build a list"
        first = list(islice(prompts, 5))
        assert first and all(isinstance(p, Prompt) and p.text.strip() for p in first)

    def test_ids_are_stable(self, driver: PromptSource) -> None:
        a = [p.id for p in islice(driver.iter_prompts(), 20)]
        b = [p.id for p in islice(driver.iter_prompts(), 20)]
        assert a == b

    def test_default_ids_hash_the_text(self, driver: PromptSource) -> None:
        for p in islice(driver.iter_prompts(), 20):
            assert p.id == prompt_id(p.text) or p.id, "a prompt needs an id"


class TrainerContract(DriverContract):
    role: ClassVar[Role] = "trainers"

    def test_declares_accepted_formats(self, driver: Driver) -> None:
        from hegelion_core.plugins import driver_names

        accepts = type(driver).accepts  # type: ignore[attr-defined]  # the fixture is a Trainer
        assert accepts, "a trainer must say which formats it reads"
        # ``prompts``: GRPO's prompt files (.txt, a prompt column), which no formatter writes
        assert set(accepts) <= {*driver_names("formatters"), "prompts"}


class ExporterContract(DriverContract):
    """An exporter: the keyword signature `hegelion export` calls, and options that the
    command line can set (a flag each, or at least a description for ``-o KEY=VALUE``)."""

    role: ClassVar[Role] = "exporters"

    def test_export_signature(self, driver: Driver) -> None:
        import inspect

        params = inspect.signature(driver.export).parameters  # type: ignore[attr-defined]  # an Exporter
        assert list(params)[:2] == ["model_dir", "dest"]
        for name in ("adapter_dir", "name"):
            assert name in params and params[name].kind is inspect.Parameter.KEYWORD_ONLY
            assert params[name].default is None

    def test_options_reach_the_command_line(self, driver: Driver) -> None:
        from hegelion_core.cli.export import COMMON, exporter_command, option_param

        command = exporter_command(type(driver))
        flags = {p.name for p in command.params}
        for field_name, field in type(driver).Options.model_fields.items():
            assert field.description, f"option {field_name!r} needs a description (--help)"
            if field_name not in COMMON and option_param(field_name, field) is not None:
                assert field_name in flags


# ----- teachers on an HTTP SDK -------------------------------------------------------------


#: The call `SDKTeacherContract` checks requests with: a system turn and a question.
BRIEF_QUESTION = [
    Message(role="system", content="Be brief."),
    Message(role="user", content="Is water wet?"),
]


class SDKTeacherContract:
    """The requests and faults of a teacher on an HTTP SDK (`hegelion_core.generation.sdk_teacher`),
    against a real scripted server on 127.0.0.1: what the request carries (model,
    messages, max_tokens, temperature, the key and where it comes from), and that every
    fault a provider produces (429 with ``Retry-After``, 5xx, a hang, malformed JSON, a
    truncated body or stream, a dropped or refused connection, 4xx) is a `TeacherError`
    that says whether to retry and never holds the key. Faults go through both of the
    SDK's transports.

    Subclass it and say what differs::

        class TestMyTeacherSDK(SDKTeacherContract):
            teacher_class = MyTeacher
            key_env = "MY_API_KEY"
            api = "openai"            # or "anthropic": which scripted server it gets

    The ``api_key`` fixture sets a fake key in ``key_env`` (and unsets ``clear_env``);
    ``server`` is the scripted server for ``api``.
    """

    #: The teacher class, constructed as ``teacher_class(base_url=..., **options)``.
    teacher_class: ClassVar[type[Teacher]]
    #: The variable its key is read from by default (its ``api_key_env``).
    key_env: ClassVar[str]
    #: Variables that could hand it another credential, unset for every test.
    clear_env: ClassVar[tuple[str, ...]] = ()
    #: The API it speaks: the scripted server's ``openai`` or ``anthropic`` routes.
    api: ClassVar[Literal["openai", "anthropic"]] = "openai"
    #: Whether it has a ``stream`` option (the streaming faults are skipped if not).
    streams: ClassVar[bool] = True
    #: Whether a ``base_url`` of one's own works with no key (a placeholder is sent).
    local_server_needs_no_key: ClassVar[bool] = True
    #: Whether the plugin depends on its SDK's aiohttp extra (``auto`` then takes it).
    aiohttp_extra: ClassVar[bool] = True
    #: A misspelt option, which must be an error naming it.
    option_typo: ClassVar[str] = "temprature"
    #: Error types the API puts in its error body, that the error's text must name.
    error_types: ClassVar[dict[int, str]] = {}
    #: Statuses that are the server's fault (retryable) and the caller's (final).
    server_errors: ClassVar[tuple[int, ...]] = (500, 502, 503, 504, 529)
    client_errors: ClassVar[tuple[int, ...]] = (400, 401, 403, 404, 413, 422)

    # ----- fixtures ------------------------------------------------------------------

    @pytest.fixture
    def server(self, request: pytest.FixtureRequest) -> Any:
        """The pytest plugin's scripted server for ``api`` (``openai_server`` or
        ``anthropic_server``): one per test."""
        return request.getfixturevalue(f"{self.api}_server")

    @pytest.fixture
    def api_key(self, fake_api_key: Any) -> str:
        """A fake key in ``key_env``; no user secrets.toml; ``clear_env`` unset."""
        return fake_api_key(self.key_env, clear=self.clear_env)

    @pytest.fixture(params=["httpx", "aiohttp"])
    def transport(self, request: pytest.FixtureRequest) -> str:
        """Every fault, through both of the SDK's transports."""
        return request.param

    def teacher(self, server: Any, **options: Any) -> Teacher:
        return self.teacher_class(base_url=server.base_url, **options)

    def sent_messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The conversation a request body carries, system turns first, as chat messages
        (an API with a separate system parameter overrides this)."""
        return list(body["messages"])

    def check_request(self, request: RecordedRequest) -> None:
        """Anything else a plain request must carry, headers too (override to check it)."""

    def check_streaming_request(self, body: dict[str, Any]) -> None:
        """Anything else a streaming request must carry (override to check it)."""

    def _fault(
        self, server: Any, action: tuple[Any, ...], transport: str, **options: Any
    ) -> TeacherError:
        server.enqueue(action)
        options.setdefault("timeout", 5)
        return complete_error(self.teacher(server, transport=transport, **options))

    def _need_streams(self) -> None:
        if not self.streams:
            pytest.skip(f"{self.teacher_class.__name__} has no stream option")

    # ----- options and the request ---------------------------------------------------

    def test_the_cli_can_make_it_by_name(self, server: Any, api_key: str) -> None:
        options = {"base_url": server.base_url, "model": "scripted-model-2"}
        teacher = make_driver("teachers", self.teacher_class.name, options)
        assert isinstance(teacher, self.teacher_class)
        assert teacher.options.model == "scripted-model-2"
        complete_once(teacher)
        assert server.completion_requests[-1].body["model"] == "scripted-model-2"

    def test_an_options_typo_is_an_error(self, api_key: str) -> None:
        with pytest.raises(OptionsError, match=self.option_typo):
            typo: dict[str, Any] = {self.option_typo: 1}
            self.teacher_class(**typo)

    def test_timeout_must_be_positive(self, api_key: str) -> None:
        with pytest.raises(OptionsError, match="timeout"):
            self.teacher_class(timeout=0)

    def test_request_carries_model_messages_max_tokens_and_the_key(
        self, server: Any, api_key: str
    ) -> None:
        teacher = self.teacher(server)
        result = complete_once(teacher, BRIEF_QUESTION, max_tokens=77, temperature=0.3)
        (request,) = server.completion_requests
        assert request.path == (
            "/v1/messages" if self.api == "anthropic" else "/v1/chat/completions"
        )
        body = request.body
        assert body["model"] == teacher.options.model  # the default model goes on the wire
        assert self.sent_messages(body) == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Is water wet?"},
        ]
        assert body["max_tokens"] == 77 and body["temperature"] == 0.3
        assert "stream" not in body and "response_format" not in body and "tools" not in body
        assert request.sent_bearer(api_key) or request.sent_credential("x-api-key", api_key)
        assert not (
            request.sent_bearer(api_key + "x")
            or request.sent_credential("x-api-key", api_key + "x")
        )
        assert "<redacted>" in (
            request.headers.get("authorization"),
            request.headers.get("x-api-key"),
        )
        self.check_request(request)
        assert "THESIS" in result.text.upper() and "Is water wet?" in (
            parse_trace(result.text).thesis or ""
        )
        assert result.model == teacher.options.model and result.finish_reason == "stop"
        assert result.usage.prompt_tokens == 5  # the scripted server counts words
        assert result.usage.completion_tokens == len(result.text.split())

    def test_key_from_another_env_var(
        self, server: Any, api_key: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HEGELION_OTHER_TEST_KEY", "sk-other-test-0123456789")
        complete_once(self.teacher(server, api_key_env="HEGELION_OTHER_TEST_KEY"))
        (request,) = server.completion_requests
        assert request.sent_bearer("sk-other-test-0123456789") or request.sent_credential(
            "x-api-key", "sk-other-test-0123456789"
        )
        assert not (request.sent_bearer(api_key) or request.sent_credential("x-api-key", api_key))

    def test_key_from_secrets_toml(
        self, server: Any, api_key: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv(self.key_env)
        config = Path(os.environ["HEGELION_CONFIG_DIR"])
        config.mkdir(parents=True, exist_ok=True)
        (config / "secrets.toml").write_text(f'{self.key_env} = "sk-from-file-0123456789"\n')
        complete_once(self.teacher(server))
        request = server.completion_requests[-1]
        assert request.sent_bearer("sk-from-file-0123456789") or request.sent_credential(
            "x-api-key", "sk-from-file-0123456789"
        )

    def test_a_local_server_needs_no_key(
        self, server: Any, api_key: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        if not self.local_server_needs_no_key:
            pytest.skip(f"{self.teacher_class.__name__} wants a key behind any base_url")
        monkeypatch.delenv(self.key_env)
        assert "THESIS:" in complete_once(self.teacher(server)).text
        request = server.completion_requests[-1]
        assert request.sent_bearer("not-needed") or request.sent_credential(
            "x-api-key", "not-needed"
        )

    def test_the_provider_itself_needs_a_key(
        self, api_key: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv(self.key_env)
        with pytest.raises(HegelionError, match=self.key_env):  # before any network
            complete_once(self.teacher_class())

    def test_auto_transport_takes_aiohttp_when_installed(self, server: Any, api_key: str) -> None:
        teacher = self.teacher(server)
        available = self.aiohttp_extra or importlib.util.find_spec("aiohttp") is not None
        # Ignored below: `transport` is an SDKTeacher's; teacher_class is typed Teacher
        assert teacher.transport == ("aiohttp" if available else "httpx")  # type: ignore[attr-defined]  # see above
        assert "THESIS:" in complete_once(teacher).text
        assert self.teacher_class(transport="httpx").transport == "httpx"  # type: ignore[attr-defined]  # see above

    # ----- the answer ----------------------------------------------------------------

    @pytest.mark.parametrize("stream", [False, True])
    def test_max_tokens_cut_shows_as_length(self, server: Any, api_key: str, stream: bool) -> None:
        if stream:
            self._need_streams()
        result = complete_once(
            self.teacher(server, **({"stream": True} if stream else {})), max_tokens=4
        )
        assert result.finish_reason == "length" and result.truncated
        assert result.usage.completion_tokens == 4 and len(result.text.split()) == 4
        assert server.completion_requests[-1].body["max_tokens"] == 4

    def test_latency_is_measured(self, server: Any, api_key: str) -> None:
        server.latency = 0.3
        start = time.perf_counter()
        result = complete_once(self.teacher(server))
        assert 0.3 <= result.latency_s <= time.perf_counter() - start

    def test_streaming_assembles_the_same_text(self, server: Any, api_key: str) -> None:
        self._need_streams()
        plain = complete_once(self.teacher(server))
        streamed = complete_once(self.teacher(server, stream=True))
        assert streamed.text == plain.text and streamed.usage == plain.usage
        assert streamed.finish_reason == "stop"
        body = server.completion_requests[-1].body
        assert body["stream"] is True
        self.check_streaming_request(body)

    def test_many_concurrent_calls_overlap(self, server: Any, api_key: str) -> None:
        server.latency = 0.3
        teacher = self.teacher(server)

        async def many() -> list[Completion]:
            try:
                return list(
                    await asyncio.gather(*[teacher.complete(BRIEF_QUESTION) for _ in range(64)])
                )
            finally:
                await teacher.aclose()

        start = time.perf_counter()
        results = asyncio.run(many())
        assert len(results) == 64 and all("THESIS:" in r.text for r in results)
        assert time.perf_counter() - start < 0.3 * 64 / 4  # far from one call at a time

    # ----- faults ----------------------------------------------------------------------

    @pytest.mark.parametrize(
        "headers, expected",
        [
            ({"Retry-After": "7"}, 7.0),
            ({"retry-after-ms": "1500"}, 1.5),
            ({"retry-after-ms": "250", "Retry-After": "1"}, 0.25),  # the finer one wins
            ({}, None),
        ],
    )
    def test_429_is_retryable_with_retry_after(
        self,
        server: Any,
        api_key: str,
        transport: str,
        headers: dict[str, str],
        expected: float | None,
    ) -> None:
        error = self._fault(server, ("status", 429, headers), transport)
        assert len(server.completion_requests) == 1, "the SDK must not retry by itself"
        assert error.retryable and error.status == 429 and error.retry_after == expected
        assert "HTTP 429" in str(error) and "scripted 429" in str(error)
        assert self.error_types.get(429, "") in str(error)

    @pytest.mark.parametrize(
        "status, seconds, low, high",
        [
            (429, 30, 20, 31),  # a date to come: wait until then
            (503, -3600, 0, 0),  # a date in the past: retry now
        ],
    )
    def test_retry_after_as_an_http_date(
        self,
        server: Any,
        api_key: str,
        transport: str,
        status: int,
        seconds: int,
        low: float,
        high: float,
    ) -> None:
        when = format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)
        error = self._fault(server, ("status", status, {"Retry-After": when}), transport)
        assert error.retryable and error.status == status
        assert error.retry_after is not None and low <= error.retry_after <= high

    @pytest.mark.parametrize("status", [500, 502, 503, 504, 529])
    def test_server_errors_are_retryable(
        self, server: Any, api_key: str, transport: str, status: int
    ) -> None:
        if status not in self.server_errors:
            pytest.skip(f"{status} is not one of this API's statuses")
        error = self._fault(server, ("status", status), transport)
        assert len(server.completion_requests) == 1
        assert error.retryable and error.status == status and error.retry_after is None
        assert f"HTTP {status}" in str(error) and self.error_types.get(status, "") in str(error)

    def test_a_503_with_retry_after(self, server: Any, api_key: str, transport: str) -> None:
        error = self._fault(server, ("status", 503, {"Retry-After": "3"}), transport)
        assert error.retryable and error.status == 503 and error.retry_after == 3.0

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
    def test_client_errors_are_final(
        self, server: Any, api_key: str, transport: str, status: int
    ) -> None:
        if status not in self.client_errors:
            pytest.skip(f"{status} is not one of this API's statuses")
        error = self._fault(server, ("status", status), transport)
        assert not error.retryable and error.status == status
        assert f"HTTP {status}" in str(error) and f"scripted {status}" in str(error)

    def test_401_is_final_and_never_shows_the_key(
        self, server: Any, api_key: str, transport: str
    ) -> None:
        # A careless proxy echoes the key back; the error must still not contain it.
        message = f"Incorrect API key provided: {api_key}"
        body: dict[str, Any] = (
            {"type": "error", "error": {"type": "authentication_error", "message": message}}
            if self.api == "anthropic"
            else {"error": {"message": message, "type": "invalid_request_error"}}
        )
        error = self._fault(server, ("status", 401, {}, body), transport)
        assert not error.retryable and error.status == 401
        assert api_key not in str(error) and api_key not in repr(error.args)
        assert "Incorrect API key provided: ***" in str(error) and self.key_env in str(error)

    def test_hung_connection_times_out_within_the_timeout(
        self, server: Any, api_key: str, transport: str
    ) -> None:
        start = time.monotonic()
        error = self._fault(server, ("hang",), transport, timeout=0.5)
        elapsed = time.monotonic() - start
        assert error.retryable and "timed out after 0.5s" in str(error)
        assert 0.4 <= elapsed < 2.0, elapsed

    def test_hung_stream_times_out_too(self, server: Any, api_key: str, transport: str) -> None:
        self._need_streams()
        start = time.monotonic()
        error = self._fault(server, ("hang",), transport, timeout=0.5, stream=True)
        assert error.retryable and time.monotonic() - start < 2.0

    def test_malformed_json_is_retryable(self, server: Any, api_key: str, transport: str) -> None:
        error = self._fault(server, ("malformed",), transport)
        assert error.retryable and "malformed" in str(error)

    def test_json_without_choices_is_retryable(
        self, server: Any, api_key: str, transport: str
    ) -> None:
        if self.api != "openai":
            pytest.skip("choices are the chat completions API's")
        error = self._fault(
            server, ("status", 200, {}, {"id": "x", "object": "chat.completion"}), transport
        )
        assert error.retryable and "malformed" in str(error)

    def test_truncated_body_is_retryable(self, server: Any, api_key: str, transport: str) -> None:
        error = self._fault(server, ("truncated_stream",), transport)  # half its JSON body
        assert error.retryable, str(error)

    @pytest.mark.parametrize("how", ["mid-chunk", "clean"])
    def test_truncated_stream_is_retryable(
        self, server: Any, api_key: str, transport: str, how: str
    ) -> None:
        self._need_streams()
        action = ("truncated_stream",) if how == "mid-chunk" else ("truncated_stream", "clean")
        error = self._fault(server, action, transport, stream=True)
        assert error.retryable
        if how == "clean":  # the HTTP body ended properly; only the missing end tells
            assert "truncated stream" in str(error)

    def test_error_event_inside_a_stream_is_retryable(
        self, server: Any, api_key: str, transport: str
    ) -> None:
        self._need_streams()
        kind = "overloaded_error" if self.api == "anthropic" else "server_error"
        assert self._fault(server, ("stream_error", kind), transport, stream=True).retryable

    def test_dropped_connection_is_retryable(
        self, server: Any, api_key: str, transport: str
    ) -> None:
        error = self._fault(server, ("close",), transport)
        # httpx reports a connection error; the SDK's aiohttp transport, a timeout.
        assert error.retryable and ("connection" in str(error) or "timed out" in str(error))

    def test_refused_connection_is_retryable(self, api_key: str, transport: str) -> None:
        with socket.socket() as sock:  # a port nothing listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        root = f"http://127.0.0.1:{port}"
        teacher = self.teacher_class(
            base_url=root if self.api == "anthropic" else f"{root}/v1",
            timeout=5,
            transport=transport,
        )
        error = complete_error(teacher)
        assert error.retryable and "connection error" in str(error)

    def test_the_next_call_after_a_fault_succeeds(
        self, server: Any, api_key: str, transport: str
    ) -> None:
        teacher = self.teacher(server, timeout=5, transport=transport)
        server.enqueue(("status", 500), ("ok",))

        async def twice() -> tuple[BaseException | Completion, Completion]:
            try:
                first: BaseException | Completion = await teacher.complete(BRIEF_QUESTION)
            except TeacherError as exc:
                first = exc
            try:
                return first, await teacher.complete(BRIEF_QUESTION)
            finally:
                await teacher.aclose()

        first, second = asyncio.run(twice())
        assert isinstance(first, TeacherError) and first.retryable
        assert "THESIS:" in second.text
        assert [r.action[0] for r in server.completion_requests] == ["status", "ok"]
