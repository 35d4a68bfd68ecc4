"""Test helpers for Hegelion and its plugins.

`hegelion_core.testing.contracts` holds the contract suites a plugin's tests subclass
(re-exported here). `hegelion_core.testing.tiny_models` builds tiny offline models and
tokenizers; it imports its heavy dependencies lazily, so importing this package
never pulls torch.
"""

from hegelion_core.testing.contracts import (
    DriverContract,
    ExporterContract,
    FormatterContract,
    PromptSourceContract,
    TeacherContract,
    TrainerContract,
    sample_records,
)

__all__ = [
    "DriverContract",
    "ExporterContract",
    "FormatterContract",
    "PromptSourceContract",
    "TeacherContract",
    "TrainerContract",
    "sample_records",
]
