"""The ``transformers`` teacher: a local Hugging Face model (and a PEFT adapter) as a Teacher.

It is how `hegelion eval` runs a model directory, before and after training: the same
contract as every other teacher, so the suites never care which backend answered.
The tokenizer's chat template formats the messages; temperature 0 is greedy decoding.
Generation runs in a worker thread, one call at a time per loaded model (torch
already uses every core for one call), so the event loop stays free; a cancelled
call stops at the next token.

torch, transformers and peft are imported when the model loads, not before, so
``hegelion plugins`` stays light.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, ConfigDict, Field

from hegelion_core import (
    Completion,
    DriverOptions,
    FinishReason,
    Message,
    Teacher,
    TeacherError,
    Usage,
)


class TransformersTeacher(Teacher):
    """A causal LM from a local directory (or a hub id), optionally with a LoRA adapter."""

    name = "transformers"

    class Options(DriverOptions):
        model_config = ConfigDict(extra="forbid", protected_namespaces=())

        #: A model directory (`save_pretrained` layout) or a hub id. ``model`` works too.
        model_path: str = Field(validation_alias=AliasChoices("model_path", "model"))
        #: A PEFT adapter directory (``adapter_config.json``), e.g. ``hegelion train``'s OUT/adapter.
        adapter: Path | None = None
        max_new_tokens: int = Field(256, ge=1)
        #: 0 = greedy (deterministic); above 0 samples with this temperature.
        temperature: float = Field(0.0, ge=0)
        top_p: float = Field(1.0, gt=0, le=1)
        #: "auto": cuda, then mps, then cpu.
        device: str = "auto"
        dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
        #: Seed for sampling (temperature > 0); None: not reseeded.
        seed: int | None = None
        trust_remote_code: bool = False

    options: Options

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: str | None = None
        self._lock = threading.Lock()  # one generation (and one load) at a time

    # ----- the contract ---------------------------------------------------------------

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,  # no constrained decoding here: ignored
    ) -> Completion:
        cancel = threading.Event()
        try:
            return await asyncio.to_thread(
                self._complete,
                list(messages),
                max_tokens or self.options.max_new_tokens,
                self.options.temperature if temperature is None else temperature,
                cancel,
            )
        except asyncio.CancelledError:
            cancel.set()  # the worker stops at its next token
            raise

    async def aclose(self) -> None:
        """Drop the model; a later call loads it again."""
        with self._lock:
            self._model = self._tokenizer = None

    # ----- worker thread ----------------------------------------------------------------

    def _complete(
        self, messages: list[Message], max_new: int, temperature: float, cancel: threading.Event
    ) -> Completion:
        start = time.perf_counter()
        with self._lock:
            model, tokenizer = self._load()
            import torch
            from transformers import StoppingCriteria, StoppingCriteriaList

            class _Cancelled(StoppingCriteria):
                def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                    return cancel.is_set()

            prompt = self._render(tokenizer, messages)
            inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(
                self._device
            )
            n_prompt = int(inputs["input_ids"].shape[1])
            gen: dict[str, Any] = {
                "max_new_tokens": max_new,
                "do_sample": temperature > 0,
                "stopping_criteria": StoppingCriteriaList([_Cancelled()]),
            }
            if temperature > 0:
                gen.update(temperature=temperature, top_p=self.options.top_p)
                if self.options.seed is not None:
                    torch.manual_seed(self.options.seed)
            else:  # greedy: silence sampling defaults a model's generation_config may carry
                gen.update(temperature=None, top_p=None, top_k=None)
            if tokenizer.pad_token_id is not None:
                gen["pad_token_id"] = tokenizer.pad_token_id
            try:
                with torch.inference_mode():
                    out = model.generate(**inputs, **gen)
            except torch.OutOfMemoryError as exc:
                raise TeacherError(
                    f"{self.options.model_path}: out of memory while generating "
                    f"({exc}); lower max_new_tokens or use a smaller model",
                    retryable=False,
                ) from None
            except (RuntimeError, ValueError) as exc:
                raise TeacherError(
                    f"{self.options.model_path}: generation failed: {type(exc).__name__}: {exc}",
                    retryable=False,
                ) from exc
        new = out[0, n_prompt:]
        text = tokenizer.decode(new, skip_special_tokens=True)
        return Completion(
            text=text.strip(),
            model=self._label(),
            usage=Usage(prompt_tokens=n_prompt, completion_tokens=len(new)),
            finish_reason=finish_reason(new.tolist(), max_new, _eos_ids(model, tokenizer)),
            latency_s=time.perf_counter() - start,
        )

    def _render(self, tokenizer: Any, messages: list[Message]) -> str:
        if not getattr(tokenizer, "chat_template", None):
            raise TeacherError(
                f"{self.options.model_path}: the tokenizer has no chat template, so chat messages "
                "cannot be formatted; use an instruct/chat model or add a chat_template to its "
                "tokenizer_config.json",
                retryable=False,
            )
        rows = [{"role": m.role, "content": m.content} for m in messages]
        return tokenizer.apply_chat_template(rows, tokenize=False, add_generation_prompt=True)

    def _label(self) -> str:
        base = Path(self.options.model_path).name or self.options.model_path
        return f"{base}+{self.options.adapter.name}" if self.options.adapter else base

    def _load(self) -> tuple[Any, Any]:
        if self._model is not None:
            return self._model, self._tokenizer
        opts = self.options
        local = Path(opts.model_path).expanduser()
        if (local.is_absolute() or opts.model_path.startswith(".")) and not local.exists():
            raise TeacherError(f"model_path: {local} does not exist", retryable=False)
        if opts.adapter is not None and not (opts.adapter / "adapter_config.json").is_file():
            raise TeacherError(
                f"adapter: {opts.adapter} is not a PEFT adapter directory (no "
                "adapter_config.json); pass hegelion train's OUTPUT/adapter",
                retryable=False,
            )
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = _pick_device(opts.device)
        dtype = {
            "auto": torch.float32 if device == "cpu" else "auto",
            "float32": torch.float32,
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
        }[opts.dtype]
        source = str(local) if local.exists() else opts.model_path
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                source, trust_remote_code=opts.trust_remote_code
            )
            model = AutoModelForCausalLM.from_pretrained(
                source, dtype=dtype, trust_remote_code=opts.trust_remote_code
            )
        except (OSError, ValueError) as exc:
            raise TeacherError(
                f"model_path: cannot load {source}: {exc}", retryable=False
            ) from None
        if opts.adapter is not None:
            from peft import PeftModel

            try:
                model = PeftModel.from_pretrained(model, str(opts.adapter))
            except (OSError, ValueError, RuntimeError) as exc:
                raise TeacherError(
                    f"adapter: cannot apply {opts.adapter} to {source}: {exc}", retryable=False
                ) from None
        model.to(device)
        model.eval()
        self._model, self._tokenizer, self._device = model, tokenizer, device
        return model, tokenizer


def _pick_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def finish_reason(
    new_tokens: Sequence[int], max_new_tokens: int, eos_ids: set[int]
) -> FinishReason:
    """``length`` when generation stopped at ``max_new_tokens`` without an end-of-sequence
    token (the answer was cut), else ``stop``: it ended on one, or a stop string of the
    model's generation config ended it first."""
    if new_tokens and new_tokens[-1] in eos_ids:
        return "stop"
    return "length" if len(new_tokens) >= max_new_tokens else "stop"


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = getattr(model.generation_config, "eos_token_id", None)
    out = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        out.add(tokenizer.eos_token_id)
    return out
