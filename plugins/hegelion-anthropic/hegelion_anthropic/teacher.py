"""The ``anthropic`` teacher: Claude through the Messages API and the official SDK.

- **Retries, deadlines, error translation and the transport** are `SDKTeacher`'s
  (hegelion_core.generation.sdk_teacher); a 529 (overloaded) and an error event inside a 200
  stream count as retryable server errors.
- **Temperature** is sent only when asked for, in the request body: recent SDKs (2.x)
  no longer take a ``temperature`` argument, and current models may refuse it.
- **System turns** go to the ``system`` parameter (several are joined); consecutive
  turns of one role are merged, since the API wants user and assistant to alternate.
- **Structured output by tool use.** ``json_schema`` becomes one tool, ``answer``,
  whose ``input_schema`` is the schema, forced with ``tool_choice={"type": "tool",
  "name": "answer"}``; the tool call's input, as JSON, is the completion's text. Tool
  forcing works on every Claude model and on Anthropic-compatible servers, where
  prompting and prefilling only ask. A schema whose top level is not an object is
  wrapped as ``{"value": schema}`` (tool inputs are objects) and unwrapped again.
- **Why it stopped**: ``stop_reason`` in Hegelion's vocabulary: ``max_tokens`` is
  ``length`` (a cut answer), ``end_turn`` and ``stop_sequence`` are ``stop``, and so is
  ``tool_use`` when it ends the forced answer tool's call (that call is the answer).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from hegelion_core import (
    Completion,
    Message,
    SDKTeacher,
    TeacherError,
    Usage,
    error_body,
    finish_reason_of,
    scrub,
)

if TYPE_CHECKING:
    from hegelion_anthropic.batch import AnthropicBatch

#: The newest Sonnet the SDK lists (claude-sonnet-4-5 is deprecated, end of life 2026-11-30).
DEFAULT_MODEL = "claude-sonnet-5-5"
#: The tool that carries structured answers.
ANSWER_TOOL = "answer"
#: Error types an SSE ``error`` event carries (with HTTP status 200), as HTTP statuses.
_ERROR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class AnthropicTeacher(SDKTeacher):
    """Messages through ``anthropic.AsyncAnthropic``."""

    name = "anthropic"
    sdk = "anthropic"
    client_class = "AsyncAnthropic"
    sdk_error = "AnthropicError"

    class Options(SDKTeacher.Options):
        model: str = DEFAULT_MODEL
        base_url: str | None = Field(
            None, description="an Anthropic-compatible server (default: api.anthropic.com)"
        )
        api_key_env: str = Field(
            "ANTHROPIC_API_KEY",
            description="where the key is read (environment, then secrets.toml)",
        )
        temperature: float | None = Field(None, ge=0, le=1)
        max_tokens: int = Field(
            4096, gt=0, description="when a call gives none (the API needs one)"
        )
        extra_body: dict[str, Any] = Field(
            default_factory=dict, description="more request fields, sent as they are"
        )
        stream: bool = Field(False, description="stream the answer and assemble it")

    def batch(self) -> AnthropicBatch:
        """Anthropic's Message Batches with this teacher's model and options (``--batch``)."""
        from hegelion_anthropic.batch import AnthropicBatch

        return AnthropicBatch(self)

    # ----- calls -------------------------------------------------------------------

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        request, wrapped = self._request(messages, max_tokens, temperature, json_schema)
        client = self.client()  # the first call imports the SDK: not on the clock
        start = time.perf_counter()

        async def call() -> Answer:
            if self.options.stream:
                return await _read_stream(await client.messages.create(**request, stream=True))
            return _read_message(await client.messages.create(**request))

        text, tool_input, stop_reason, usage, model = await self.guarded(call)
        finish = finish_reason_of(stop_reason)  # max_tokens -> length, end_turn -> stop
        if json_schema is not None and tool_input is not None:
            value = tool_input.get("value") if wrapped else tool_input
            text = json.dumps(value, ensure_ascii=False)
            if finish == "tool_calls":  # the forced answer tool holds the whole answer
                finish = "stop"
        return Completion(
            text=text,
            model=model or self.options.model,
            usage=usage,
            finish_reason=finish,
            latency_s=time.perf_counter() - start,
        )

    def status_detail(self, exc: Any) -> tuple[int, str]:
        """Anthropic's error body is ``{"type": "error", "error": {"type", "message"}}``;
        an ``event: error`` inside a 200 stream carries its status only as that type."""
        kind, message = error_body(exc.body)
        status = exc.status_code
        if status < 400 and kind:
            status = _ERROR_TYPE_STATUS.get(kind, 500)
        label = f"HTTP {status}" + (f" {kind}" if kind else "")
        return status, f"{label}: {message or exc.message}"

    def _request(
        self,
        messages: Sequence[Message],
        max_tokens: int | None,
        temperature: float | None,
        json_schema: dict[str, Any] | None,
    ) -> tuple[dict[str, Any], bool]:
        opts = self.options
        system, turns = split_messages(messages)
        request: dict[str, Any] = {
            "model": opts.model,
            "messages": turns,
            "max_tokens": max_tokens if max_tokens is not None else opts.max_tokens,
            "timeout": opts.timeout,
        }
        if system:
            request["system"] = system
        extra = dict(opts.extra_body)
        temperature = temperature if temperature is not None else opts.temperature
        if temperature is not None:  # recent SDKs dropped the argument; the field still goes
            extra["temperature"] = temperature
        if extra:
            request["extra_body"] = extra
        wrapped = False
        if json_schema is not None:
            schema, wrapped = tool_schema(json_schema)
            request["tools"] = [
                {
                    "name": ANSWER_TOOL,
                    "description": "Give your answer as structured data that follows the input schema.",
                    "input_schema": schema,
                }
            ]
            request["tool_choice"] = {"type": "tool", "name": ANSWER_TOOL}
        return request, wrapped


def split_messages(messages: Sequence[Message]) -> tuple[str, list[dict[str, str]]]:
    """(system text, alternating turns): system turns joined, same-role runs merged."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns: list[dict[str, str]] = []
    for m in messages:
        if m.role == "system":
            continue
        if turns and turns[-1]["role"] == m.role:
            turns[-1] = {"role": m.role, "content": f"{turns[-1]['content']}\n\n{m.content}"}
        else:
            turns.append({"role": m.role, "content": m.content})
    return system, turns


