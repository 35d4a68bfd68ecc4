"""The llama-cpp teacher's ``stop`` option: a phase can end at a blank line (one
paragraph per call, as the quickstart asks), reported as a finished answer, not a cut."""

from __future__ import annotations

import asyncio

from hegelion_core.generation.dialectic import THESIS_SYSTEM
from hegelion_core.records import Message
from hegelion_gguf.teacher import LlamaCppTeacher

QUESTION = [
    Message(role="system", content=THESIS_SYSTEM),
    Message(role="user", content="Is nuclear power a good way to cut carbon emissions?"),
]


def _complete(teacher: LlamaCppTeacher) -> object:
    async def run() -> object:
        try:
            return await teacher.complete(QUESTION)
        finally:
            await teacher.aclose()

    return asyncio.run(run())


def test_stop_ends_the_answer_at_the_first_paragraph() -> None:
    options = {"temperature": 0, "seed": 1, "max_tokens": 400}
    whole = _complete(LlamaCppTeacher(**options))
    first = _complete(LlamaCppTeacher(**options, stop=["\n\n"]))
    assert "\n\n" in whole.text.strip(), "the unstopped answer has several paragraphs"
    assert first.finish_reason == "stop" and not first.truncated
    assert "\n\n" not in first.text
    assert whole.text.startswith(first.text.rstrip())
    assert first.usage.completion_tokens < whole.usage.completion_tokens
