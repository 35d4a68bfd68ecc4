"""Splitting a round's requests into provider jobs below both limits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from hegelion_core.errors import HegelionError

T = TypeVar("T")


def split(
    items: Sequence[T], size: Callable[[T], int], *, max_requests: int, max_bytes: int
) -> list[list[T]]:
    """Consecutive parts of ``items``, each at most ``max_requests`` long and
    ``max_bytes`` in total size; one item larger than ``max_bytes`` is an error."""
    parts: list[list[T]] = []
    part: list[T] = []
    used = 0
    for item in items:
        n = size(item)
        if n > max_bytes:
            raise HegelionError(
                f"one batch request is {n} bytes, more than the {max_bytes} a job may hold; "
                "shorten the prompt or lower --max-tokens"
            )
        if part and (len(part) >= max_requests or used + n > max_bytes):
            parts.append(part)
            part, used = [], 0
        part.append(item)
        used += n
    if part:
        parts.append(part)
    return parts
