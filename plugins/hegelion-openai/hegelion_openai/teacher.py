"""The ``openai`` teacher: OpenAI's chat completions API, or any server that speaks it.

One driver reaches GPT-4o and every OpenAI-compatible server (Ollama, vLLM,
llama.cpp, OpenRouter) through the official SDK, so their quirks are handled once.
Retries, deadlines, error translation and the transport are `SDKTeacher`'s
(hegelion_core.generation.sdk_teacher); what is this API's own:

- **Structured output degrades gracefully.** ``json_schema`` is sent as
  ``response_format={"type": "json_schema", ...}``. A server that rejects that
  (llama-cpp-python answers 500, others 400/422, naming ``response_format``) is asked
  again, in the same call, with ``{"type": "json_object", "schema": ...}`` plus the
  schema in a system turn, and if that is rejected too, with the system turn alone.
  The teacher remembers the level that worked, so later calls do not pay for it again.
- **The request path is lean.** A non-streaming call goes through the SDK's generic
  ``client.post`` with an orjson-encoded body and reads the raw answer with orjson.
  The SDK still owns the connection, auth, base URL, headers, timeouts and the
  status-to-exception mapping; what is skipped is its per-call TypedDict transform of
  the parameters and pydantic build of the answer, which were half the client's CPU
  per request (1.28 ms -> 0.56 ms with aiohttp, measured in the throughput benchmark's
  notes in docs/generation.md). Streams still go through ``chat.completions.create``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import Field

from hegelion_core import (
    Completion,
    Message,
    SDKTeacher,
    TeacherError,
    Usage,
    finish_reason_of,
    scrub,
)

if TYPE_CHECKING:  # the SDK loads only when a call is made
    from openai import AsyncOpenAI

    from hegelion_openai.batch import OpenAIBatch

JsonMode = Literal["json_schema", "json_object", "prompt"]
_JSON_MODES: tuple[JsonMode, ...] = ("json_schema", "json_object", "prompt")


class OpenAITeacher(SDKTeacher):
    """Chat completions through ``openai.AsyncOpenAI``."""

    name = "openai"
    sdk = "openai"
    client_class = "AsyncOpenAI"
    sdk_error = "OpenAIError"

    class Options(SDKTeacher.Options):
        model: str = "gpt-4o"
        base_url: str | None = Field(
            None, description="an OpenAI-compatible server, e.g. http://localhost:11434/v1"
        )
        api_key_env: str = Field(
            "OPENAI_API_KEY", description="where the key is read (environment, then secrets.toml)"
        )
        temperature: float | None = Field(None, ge=0, le=2)
        max_tokens: int | None = Field(None, gt=0, description="default when a call gives none")
        max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = Field(
            "max_tokens", description="o-series and newer models want max_completion_tokens"
        )
        extra_body: dict[str, Any] = Field(
            default_factory=dict, description="server-specific parameters, sent as they are"
        )
        stream: bool = Field(False, description="stream the answer and assemble it")

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self._json_mode: JsonMode = "json_schema"

    @property
    def structured_output(self) -> JsonMode:
        """How ``json_schema`` is sent now: ``json_schema``, ``json_object`` or ``prompt``
        (it steps down when a server rejects a level, and stays there)."""
        return self._json_mode

    def batch(self) -> OpenAIBatch:
        """OpenAI's Batch API with this teacher's model and options (``--batch``)."""
        from hegelion_openai.batch import OpenAIBatch

        return OpenAIBatch(self)

    # ----- calls -------------------------------------------------------------------

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        request = self._request(messages, max_tokens, temperature)
        client = self.client()  # the first call imports the SDK: not on the clock
        start = time.perf_counter()

        async def call() -> tuple[str, str | None, Usage, str | None]:
            mode = self._json_mode
            while True:
                try:
                    return await self._call(
                        client,
                        request
                        if json_schema is None
                        else _with_schema(request, json_schema, mode),
                    )
                except Exception as exc:
                    if json_schema is None or mode == "prompt" or not _rejects_format(exc):
                        raise
                    mode = self._json_mode = _JSON_MODES[_JSON_MODES.index(mode) + 1]

        text, finish, usage, model = await self.guarded(call)
        return Completion(
            text=text,
            model=model or self.options.model,
            usage=usage,
            finish_reason=finish_reason_of(finish),
            latency_s=time.perf_counter() - start,
        )

    def _request(
        self, messages: Sequence[Message], max_tokens: int | None, temperature: float | None
    ) -> dict[str, Any]:
        opts = self.options
        request: dict[str, Any] = {
            "model": opts.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "timeout": opts.timeout,
        }
        tokens = max_tokens if max_tokens is not None else opts.max_tokens
        if tokens is not None:
            request[opts.max_tokens_field] = tokens
        temperature = temperature if temperature is not None else opts.temperature
        if temperature is not None:
            request["temperature"] = temperature
        if opts.extra_body:
            request["extra_body"] = dict(opts.extra_body)
        if opts.stream:
            request["stream"] = True
            request["stream_options"] = {"include_usage": True}
        return request

    async def _call(
        self, client: AsyncOpenAI, request: dict[str, Any]
    ) -> tuple[str, str | None, Usage, str | None]:
        """(text, finish_reason, usage, model) for one HTTP request."""
        if request.get("stream"):
            return await _read_stream(await client.chat.completions.create(**request))
        body = {k: v for k, v in request.items() if k not in ("timeout", "extra_body")}
        body.update(request.get("extra_body") or {})  # as the SDK merges extra_body
        options: dict[str, Any] = {"timeout": request["timeout"], "headers": _JSON_HEADERS}
        if _sdk_knows_security():
            options["security"] = {"bearer_auth": True}  # what chat.completions.create sends
        # Ignored below: `options` is a plain dict of the SDK's request options (its
        # RequestOptions TypedDict differs between SDK versions: `security` is newer), and
        # `content=` exists only in SDKs where _post_takes_content says so.
        if _post_takes_content(client):
            raw = await client.post(  # type: ignore[call-overload]  # see above
                "/chat/completions", content=orjson.dumps(body), cast_to=bytes, options=options
            )
        else:  # older SDKs: a dict body, which the SDK serialises itself
            raw = await client.post(  # type: ignore[call-overload]  # see above
                "/chat/completions", body=body, cast_to=bytes, options=options
            )
        return _parse_completion(raw)


_JSON_HEADERS = {"Content-Type": "application/json"}


_SDK_HAS_SECURITY: bool | None = None
_POST_TAKES_CONTENT: bool | None = None


def _sdk_knows_security() -> bool:
    """Newer SDKs take per-request ``security`` options (which credentials to send).
    Asked on the first call: the SDK is not imported before one."""
    global _SDK_HAS_SECURITY
    if _SDK_HAS_SECURITY is None:
        try:
            from openai._types import RequestOptions
        except ImportError:  # pragma: no cover - every supported SDK has it
            _SDK_HAS_SECURITY = False
        else:
            _SDK_HAS_SECURITY = "security" in getattr(RequestOptions, "__annotations__", {})
    return _SDK_HAS_SECURITY


def _post_takes_content(client: Any) -> bool:
    """Whether this SDK's ``post`` takes raw ``content`` (newer ones do)."""
    global _POST_TAKES_CONTENT
    if _POST_TAKES_CONTENT is None:
        import inspect

        _POST_TAKES_CONTENT = "content" in inspect.signature(client.post).parameters
    return _POST_TAKES_CONTENT


