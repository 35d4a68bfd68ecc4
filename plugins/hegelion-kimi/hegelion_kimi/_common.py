"""What both Kimi teachers share: defaults, the API key, and safe error text."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

from hegelion_core.secrets import require_secret, scrub

DEFAULT_BASE_URL = "https://api.moonshot.ai/v1"
DEFAULT_MODEL = "kimi-k2-thinking"
DEFAULT_KEY_ENV = "MOONSHOT_API_KEY"

#: HTTP statuses worth another try: timeouts, conflicts, rate limits and server errors.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})


def is_retryable_status(status: int | None) -> bool:
    return status is not None and (status in RETRYABLE_STATUSES or status >= 500)


def api_key(env_name: str, what: str) -> str:
    """The key named ``env_name``, from the environment or Hegelion's secrets file.

    Raises `HegelionError` naming the variable when it is set nowhere, so a run
    stops before its first prompt instead of failing every one.
    """
    return require_secret(env_name, what)


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or a date)."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def safe_text(text: object, limit: int = 500) -> str:
    """``text`` shortened and with every key this process has read replaced by ``***``."""
    value = scrub(str(text)).strip()
    return value if len(value) <= limit else value[: limit - 3] + "..."