def tool_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """``schema`` as a tool's ``input_schema`` (an object); True when it had to be wrapped."""
    if schema.get("type") == "object" or ("properties" in schema and "type" not in schema):
        return schema, False
    defs: dict[str, Any] = {k: schema[k] for k in ("$defs", "definitions") if k in schema}
    inner = {k: v for k, v in schema.items() if k not in defs}
    return {"type": "object", "properties": {"value": inner}, "required": ["value"], **defs}, True


Answer = tuple[str, dict[str, Any] | None, str | None, Usage, str | None]


def _read_message(message: Any) -> Answer:
    """(text, tool input, stop reason, usage, model) from a non-streamed message."""
    content = getattr(message, "content", None)
    if not isinstance(content, list):  # a non-JSON body comes back as a str
        raise TeacherError(f"malformed response: {scrub(str(message))[:200]!r}", retryable=True)
    texts, tool_input = [], None
    for block in content:
        kind = getattr(block, "type", None)
        if kind == "text":
            texts.append(block.text)
        elif kind == "tool_use" and getattr(block, "name", None) == ANSWER_TOOL:
            tool_input = dict(block.input or {})
    if not texts and tool_input is None:
        raise TeacherError(
            f"the response has no text (stop_reason={getattr(message, 'stop_reason', None)})",
            retryable=True,
        )
    usage = getattr(message, "usage", None)
    return (
        "".join(texts),
        tool_input,
        getattr(message, "stop_reason", None),
        Usage(
            prompt_tokens=max(getattr(usage, "input_tokens", 0) or 0, 0),
            completion_tokens=max(getattr(usage, "output_tokens", 0) or 0, 0),
        ),
        getattr(message, "model", None),
    )


async def _read_stream(stream: Any) -> Answer:
    """Assemble a streamed message; one that ends without ``message_stop`` was cut."""
    texts: list[str] = []
    tool_json: list[str] = []
    tool_index: int | None = None
    stop_reason: str | None = None
    model: str | None = None
    prompt_tokens = completion_tokens = 0
    finished = False
    try:
        async for event in stream:
            kind = getattr(event, "type", None)
            if kind == "message_start":
                model = event.message.model
                usage = event.message.usage
                prompt_tokens = getattr(usage, "input_tokens", 0) or 0
                completion_tokens = getattr(usage, "output_tokens", 0) or 0
            elif kind == "content_block_start":
                block = event.content_block
                if getattr(block, "type", None) == "tool_use" and block.name == ANSWER_TOOL:
                    tool_index = event.index
            elif kind == "content_block_delta":
                delta = event.delta
                if getattr(delta, "type", None) == "text_delta":
                    texts.append(delta.text)
                elif (
                    getattr(delta, "type", None) == "input_json_delta" and event.index == tool_index
                ):
                    tool_json.append(delta.partial_json)
            elif kind == "message_delta":
                stop_reason = event.delta.stop_reason or stop_reason
                completion_tokens = getattr(event.usage, "output_tokens", 0) or completion_tokens
            elif kind == "message_stop":
                finished = True
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            await close()
    if not finished:
        raise TeacherError(
            f"truncated stream: it ended after {len(''.join(texts))} characters "
            "without message_stop",
            retryable=True,
        )
    tool_input = None
    if tool_index is not None:
        raw = "".join(tool_json) or "{}"
        try:
            tool_input = json.loads(raw)
        except json.JSONDecodeError:
            raise TeacherError("malformed tool input in the stream", retryable=True) from None
    return (
        "".join(texts),
        tool_input,
        stop_reason,
        Usage(prompt_tokens=max(prompt_tokens, 0), completion_tokens=max(completion_tokens, 0)),
        model,
    )
