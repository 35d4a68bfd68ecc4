"""Your own ``kimi login``, lent to one kimi-cli call at a time.

Where kimi-cli keeps it (1.52, ``kimi_cli/auth/oauth.py``): ``kimi login`` (a
device-code OAuth flow against ``auth.kimi.com``) writes the token to
``$KIMI_SHARE_DIR/credentials/kimi-code.json`` (``~/.kimi`` by default), mode 0600,
as JSON with ``access_token``, ``refresh_token``, ``expires_at`` (epoch seconds),
``expires_in``, ``scope`` and ``token_type``; its ``config.toml`` gets a provider
``managed:kimi-code`` (type ``kimi``, base URL ``https://api.kimi.com/coding/v1``,
``api_key = ""``, ``oauth = {storage = "file", key = "oauth/kimi-code"}``). Older
versions kept the token in the system keyring; the CLI moves it to that file the
next time it runs. A provider with an ``oauth`` reference sends the file's access
token as its bearer; without one, or with no token in the file, its ``api_key``.

How it refreshes: at start, at every turn and every 60 s, when less than
max(300 s, expires_in / 2) is left, it posts the refresh token to
``$KIMI_CODE_OAUTH_HOST/api/oauth/token`` and writes the answer back to the same
file (a temporary file renamed over it), holding ``flock`` on
``credentials/kimi-code.lock`` so its processes do not refresh at once. The answer
may carry a new refresh token, and the old one may stop working.

So a refresh must never happen in a throwaway copy, nor in two calls at once:

- an ordinary call gets a copy of the access token only (refresh token blanked,
  mode 0400): the CLI cannot refresh, and the user's refresh token never leaves
  their file for it;
- when the token would come due before a call could end, one short CLI run
  (a slash command, no model request) gets the full credential marked due, under
  that same lock; what it refreshed is written back to the user's file atomically,
  and only when the file still holds what was lent, so a login refreshed meanwhile
  by the user's own ``kimi`` is never overwritten. The write-back is the exception
  to "never overwrite what Hegelion did not create": it is the write the CLI itself
  makes to that file, which would otherwise keep a refresh token the server may
  have retired.

Nothing else from the user's Kimi directory is copied except ``device_id`` (the
random id the CLI sends as ``X-Msh-Device-Id``, which the login was granted to).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from hegelion_core import HegelionError, remember

#: The provider and OAuth key ``kimi login`` writes; the CLI refreshes only this one.
PROVIDER = "managed:kimi-code"
OAUTH_KEY = "oauth/kimi-code"
#: Where a Kimi Code login's requests go, and its model, unless the user's config says.
KIMI_CODE_BASE_URL = "https://api.kimi.com/coding/v1"
KIMI_CODE_MODEL = "kimi-for-coding"
#: Variables that move the CLI's OAuth host (the refresh must reach the login's).
OAUTH_HOST_ENV = ("KIMI_CODE_OAUTH_HOST", "KIMI_OAUTH_HOST")
#: The prompt of a refresh run: a slash command the CLI does not know, so it answers
#: "Unknown slash command" without a model request, after refreshing at start.
REFRESH_PROMPT = "/hegelion-refresh-login"
#: Seconds to wait for the refresh lock another kimi-cli process holds.
LOCK_WAIT_S = 60.0
#: The CLI's own refresh threshold: max(300 s, half the token's lifetime).
_MIN_THRESHOLD_S = 300.0

_DEVICE_ID = re.compile(r"[0-9a-f]{32}")


def share_dir() -> Path:
    """The CLI's data directory: ``$KIMI_SHARE_DIR``, else ``~/.kimi``."""
    return Path(os.environ.get("KIMI_SHARE_DIR") or Path.home() / ".kimi")


def hint() -> str:
    return (
        "run `kimi login` (kimi-cli 1.52: `python -m kimi_cli.cli login`), or set MOONSHOT_API_KEY"
    )


