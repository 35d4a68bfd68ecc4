"""Calling a teacher from synchronous test code, as a run does: in an event loop of its
own, with the teacher closed afterwards (its clients belong to that loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from hegelion_core.contracts import Completion, Teacher, TeacherError
from hegelion_core.records import Message

#: A question for tests that do not care which.
QUESTION: tuple[Message, ...] = (Message(role="user", content="Is water wet?"),)


def complete_once(
    teacher: Teacher, messages: Sequence[Message] = QUESTION, **kwargs: Any
) -> Completion:
    """``teacher.complete(messages, **kwargs)`` in a fresh event loop, then ``aclose``."""

    async def go() -> Completion:
        try:
            return await teacher.complete(messages, **kwargs)
        finally:
            await teacher.aclose()

    return asyncio.run(go())


def complete_error(
    teacher: Teacher, messages: Sequence[Message] = QUESTION, **kwargs: Any
) -> TeacherError:
    """The `TeacherError` that `complete_once` raises; the test fails when there is none."""
    import pytest  # here: hegelion_core.testing imports without pytest

    with pytest.raises(TeacherError) as info:
        complete_once(teacher, messages, **kwargs)
    return info.value
