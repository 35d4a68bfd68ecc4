"""A teacher with no model behind it: it answers in Hegelion's single-call trace format,
quoting the question. Useful to see a plugin end to end; useless as a teacher."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Literal

from hegelion_core.contracts import Completion, Options, Teacher
from hegelion_core.records import Message, Usage


class EchoTeacher(Teacher):
    name = "echo"

    class Options(Options):
        style: Literal["trace", "plain"] = "trace"
        prefix: str = "You asked"
        delay: float = 0.0  # seconds per call, to stand in for a model's latency

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        start = time.perf_counter()
        await asyncio.sleep(self.options.delay)
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
        if self.options.style == "plain":
            text = f"{self.options.prefix}: {question}"
        else:
            text = (
                f"<thought>\nTHESIS: {self.options.prefix}: {question} The plain answer is yes.\n\n"
                f"ANTITHESIS: The plain answer ignores the cases where it is no.\n\n"
                f"SYNTHESIS: Yes in general, no in the cases the antithesis names.\n</thought>\n"
                f"It depends on the case."
            )
        words = text.split()
        if max_tokens is not None:
            words = words[:max_tokens]
        return Completion(
            text=" ".join(words) if self.options.style == "plain" else text,
            model="echo",
            usage=Usage(
                prompt_tokens=sum(len(m.content.split()) for m in messages),
                completion_tokens=len(words),
            ),
            finish_reason="stop",
            latency_s=time.perf_counter() - start,
        )
