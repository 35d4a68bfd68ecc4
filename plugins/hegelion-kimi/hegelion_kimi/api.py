"""The ``kimi`` teacher: Moonshot's OpenAI-compatible chat API through the openai SDK.

Kimi's thinking models return their reasoning in ``reasoning_content`` beside the
answer in ``content``. A `Completion` has one text field, so the teacher keeps the
answer: the dialectic Hegelion trains on is the model's written thesis,
antithesis and synthesis, not its hidden scratchpad.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from hegelion_core.contracts import Completion, Options, Teacher, TeacherError
from hegelion_core.records import Message, Usage
from hegelion_kimi._common import (
    DEFAULT_BASE_URL,
    DEFAULT_KEY_ENV,
    DEFAULT_MODEL,
    api_key,
    is_retryable_status,
    parse_retry_after,
    safe_text,
)

if TYPE_CHECKING:
    from openai import AsyncOpenAI


class KimiTeacher(Teacher):
    """Moonshot's Kimi API (``api.moonshot.ai``), or any server that speaks its protocol."""

    name = "kimi"

    class Options(Options):
        model: str = Field(DEFAULT_MODEL, min_length=1)
        base_url: str = Field(DEFAULT_BASE_URL, min_length=1)
        #: Name of the variable (or secrets.toml key) holding the key, never the key.
        api_key_env: str = Field(DEFAULT_KEY_ENV, min_length=1)
        #: Seconds for one call, connection to last byte.
        timeout: float = Field(600.0, gt=0)
        #: How `json_schema` is sent: Moonshot documents JSON mode (``json_object``);
        #: ``json_schema`` suits servers that enforce schemas; ``off`` ignores it.
        json_mode: Literal["json_object", "json_schema", "off"] = "json_object"

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self._key = api_key(self.options.api_key_env, f"the {self.name} teacher")
        # One client per event loop: an httpx pool cannot outlive the loop it was made on.
        self._client: AsyncOpenAI | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def _get_client(self) -> AsyncOpenAI:
        from openai import AsyncOpenAI

        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = AsyncOpenAI(
                api_key=self._key,
                base_url=self.options.base_url,
                timeout=self.options.timeout,
                max_retries=0,  # the generator owns retries and backoff
            )
            self._client_loop = loop
        return self._client

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        request: dict[str, Any] = {
            "model": self.options.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
        }
        if max_tokens is not None:
            request["max_tokens"] = max_tokens
        if temperature is not None:
            request["temperature"] = temperature
        if json_schema is not None and self.options.json_mode == "json_object":
            request["response_format"] = {"type": "json_object"}
        elif json_schema is not None and self.options.json_mode == "json_schema":
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "hegelion", "schema": json_schema},
            }

        start = time.perf_counter()
        try:
            response = await self._get_client().chat.completions.create(**request)
        except Exception as exc:  # every SDK failure becomes a TeacherError
            raise _teacher_error(exc, self.options.timeout) from None
        latency = time.perf_counter() - start
        return _completion(response, self.options.model, latency)

    async def aclose(self) -> None:
        client, loop = self._client, self._client_loop
        self._client = self._client_loop = None
        if client is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            await client.close()
        # A client made on a loop that has since closed holds no live sockets we can
        # close from here; dropping it is all that is left to do.


def _completion(response: Any, model: str, latency: float) -> Completion:
    """A `Completion` from a chat completion, or a retryable error when it is malformed."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise TeacherError("malformed response from the Kimi API: no choices", retryable=True)
    choice = choices[0]
    message = getattr(choice, "message", None)
    text = getattr(message, "content", None)
    finish_reason = getattr(choice, "finish_reason", None)
    if not isinstance(text, str) or not text.strip():
        reasoning = getattr(message, "reasoning_content", None) or (
            (getattr(message, "model_extra", None) or {}).get("reasoning_content")
        )
        if reasoning and finish_reason == "length":
            raise TeacherError(
                "the model spent its whole max_tokens budget on reasoning and wrote no "
                "answer; raise max_tokens",
                retryable=False,
            )
        raise TeacherError(
            f"malformed response from the Kimi API: empty content "
            f"(finish_reason={finish_reason!r})",
            retryable=True,
        )
    usage = getattr(response, "usage", None)
    return Completion(
        text=text,
        model=getattr(response, "model", None) or model,
        usage=Usage(
            prompt_tokens=max(0, int(getattr(usage, "prompt_tokens", 0) or 0)),
            completion_tokens=max(0, int(getattr(usage, "completion_tokens", 0) or 0)),
        ),
        finish_reason=finish_reason,
        latency_s=latency,
    )


def _teacher_error(exc: Exception, timeout: float) -> TeacherError:
    """Translate an openai SDK (or parsing) failure; the key never reaches the message."""
    import openai

    if isinstance(exc, TeacherError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return TeacherError(f"Kimi API call timed out after {timeout:g}s", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = f": {safe_text(cause, 200)}" if cause else ""
        return TeacherError(f"connection to the Kimi API failed{detail}", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retryable = is_retryable_status(status)
        headers = getattr(exc.response, "headers", None)
        return TeacherError(
            f"Kimi API returned HTTP {status}: {safe_text(_error_message(exc))}",
            retryable=retryable,
            retry_after=parse_retry_after(headers) if retryable else None,
            status=status,
        )
    if isinstance(exc, (openai.APIResponseValidationError, ValueError, TypeError, KeyError)):
        # A body that is not the JSON the protocol promises: truncated, HTML, garbage.
        return TeacherError(
            f"malformed response from the Kimi API: {safe_text(exc, 200)}", retryable=True
        )
    if isinstance(exc, openai.OpenAIError):
        return TeacherError(f"Kimi API call failed: {safe_text(exc)}", retryable=False)
    raise exc


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(getattr(exc, "message", None) or exc)
