"""Test helpers for Hegelion and its plugins.

- `hegelion_core.testing.contracts`: the contract suites a plugin's tests subclass
  (re-exported here), `TeacherContract` and `SDKTeacherContract` among them;
- `hegelion_core.testing.pytest_plugin`: the shared fixtures (scripted servers, a fake
  key, sample traces and their datasets, tiny models), loaded by pytest on its own;
- `hegelion_core.testing.scripted_server`: scripted OpenAI/Anthropic servers with faults;
- `hegelion_core.testing.batch_server`: a scripted OpenAI/Anthropic batch service;
- `hegelion_core.testing.sample_traces`, `tiny_models`, `calls`: data, models, calls.

Importing this package needs neither pytest nor torch (the benchmarks use it): the
contracts, which are pytest classes, load on first use of one of their names, and the
tiny models import their heavy dependencies inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hegelion_core.testing.sample_traces import sample_records

if TYPE_CHECKING:
    from hegelion_core.testing.contracts import (
        DriverContract,
        ExporterContract,
        FormatterContract,
        PromptSourceContract,
        SDKTeacherContract,
        TeacherContract,
        TrainerContract,
    )

__all__ = [
    "DriverContract",
    "ExporterContract",
    "FormatterContract",
    "PromptSourceContract",
    "SDKTeacherContract",
    "TeacherContract",
    "TrainerContract",
    "sample_records",
]


def __getattr__(name: str) -> Any:
    """The contracts, imported (with pytest) the first time one is asked for."""
    if name in __all__:  # sample_records is imported above
        from hegelion_core.testing import contracts

        return getattr(contracts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
