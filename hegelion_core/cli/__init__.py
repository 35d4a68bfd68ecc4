"""The ``hegelion`` command line: one module per command, the shared option parsing in
`options`, and the root group in `app`, which registers every command explicitly.

The library never imports this package: commands call the library, not the reverse.
"""

from hegelion_core.cli.app import agent_main, cli, dataset_main, load_plugin_commands, main

__all__ = ["agent_main", "cli", "dataset_main", "load_plugin_commands", "main"]