@dataclass(frozen=True)
class Token:
    """One credential file's content, as the CLI wrote it (``raw``) and parsed."""

    raw: bytes
    access_token: str
    refresh_token: str
    expires_at: float
    expires_in: float

    @classmethod
    def parse(cls, raw: bytes) -> Token:
        """Raise ValueError saying what is wrong (never showing a value)."""
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        access = data.get("access_token")
        if not isinstance(access, str) or not access:
            raise ValueError("no access_token")
        refresh = data.get("refresh_token") or ""
        try:
            expires_at = float(data.get("expires_at") or 0)
            expires_in = float(data.get("expires_in") or 0)
        except (TypeError, ValueError):
            raise ValueError("expires_at/expires_in are not numbers") from None
        if not isinstance(refresh, str):
            raise ValueError("refresh_token is not a string")
        remember(access)
        if refresh:
            remember(refresh)
        return cls(raw, access, refresh, expires_at, expires_in)

    def seconds_left(self) -> float:
        return self.expires_at - time.time() if self.expires_at else 0.0

    def due(self, call_s: float) -> bool:
        """Whether to refresh before a call that may last ``call_s``: the CLI would
        want to within it, or the access token could expire during it."""
        threshold = (
            max(_MIN_THRESHOLD_S, self.expires_in / 2) if self.expires_in > 0 else _MIN_THRESHOLD_S
        )
        return self.seconds_left() < max(threshold, call_s)

    def lent(self, *, refresh: bool) -> bytes:
        """The copy one call gets: the access token only, or (``refresh``) everything
        with ``expires_at`` 0, so the CLI refreshes as soon as it starts."""
        data = json.loads(self.raw)
        if refresh:
            data["expires_at"] = 0
        else:
            data["refresh_token"] = ""
        return json.dumps(data).encode()


class KimiLogin:
    """The credential ``kimi login`` left in ``share`` (default: `share_dir`)."""

    def __init__(self, share: Path | None = None) -> None:
        self.share = share or share_dir()
        self.path = self.share / "credentials" / "kimi-code.json"
        self.lock_path = self.share / "credentials" / "kimi-code.lock"

    def read(self) -> Token:
        """The token, or a `HegelionError` that says how to log in."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise HegelionError(
                f"the kimi-cli teacher has no API key and no Kimi login: {self.path} does not "
                f"exist; {hint()}"
            ) from None
        except OSError as exc:
            raise HegelionError(
                f"cannot read your Kimi login {self.path}: {exc.strerror or exc}; {hint()}"
            ) from None
        try:
            token = Token.parse(raw)
        except ValueError as exc:
            raise HegelionError(f"{self.path}: not a Kimi login ({exc}); {hint()}") from None
        if token.seconds_left() <= 0 and not token.refresh_token:
            raise HegelionError(
                f"your Kimi login in {self.path} has expired and cannot be refreshed; {hint()}"
            )
        return token

    def lend(self, token: Token, share: Path, *, refresh: bool) -> Path:
        """Put the call's copy of ``token`` (and ``device_id``) into ``share``."""
        credentials = share / "credentials"
        credentials.mkdir(mode=0o700, exist_ok=True)
        copy = credentials / "kimi-code.json"
        _write(copy, token.lent(refresh=refresh), 0o400)
        with contextlib.suppress(OSError, UnicodeDecodeError):
            device = (self.share / "device_id").read_text(encoding="utf-8").strip()
            if _DEVICE_ID.fullmatch(device):
                _write(share / "device_id", device.encode(), 0o600)
        return copy

    def take_back(self, lent: Token, share: Path) -> Token | None:
        """What the CLI refreshed ``lent`` into in ``share``, written to the user's file
        when that still holds ``lent``; None when nothing was refreshed."""
        try:
            refreshed = Token.parse((share / "credentials" / "kimi-code.json").read_bytes())
        except (OSError, ValueError):
            return None
        if (
            refreshed.access_token == lent.access_token
            or not refreshed.refresh_token
            or refreshed.expires_at <= lent.expires_at
        ):
            return None
        try:
            if self.path.read_bytes() != lent.raw:
                return None  # refreshed meanwhile by someone else: theirs stands
        except OSError:
            return None  # logged out meanwhile: do not log back in behind their back
        _write_over(self.path, refreshed.raw)
        return refreshed

    @contextlib.asynccontextmanager
    async def locked(self, wait_s: float = LOCK_WAIT_S) -> AsyncIterator[None]:
        """Hold the CLI's own refresh lock (``flock``; also excludes this process's
        other calls, each on a descriptor of its own)."""
        fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            deadline = time.monotonic() + wait_s
            while True:  # bounded by wait_s
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise TimeoutError(
                            f"{self.lock_path} stayed locked for {wait_s:g}s"
                        ) from None
                    await asyncio.sleep(0.1)
            yield
        finally:
            os.close(fd)  # releases the lock


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fp:
        fp.write(data)


def _write_over(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically, mode 0600, as the CLI does (never half written)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".hegelion-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fp:
            fp.write(data)
            fp.flush()
            os.fsync(fp.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


__all__ = [
    "KimiLogin",
    "Token",
    "share_dir",
    "PROVIDER",
    "OAUTH_KEY",
    "KIMI_CODE_BASE_URL",
    "KIMI_CODE_MODEL",
    "OAUTH_HOST_ENV",
    "REFRESH_PROMPT",
]
