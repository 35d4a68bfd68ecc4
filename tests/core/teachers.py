"""An in-process teacher for testing core's engine and generator (not a teacher
plugin: those are tested against real servers and models in their own packages).

It answers by the role its system prompt gives it, deterministically, and fails
on a schedule: ``failures[prompt]`` is a list of exceptions (or the string
"hang") consumed one per call.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from hegelion_core.contracts import Completion, Options, Teacher
from hegelion_core.generation.dialectic import (
    ANTITHESIS_SYSTEM,
    JUDGE_SYSTEM,
    SINGLE_SYSTEM,
    SYNTHESIS_SYSTEM,
    THESIS_SYSTEM,
)
from hegelion_core.records import DialecticTrace, Message, Usage, render_output


def question_of(messages: Sequence[Message]) -> str:
    user = next(m.content for m in messages if m.role == "user")
    return user.split("Question:\n", 1)[-1].split("\n\n", 1)[0]


class RuleTeacher(Teacher):
    name = "rule"

    class Options(Options):
        model: str = "rule-1"
        delay: float = 0.0
        judge_score: float = 8.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, list[Message], dict[str, Any]]] = []
        self.failures: dict[str, list[Any]] = defaultdict(list)
        self.replies: dict[str, list[str]] = defaultdict(list)  # by role, consumed first
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = 0

    def role_of(self, messages: Sequence[Message]) -> str:
        system = messages[0].content if messages[0].role == "system" else ""
        for role, prompt in (
            ("single", SINGLE_SYSTEM),
            ("judge", JUDGE_SYSTEM),
            ("thesis", THESIS_SYSTEM),
            ("synthesis", SYNTHESIS_SYSTEM),
        ):
            if system == prompt:
                return role
        if system.startswith(ANTITHESIS_SYSTEM):
            return "antithesis"
        return "other"

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        role, q = self.role_of(messages), question_of(messages)
        self.calls.append(
            (role, list(messages), {"max_tokens": max_tokens, "json_schema": json_schema})
        )
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.options.delay)
            if self.failures[q]:
                failure = self.failures[q].pop(0)
                if failure == "hang":
                    await asyncio.sleep(3600)
                raise failure
            text = (
                self.replies[role].pop(0) if self.replies[role] else self.reply(role, q, messages)
            )
        finally:
            self.in_flight -= 1
        return Completion(
            text=text, model=self.options.model, usage=Usage(prompt_tokens=10, completion_tokens=20)
        )

    def reply(self, role: str, q: str, messages: Sequence[Message]) -> str:
        if role == "single":
            trace = DialecticTrace(
                thesis=f"Yes, {q}",
                antithesis=f"CONTRADICTION: Not always\nEVIDENCE: {q} fails sometimes.",
                synthesis=f"Usually {q}\nRESEARCH_PROPOSAL: Measure it.\nTESTABLE_PREDICTION: It holds 9 times in 10.",
                answer=f"Usually, {q}",
            )
            return render_output(trace)
        if role == "thesis":
            return f"Thesis: yes, {q}"
        if role == "antithesis":
            system = messages[0].content
            critic = (
                system.split("\nYou are the ")[1].split(".")[0]
                if "\nYou are the " in system
                else "critic"
            )
            return f"CONTRADICTION: {critic} objects\nEVIDENCE: {q} has exceptions."
        if role == "synthesis":
            return f"Synthesis: mostly, {q}\nRESEARCH_PROPOSAL: Test it.\nTESTABLE_PREDICTION: Exceptions are rare."
        if role == "judge":
            return json.dumps(
                {
                    "score": self.options.judge_score,
                    "critique_validity": True,
                    "reasoning": "Fine.",
                    "strengths": ["clear"],
                    "improvements": [],
                }
            )
        return "ok"

    async def aclose(self) -> None:
        self.closed += 1