def _malformed(detail: str) -> TeacherError:
    return TeacherError(f"malformed response: {scrub(detail)[:200]!r}", retryable=True)


def _parse_completion(raw: bytes) -> tuple[str, str | None, Usage, str | None]:
    """(text, finish_reason, usage, model) from a chat completion's JSON body."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _malformed(raw[:200].decode("utf-8", "replace")) from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise _malformed(raw[:200].decode("utf-8", "replace"))  # e.g. JSON without choices
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        message = {}
    text = message.get("content")
    finish = choice.get("finish_reason")
    if text is None:
        refusal = message.get("refusal")
        if refusal:
            raise TeacherError(f"the model refused: {scrub(str(refusal))[:300]}", retryable=False)
        raise TeacherError(f"the response has no text (finish_reason={finish})", retryable=True)
    if not isinstance(text, str):
        raise _malformed(f"message content is {type(text).__name__}, not text")
    usage = data.get("usage")
    model = data.get("model")
    return text, finish, _usage_dict(usage), model if isinstance(model, str) else None


def _usage_dict(usage: Any) -> Usage:
    """Token counts from a JSON ``usage`` object; 0 for whatever a server leaves out."""
    if not isinstance(usage, dict):
        return Usage()
    counts = []
    for name in ("prompt_tokens", "completion_tokens"):
        value = usage.get(name)
        counts.append(
            max(value, 0) if isinstance(value, int) and not isinstance(value, bool) else 0
        )
    return Usage(prompt_tokens=counts[0], completion_tokens=counts[1])


async def _read_stream(stream: Any) -> tuple[str, str | None, Usage, str | None]:
    """Assemble a streamed answer; a stream that ends without a finish reason was cut."""
    parts: list[str] = []
    finish: str | None = None
    usage = Usage()
    model: str | None = None
    try:
        async for chunk in stream:
            model = getattr(chunk, "model", None) or model
            if getattr(chunk, "usage", None):
                usage = _usage(chunk.usage)
            for choice in getattr(chunk, "choices", None) or []:
                delta = getattr(choice, "delta", None)
                if delta is not None and delta.content:
                    parts.append(delta.content)
                if choice.finish_reason:
                    finish = choice.finish_reason
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            await close()
    if finish is None:
        raise TeacherError(
            f"truncated stream: it ended after {len(''.join(parts))} characters "
            "without a finish reason",
            retryable=True,
        )
    return "".join(parts), finish, usage, model


def _usage(usage: Any) -> Usage:
    """Token counts from a response's ``usage``; 0 for whatever a server leaves out."""
    if usage is None:
        return Usage()
    return Usage(
        prompt_tokens=max(getattr(usage, "prompt_tokens", 0) or 0, 0),
        completion_tokens=max(getattr(usage, "completion_tokens", 0) or 0, 0),
    )


