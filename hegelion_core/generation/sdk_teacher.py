"""A base for teachers that reach an HTTP API through a Stainless-generated SDK.

The official ``openai`` and ``anthropic`` SDKs share one shape: an ``Async*`` client
taking ``api_key``, ``base_url``, ``timeout``, ``max_retries`` and ``http_client``, an
optional ``DefaultAioHttpClient``, and one exception tree (``APITimeoutError``,
``APIConnectionError``, ``APIStatusError``, ...). What follows from that shape lives here
once, for the openai, anthropic and kimi teachers and for third-party ones:

- **One client per event loop**: its connection pool belongs to the loop that made it.
- **Retries are the generator's**: ``max_retries=0``, and every failure becomes a
  `TeacherError` saying whether a retry can help, how long the server asked us to
  wait (``Retry-After``) and whose fault it is (``blame``: 401/403 ``auth``; refused
  connections, DNS, timeouts, 429 and 5xx ``service``; so a key or an outage never
  uses up the prompts). Messages never hold a credential.
- **Deadlines are hard**: ``timeout`` bounds the whole call (the SDK's own is per
  read, so a trickling stream could otherwise outlive it).
- **The transport**: the SDK's aiohttp client when it is installed (half the client
  CPU per request at high concurrency), else its default, httpx.

The SDK itself is imported on the first call, never when the plugin loads.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field

from hegelion_core.contracts import DriverOptions, Teacher, TeacherError
from hegelion_core.errors import HegelionError
from hegelion_core.generation.limits import parse_retry_after, retryable_status
from hegelion_core.secrets import get_secret, learn, require_secret, scrub

T = TypeVar("T")

#: A placeholder key for local servers that need none (the SDKs insist on one).
LOCAL_DUMMY_KEY = "not-needed"
#: HTTP libraries whose errors older SDKs let through unwrapped.
_TRANSPORT_MODULES = ("httpx", "httpx2", "httpcore", "h11", "anyio", "aiohttp")


class SDKTeacher(Teacher):
    """A teacher on a Stainless SDK. Subclasses name the SDK and implement ``complete``,
    making each request through ``self.client()`` inside ``await self.guarded(...)``."""

    #: The SDK's module, as imported and as pip installs it ("openai").
    sdk: ClassVar[str]
    #: Its async client class ("AsyncOpenAI").
    client_class: ClassVar[str]
    #: The root of its exception tree ("OpenAIError").
    sdk_error: ClassVar[str]

    class Options(DriverOptions):
        base_url: str | None = Field(None, description="another server that speaks the API")
        api_key_env: str = Field(
            "API_KEY", description="where the key is read (environment, then secrets.toml)"
        )
        timeout: float = Field(120.0, gt=0, description="seconds for one whole call")
        transport: Literal["auto", "httpx", "aiohttp"] = Field(
            "auto",
            description="HTTP transport; auto takes aiohttp when the SDK's aiohttp "
            "extra is installed (half the client CPU per request)",
        )

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        learn(self.options.model_dump(mode="json"))  # a key in extra_body or base_url is masked too
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    # ----- the client --------------------------------------------------------------

    def api_key(self) -> str:
        """The key from the environment or secrets.toml; a placeholder for a server of
        one's own (``base_url``), which often needs none."""
        if self.options.base_url:
            return get_secret(self.options.api_key_env) or LOCAL_DUMMY_KEY
        return require_secret(self.options.api_key_env, f"the {self.name!r} teacher")

    def client(self) -> Any:
        """The SDK client for the running event loop (made, and the SDK imported, on first use)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            make = getattr(self._sdk(), self.client_class)
            self._client = make(
                api_key=self.api_key(),
                base_url=self.options.base_url,
                timeout=self.options.timeout,
                max_retries=0,
                http_client=self._http_client(),
            )
            self._client_loop = loop
        return self._client

    @property
    def transport(self) -> Literal["httpx", "aiohttp"]:
        """The transport calls use: ``aiohttp`` when asked for, or on ``auto`` when the
        SDK's aiohttp client can be used; else the SDK's default, httpx."""
        if self.options.transport == "httpx":
            return "httpx"
        available = (
            hasattr(self._sdk(), "DefaultAioHttpClient")
            and importlib.util.find_spec("aiohttp") is not None
        )
        if self.options.transport == "aiohttp" and not available:
            raise HegelionError(
                f"the {self.name} teacher's transport=aiohttp needs the SDK's "
                f"aiohttp client: pip install '{self.sdk}[aiohttp]'"
            )
        return "aiohttp" if available else "httpx"

    def _http_client(self) -> Any:
        if self.transport == "aiohttp":
            return self._sdk().DefaultAioHttpClient(timeout=self.options.timeout)
        return None  # the SDK's own httpx client

    def _sdk(self) -> ModuleType:
        return importlib.import_module(self.sdk)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        loop, self._client_loop = self._client_loop, None
        if client is not None and loop is asyncio.get_running_loop():
            await client.close()
        # A client made on a loop that has since closed holds no socket we could close.

    # ----- calls and their failures ------------------------------------------------

    async def guarded(self, call: Callable[[], Awaitable[T]]) -> T:
        """``await call()`` under the whole-call deadline, its failures as `TeacherError`."""
        timeout = self.options.timeout
        try:
            async with asyncio.timeout(timeout):
                return await call()
        except TimeoutError:
            raise TeacherError(f"timed out after {timeout:g}s", retryable=True) from None
        except TeacherError:
            raise
        except Exception as exc:
            error = self.to_teacher_error(exc)
            if error is None:  # neither the SDK's nor the network's: a bug, or a missing key
                raise
            if error.status in (401, 403):
                error.args = (f"{error} (the key comes from {self.options.api_key_env})",)
            raise error from exc

    def to_teacher_error(self, exc: BaseException) -> TeacherError | None:
        """Translate an SDK (or transport) failure; None for an exception that is neither
        (it is re-raised as it is)."""
        sdk = self._sdk()
        if isinstance(exc, sdk.APITimeoutError):
            refused = _connection_error_under(exc)  # aiohttp reports a refusal as a timeout
            if refused is not None:
                return TeacherError(
                    scrub(f"connection error: {refused}"), retryable=True, blame="service"
                )
            return TeacherError(f"timed out after {self.options.timeout:g}s", retryable=True)
        if isinstance(exc, sdk.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            detail = f": {cause}" if cause else ""
            return TeacherError(scrub(f"connection error{detail}"), retryable=True, blame="service")
        if isinstance(exc, sdk.APIStatusError):
            status, message = self.status_detail(exc)
            headers = exc.response.headers if exc.response is not None else None
            return TeacherError(
                scrub(message)[:1000],
                retryable=retryable_status(status),
                retry_after=parse_retry_after(headers),
                status=status,
            )
        if isinstance(exc, sdk.APIResponseValidationError):
            return TeacherError(
                scrub(f"malformed response: {exc.message}"), retryable=True, status=exc.status_code
            )
        if isinstance(exc, sdk.APIError):  # an error without a status, e.g. inside a stream
            return TeacherError(scrub(f"API error: {exc.message}"), retryable=True)
        if isinstance(exc, json.JSONDecodeError):  # a 200 whose body is not JSON
            return TeacherError(scrub(f"malformed response: {exc}"), retryable=True)
        if type(exc).__module__.split(".")[0] in _TRANSPORT_MODULES:
            return TeacherError(
                scrub(f"connection error: {type(exc).__name__}: {exc}"),
                retryable=True,
                blame="service",
            )
        if isinstance(exc, getattr(sdk, self.sdk_error)):  # the client's setup, not a prompt
            return TeacherError(
                scrub(f"{type(exc).__name__}: {exc}"), retryable=False, blame="service"
            )
        return None

    def status_detail(self, exc: Any) -> tuple[int, str]:
        """(status, message) for an ``APIStatusError``; an API with more to say in its
        error body overrides this."""
        _, message = error_body(exc.body)
        return exc.status_code, f"HTTP {exc.status_code}: {message or exc.message}"


def error_body(body: object) -> tuple[str | None, str | None]:
    """(type, message) of an API error body, kept by the SDKs as ``{"error": {...}}``
    or as the inner object itself."""
    inner = body.get("error", body) if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        return None, None
    return inner.get("type"), inner.get("message")


def _connection_error_under(exc: BaseException) -> ConnectionError | None:
    """The `ConnectionError` (refused, reset) an SDK error was raised from, if any."""
    seen: set[int] = set()
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ConnectionError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None
