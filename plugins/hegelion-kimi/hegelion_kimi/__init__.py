"""Hegelion teachers for Kimi.

- ``kimi``: Moonshot's OpenAI-compatible API (`hegelion_kimi.api.KimiTeacher`).
- ``kimi-cli``: the Kimi CLI in print mode, with no tools, in a throwaway HOME and
  working directory (`hegelion_kimi.cli.KimiCLITeacher`).

Nothing heavy is imported here: `hegelion plugins` imports driver modules to list them.
"""

__version__ = "0.1.0"
