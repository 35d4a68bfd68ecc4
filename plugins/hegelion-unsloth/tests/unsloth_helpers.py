"""Types the unsloth tests share. A module of its own, not conftest: a name imported from
`conftest` is whichever plugin's conftest pytest loaded last when plugins run together."""

from collections.abc import Callable
from pathlib import Path

#: ``formatted(fmt, *args) -> Path``: `hegelion dataset`'s output on the sample traces.
Formatted = Callable[..., Path]
