"""API keys: from the environment or a config file, and never anywhere else.

Keys are read by name (``OPENAI_API_KEY``...) from the environment first, then from
``secrets.toml`` in the Hegelion config directory (``$HEGELION_CONFIG_DIR``, else
``~/.config/hegelion``)::

    OPENAI_API_KEY = "sk-..."
    MOONSHOT_API_KEY = "..."

`scrub` removes every key value it has handed out from a text, so errors and logs
can be printed safely.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

_handed_out: set[str] = set()


def config_dir() -> Path:
    return Path(os.environ.get("HEGELION_CONFIG_DIR") or Path.home() / ".config" / "hegelion")


def get_secret(name: str) -> str | None:
    """The value of key ``name``, or None when it is set nowhere."""
    value = os.environ.get(name)
    if not value:
        path = config_dir() / "secrets.toml"
        if path.is_file():
            with path.open("rb") as fp:
                value = tomllib.load(fp).get(name)
    if value:
        _handed_out.add(str(value))
        return str(value)
    return None


def require_secret(name: str, what: str) -> str:
    from hegelion_core.errors import HegelionError

    value = get_secret(name)
    if not value:
        raise HegelionError(
            f"{what} needs {name}: export {name}=... or add it to {config_dir() / 'secrets.toml'}"
        )
    return value


def scrub(text: str) -> str:
    """``text`` with every key value this process has read replaced by ``***``."""
    for value in _handed_out:
        if len(value) >= 6:
            text = text.replace(value, "***")
    return text
