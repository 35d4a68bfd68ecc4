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
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, ClassVar

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
)
from hegelion_core.errors import OptionsError
from hegelion_core.plugins import load_driver
from hegelion_core.records import (
    Message,
    Prompt,
    TraceRecord,
    prompt_id,
)
from hegelion_core.testing.calls import complete_once
from hegelion_core.testing.sample_traces import sample_records

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
LONG_ANSWER = [Message(role="user", content="Count from 1 to 200, one number per line, "
                                             "and write nothing else.")]


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
            f"finish_reason={result.finish_reason!r} for {result.text[:80]!r}")

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
            calls = [driver.complete([Message(role="user", content=p)], max_tokens=self.max_tokens)
                     for p in prompts]
            try:
                return list(await asyncio.gather(*calls))
            finally:
                await driver.aclose()

        results = asyncio.run(three())
        assert len(results) == 3 and all(r.text.strip() for r in results)

    def test_aclose_can_be_called_twice(self, driver: Teacher) -> None:
        async def use_then_close_twice() -> None:
            await driver.complete([Message(role="user", content="Say yes.")],
                                  max_tokens=self.max_tokens)
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

        accepts = type(driver).accepts  # type: ignore[attr-defined]
        assert accepts, "a trainer must say which formats it reads"
        assert set(accepts) <= set(driver_names("formatters"))


class ExporterContract(DriverContract):
    """An exporter: the keyword signature `hegelion export` calls, and options that the
    command line can set (a flag each, or at least a description for ``-o KEY=VALUE``)."""

    role: ClassVar[Role] = "exporters"

    def test_export_signature(self, driver: Driver) -> None:
        import inspect

        params = inspect.signature(driver.export).parameters  # type: ignore[attr-defined]
        assert list(params)[:2] == ["model_dir", "dest"]
        for name in ("adapter_dir", "name"):
            assert name in params and params[name].kind is inspect.Parameter.KEYWORD_ONLY
            assert params[name].default is None

    def test_options_reach_the_command_line(self, driver: Driver) -> None:
        from hegelion_core.cli_export import COMMON, exporter_command, option_param

        command = exporter_command(type(driver))
        flags = {p.name for p in command.params}
        for field_name, field in type(driver).Options.model_fields.items():
            assert field.description, f"option {field_name!r} needs a description (--help)"
            if field_name not in COMMON and option_param(field_name, field) is not None:
                assert field_name in flags