# ----- structured output ---------------------------------------------------------------


def _schema_instruction(schema: Mapping[str, Any]) -> str:
    return (
        "Answer with a single JSON value that follows this JSON schema, and nothing else "
        f"(no prose, no code fence):\n{json.dumps(schema)}"
    )


def _with_schema(request: dict[str, Any], schema: dict[str, Any], mode: JsonMode) -> dict[str, Any]:
    """``request`` asking for ``schema`` at one of three levels of server support."""
    out = dict(request)
    if mode == "json_schema":
        name = re.sub(r"[^a-zA-Z0-9_-]", "_", str(schema.get("title") or "answer"))[:64]
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": False},
        }
        return out
    if mode == "json_object":  # llama-cpp-python honours "schema" here; others ignore it
        out["response_format"] = {"type": "json_object", "schema": schema}
    messages = list(out["messages"])
    instruction = _schema_instruction(schema)
    if messages and messages[0]["role"] == "system":
        messages[0] = {"role": "system", "content": f"{messages[0]['content']}\n\n{instruction}"}
    else:
        messages.insert(0, {"role": "system", "content": instruction})
    out["messages"] = messages
    return out


def _rejects_format(exc: Exception) -> bool:
    """Did the server refuse the ``response_format`` (as opposed to failing otherwise)?"""
    status = getattr(exc, "status_code", None)
    if status not in (400, 415, 422, 500, 501):
        return False
    text = f"{getattr(exc, 'message', '')} {getattr(exc, 'body', '')}".lower()
    return any(word in text for word in ("response_format", "json_schema", "json_object"))
