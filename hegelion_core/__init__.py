"""Hegelion core: contracts, record schemas, the trace parser, formatters and the CLI.

Teachers, trainers and exporters live in plugins; see `hegelion plugins`.
"""

from hegelion_core._version import __version__

__all__ = ["__version__"]
