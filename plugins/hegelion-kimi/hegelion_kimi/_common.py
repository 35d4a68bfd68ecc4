"""What both Kimi teachers share: defaults, the API key, and safe error text."""

from __future__ import annotations

from hegelion_core import get_secret, require_secret, scrub

DEFAULT_BASE_URL = "https://api.moonshot.ai/v1"
DEFAULT_MODEL = "kimi-k2-thinking"
DEFAULT_KEY_ENV = "MOONSHOT_API_KEY"


def api_key(env_name: str, what: str) -> str:
    """The key named ``env_name``, from the environment or Hegelion's secrets file.

    Raises `HegelionError` naming the variable when it is set nowhere, so a run
    stops before its first prompt instead of failing every one.
    """
    return require_secret(env_name, what)


def optional_api_key(env_name: str) -> str | None:
    """The key named ``env_name`` (environment, then secrets file), or None: the
    kimi-cli teacher then uses your ``kimi login``."""
    return get_secret(env_name)


def safe_text(text: object, limit: int = 500) -> str:
    """``text`` shortened and with every key this process has read replaced by ``***``."""
    value = scrub(str(text)).strip()
    return value if len(value) <= limit else value[: limit - 3] + "..."
