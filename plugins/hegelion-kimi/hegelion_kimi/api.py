"""The ``kimi`` teacher: Moonshot's OpenAI-compatible chat API through the openai SDK.

Kimi's thinking models return their reasoning in ``reasoning_content`` beside the
answer in ``content``. A `Completion` has one text field, so the teacher keeps the
answer: the dialectic Hegelion trains on is the model's written thesis,
antithesis and synthesis, not its hidden scratchpad.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from hegelion_core import Completion, Message, SDKTeacher, TeacherError, Usage, finish_reason_of
from hegelion_kimi._common import DEFAULT_BASE_URL, DEFAULT_KEY_ENV, DEFAULT_MODEL, api_key


class KimiTeacher(SDKTeacher):
    """Moonshot's Kimi API (``api.moonshot.ai``), or any server that speaks its protocol.
    The client, the deadline and the error translation are `SDKTeacher`'s."""

    name = "kimi"
    sdk = "openai"
    client_class = "AsyncOpenAI"
    sdk_error = "OpenAIError"

    class Options(SDKTeacher.Options):
        model: str = Field(DEFAULT_MODEL, min_length=1)
        base_url: str = Field(DEFAULT_BASE_URL, min_length=1)
        api_key_env: str = Field(
            DEFAULT_KEY_ENV,
            min_length=1,
            description="where the key is read (environment, then secrets.toml)",
        )
        #: Thinking models take minutes on hard prompts.
        timeout: float = Field(600.0, gt=0, description="seconds for one whole call")
        #: How `json_schema` is sent: Moonshot documents JSON mode (``json_object``);
        #: ``json_schema`` suits servers that enforce schemas; ``off`` ignores it.
        json_mode: Literal["json_object", "json_schema", "off"] = "json_object"

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self.api_key()  # a missing key stops the run here, not at every prompt

    def api_key(self) -> str:
        """Moonshot always wants a key, also behind another ``base_url``."""
        return api_key(self.options.api_key_env, f"the {self.name} teacher")

    def batch(self) -> Any:
        """Moonshot's Batch API (OpenAI's protocol: ``/v1/files``, ``/v1/batches``), through
        hegelion-openai's adapter (``pip install 'hegelion-kimi[batch]'``)."""
        from hegelion_kimi.batch import KimiBatch

        return KimiBatch(self)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        request = self.request(messages, max_tokens, temperature, json_schema)
        client = self.client()  # the first call imports the SDK: not on the clock
        start = time.perf_counter()
        response = await self.guarded(lambda: client.chat.completions.create(**request))
        return _completion(response, self.options.model, time.perf_counter() - start)

    def request(
        self,
        messages: Sequence[Message],
        max_tokens: int | None,
        temperature: float | None,
        json_schema: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The chat completion body for one call (live, or a line of a batch)."""
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
        return request


def _completion(response: Any, model: str, latency: float) -> Completion:
    """A `Completion` from a chat completion, or a retryable error when it is malformed."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise TeacherError("malformed response from the Kimi API: no choices", retryable=True)
    choice = choices[0]
    message = getattr(choice, "message", None)
    text = getattr(message, "content", None)
    raw_finish = getattr(choice, "finish_reason", None)
    finish_reason = finish_reason_of(raw_finish if isinstance(raw_finish, str) else None)
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
            f"malformed response from the Kimi API: empty content (finish_reason={raw_finish!r})",
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
