"""The roles a plugin can fill, as abstract base classes.

Five roles are backends (teachers, prompt sources, formatters, trainers, exporters);
two open `hegelion run` to plugins: stage kinds and model-reference schemes.

Each driver declares a nested pydantic ``Options`` model (a `DriverOptions`, with
``extra="forbid"``), so a misspelled option fails loudly instead of being ignored. A driver is constructed
from options only; everything else it needs arrives as method arguments.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hegelion_core.errors import OptionsError
from hegelion_core.records import Message, Prompt, TraceRecord, Usage

if TYPE_CHECKING:
    from hegelion_core.pipeline.stages import Artifact, Planning, StagePlan
    from hegelion_core.training.config import TrainConfig

Role = Literal[
    "teachers",
    "prompt_sources",
    "formatters",
    "trainers",
    "exporters",
    "stage_kinds",
    "model_schemes",
]
ROLES: tuple[Role, ...] = (
    "teachers",
    "prompt_sources",
    "formatters",
    "trainers",
    "exporters",
    "stage_kinds",
    "model_schemes",
)


class DriverOptions(BaseModel):
    """Base of every driver's nested ``Options`` model: unknown keys are errors.

    Its own name, so ``class Options(DriverOptions)`` inside a driver shadows nothing."""

    model_config = ConfigDict(extra="forbid")


#: Deprecated: the former name of `DriverOptions`, kept for third-party plugins that
#: import it (``class Options(Options)``). Use `DriverOptions`.
Options = DriverOptions


class Driver(ABC):
    """Base of every role. ``name`` is the entry-point name users type."""

    name: ClassVar[str]
    role: ClassVar[Role]

    class Options(DriverOptions):
        pass

    def __init__(
        self, options: DriverOptions | Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        self.options = self.parse_options(options, **kwargs)

    @classmethod
    def parse_options(
        cls, options: BaseModel | Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        """Validate options into ``cls.Options``, naming the driver in any error."""
        if isinstance(options, cls.Options) and not kwargs:
            return options
        data = dict(options.model_dump() if isinstance(options, BaseModel) else options or {})
        data.update(kwargs)
        try:
            return cls.Options(**data)
        except ValidationError as exc:
            raise OptionsError.from_validation(f"{cls.role[:-1]} {cls.name!r}", exc) from None


# ----- teachers ----------------------------------------------------------------------


#: Why a completion ended, one vocabulary for every teacher: ``stop`` (the model ended
#: it, or a stop sequence did), ``length`` (the token limit cut it), ``content_filter``,
#: ``tool_calls``, ``error``. None: the backend did not say.
FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "error"]

_FINISH_ALIASES: dict[str, FinishReason] = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "eos": "stop",
    "eos_token": "stop",
    "pause_turn": "stop",
    "length": "length",
    "max_tokens": "length",
    "model_length": "length",
    "max_output_tokens": "length",
    "model_context_window_exceeded": "length",
    "content_filter": "content_filter",
    "refusal": "content_filter",
    "safety": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "error": "error",
}


def finish_reason_of(raw: str | None) -> FinishReason | None:
    """A backend's own finish reason (OpenAI's ``finish_reason``, Anthropic's
    ``stop_reason``, llama.cpp's) in Hegelion's vocabulary; None when it gave none.
    An unknown value counts as ``stop`` only if it is not about a limit."""
    if not raw:
        return None
    key = str(raw).strip().lower()
    if key in _FINISH_ALIASES:
        return _FINISH_ALIASES[key]
    return "length" if ("length" in key or "max" in key or "limit" in key) else "stop"


class Completion(BaseModel):
    """What a teacher returns for one call."""

    text: str
    model: str | None = None
    usage: Usage = Field(default_factory=Usage)
    #: In Hegelion's vocabulary (`finish_reason_of` translates a backend's own).
    finish_reason: FinishReason | None = None
    latency_s: float = 0.0

    @field_validator("finish_reason", mode="before")
    @classmethod
    def _vocabulary(cls, value: object) -> object:
        return finish_reason_of(value) if isinstance(value, str) else value

    @property
    def truncated(self) -> bool:
        """The token limit cut this answer: it is not finished text."""
        return self.finish_reason == "length"


#: Whose fault a failed call is: the prompt's own content (``prompt``), the service
#: (down, overloaded, unreachable, misrouted: ``service``) or the credentials (``auth``).
#: Only ``prompt`` failures count against a prompt's attempts.
Blame = Literal["prompt", "service", "auth"]


def blame_of(status: int | None, retryable: bool) -> Blame:
    """The default `Blame` of a failure: 401/403/407 are ``auth``; what a retry may cure
    (429, 5xx, timeouts, dropped connections) and 404 (no such model or route) are the
    ``service``'s; anything else (a 400 on this prompt, a refusal) is the ``prompt``'s."""
    if status in (401, 403, 407):
        return "auth"
    if retryable or status == 404:
        return "service"
    return "prompt"


class TeacherError(Exception):
    """A teacher call failed. Teachers translate their SDK's errors into this.

    ``retryable``: worth another try (429, 5xx, timeouts, dropped connections,
    malformed or truncated responses); the generator retries with backoff.
    ``retry_after``: seconds the server asked us to wait (``Retry-After``), if any.
    ``blame``: whose fault it is (`Blame`); by default `blame_of` the status and
    ``retryable``. A failure that is not the prompt's never counts against it, and
    runs of them stop a generation run early.
    The message must never contain a credential.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        status: int | None = None,
        blame: Blame | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.blame: Blame = blame or blame_of(status, retryable)


class Teacher(Driver):
    """Talks to one model. The dialectic itself lives in core and runs on any Teacher.

    Leave retries to the caller (disable your SDK's own): the generator owns
    backoff, rate limits and timeouts, and needs to see each failure as a
    `TeacherError`.
    """

    role: ClassVar[Role] = "teachers"

    @abstractmethod
    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        """One chat completion. ``json_schema`` asks for constrained JSON where the
        backend supports it; a backend that cannot constrain may ignore it."""

    async def aclose(self) -> None:
        """Release connections or processes. Called once when a run ends."""


# ----- batch teachers ----------------------------------------------------------------
#
# A teacher whose provider has a batch API (half price, answers within a day) offers it
# through a method ``batch(self) -> BatchTeacher``; `hegelion generate --batch` replays
# the same dialectic on the answers (hegelion_core.generation.batch), so the teacher's
# `BatchTeacher` only moves provider-neutral requests and results.

#: A provider job's state: still running (``in_progress``, ``cancelling``) or ended
#: (``ended``: results are ready; ``failed``: the job as a whole was refused, e.g. an
#: invalid input file; ``expired`` and ``cancelled`` may still hold some results).
BatchState = Literal["in_progress", "cancelling", "ended", "failed", "expired", "cancelled"]
#: States after which the job changes no more.
BATCH_FINAL: frozenset[str] = frozenset({"ended", "failed", "expired", "cancelled"})


class BatchRequest(BaseModel):
    """One teacher call, as the dialectic asked for it (`Teacher.complete`'s arguments)."""

    custom_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    messages: list[Message]
    max_tokens: int | None = None
    temperature: float | None = None
    json_schema: dict[str, Any] | None = None


class BatchResult(BaseModel):
    """What a batch job says about one request: a `Completion`, or why there is none.

    ``status`` is ``succeeded``, ``errored`` (``error``, ``retryable``, ``blame`` and,
    where the provider gave one, the HTTP ``http_status``), ``expired`` (the job's
    window closed first) or ``cancelled``. Expired and cancelled requests are never the
    prompt's fault."""

    custom_id: str
    status: Literal["succeeded", "errored", "expired", "cancelled"]
    completion: Completion | None = None
    error: str | None = None
    http_status: int | None = None
    retryable: bool = True
    blame: Blame = "service"


class BatchJob(BaseModel):
    """A provider's batch job as `BatchTeacher.poll` sees it."""

    id: str
    state: BatchState
    provider_status: str  # the provider's own word (validating, finalizing, ended...)
    total: int = 0
    succeeded: int = 0
    failed: int = 0  # errored, expired or cancelled
    created_at: float | None = None  # Unix time

    @property
    def final(self) -> bool:
        return self.state in BATCH_FINAL


class BatchLimits(BaseModel):
    """How big one provider job may be; `hegelion generate --batch` splits below both."""

    max_requests: int = Field(gt=0)
    max_bytes: int = Field(gt=0)


class BatchTeacher(ABC):
    """A provider's batch API for one `Teacher` (its model, key and options).

    ``submit`` names the job with ``tag`` where the provider keeps metadata, so that
    `find` can recover a job whose id was lost to a crash between submitting and
    recording it; where it keeps none, `find` may match on what it can see (count,
    time) and the caller checks the results' ``custom_id`` values. Failures are
    `TeacherError` (with `Blame`), never an SDK's own exception."""

    limits: BatchLimits

    def __init__(self, teacher: Teacher) -> None:
        self.teacher = teacher

    @abstractmethod
    def request_bytes(self, request: BatchRequest) -> int:
        """The size this request adds to a job (its input line), for splitting."""

    @abstractmethod
    async def submit(self, requests: Sequence[BatchRequest], *, tag: str) -> str:
        """Create one job holding ``requests``; returns its id."""

    @abstractmethod
    async def find(self, tag: str, *, count: int, since: float, known: set[str]) -> str | None:
        """The id of a job submitted with ``tag`` (``count`` requests, created after Unix
        time ``since``, not one of ``known``), or None when there is none."""

    @abstractmethod
    async def poll(self, job_id: str) -> BatchJob: ...

    @abstractmethod
    async def results(self, job_id: str, requests: Mapping[str, BatchRequest]) -> list[BatchResult]:
        """Every result the ended job holds (``requests`` by ``custom_id``: what was
        asked, to read each answer back as the live teacher would)."""

    @abstractmethod
    async def cancel(self, job_id: str) -> None: ...

    async def aclose(self) -> None:
        await self.teacher.aclose()


# ----- prompt sources ----------------------------------------------------------------


class PromptSource(Driver):
    """Yields prompts lazily, so a million-row dataset never sits in memory."""

    role: ClassVar[Role] = "prompt_sources"

    @abstractmethod
    def iter_prompts(self) -> Iterator[Prompt]:
        """Prompts in a deterministic order for the given options."""


# ----- formatters --------------------------------------------------------------------


class SplitDefaults(BaseModel):
    """How a formatter's rows are split when it writes a directory."""

    valid_ratio: float = 0.1
    test_ratio: float = 0.0
    min_rows: int = 1


class Formatter(Driver):
    """Turns one trace record into zero or more training rows.

    A record the format cannot use raises `SkipRecord` with a short reason; the
    caller counts reasons instead of failing the whole file.
    """

    role: ClassVar[Role] = "formatters"
    #: Default train/valid/test layout: None writes one file, a SplitSpec a directory.
    default_split: ClassVar[SplitDefaults | None] = None

    @abstractmethod
    def format(self, record: TraceRecord) -> Iterable[dict[str, Any]]:
        """Rows as plain JSON-serialisable dicts."""

    def describe(self) -> str:
        """One line for the dataset card: how rows were made."""
        return f"{self.name} rows"


class SkipRecord(Exception):
    """A formatter cannot use this record; ``reason`` is a short, countable slug."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ----- trainers and exporters --------------------------------------------------------


class TrainResult(BaseModel):
    adapter_dir: Path | None = None
    merged_dir: Path | None = None
    metrics: dict[str, float] = Field(default_factory=dict)  # final figures (loss, tokens/s...)
    versions: dict[str, str] = Field(default_factory=dict)  # the libraries that trained it


class Trainer(Driver):
    """Fine-tunes a model on a formatted dataset directory or file.

    ``config`` is a `hegelion_core.training.config.TrainConfig`. Write the adapter (PEFT
    layout) under ``output_dir/adapter``, merged weights under ``output_dir/merged``
    when ``config.merge``, checkpoints under ``output_dir/checkpoints`` for
    ``config.resume``, and log metrics with `hegelion_core.training.metrics.MetricsLog`.
    """

    role: ClassVar[Role] = "trainers"
    #: Formats this trainer can read (formatter names), checked before training.
    accepts: ClassVar[tuple[str, ...]] = ()
    #: Training methods (``hegelion train --method``) it implements, checked before anything
    #: loads: a trainer without GRPO refuses ``--method grpo`` and names those that have it.
    methods: ClassVar[tuple[str, ...]] = ("sft", "dpo")

    @abstractmethod
    def train(self, data: Path, output_dir: Path, config: TrainConfig) -> TrainResult: ...


class ExportResult(BaseModel):
    out_dir: Path | None = None
    files: list[Path] = Field(default_factory=list)  # what the export wrote, under out_dir
    report: dict[str, Any] = Field(default_factory=dict)  # checks and figures (report.json)
    notes: list[str] = Field(default_factory=list)  # lines for the user (next command...)
    versions: dict[str, str] = Field(default_factory=dict)  # the libraries that wrote it


class Exporter(Driver):
    """Turns a trained model directory (plus, optionally, a PEFT adapter) into a
    deployable artifact in ``dest``.

    Exporter-specific settings are fields of the driver's ``Options`` model; `hegelion
    export NAME` turns each field into a command-line flag (``-o KEY=VALUE`` works too).
    Write ``dest`` atomically: build beside it and rename, so a failed export leaves
    an existing ``dest`` untouched and nothing half-written.
    """

    role: ClassVar[Role] = "exporters"

    @abstractmethod
    def export(
        self,
        model_dir: Path,
        dest: Path,
        *,
        adapter_dir: Path | None = None,
        name: str | None = None,
    ) -> ExportResult: ...


# ----- the pipeline: stage kinds and model-reference schemes --------------------------


class StageKind(Driver):
    """One kind of `hegelion run` stage (``generate``, ``train``, a plugin's own...).

    A stage is one of Hegelion's commands (core's, or one a plugin adds through
    ``hegelion_register_commands``) run in its own process. The kind says which command
    and with which argv (`plan`), what the stage hands on to later ones, and which figures
    its outputs report. Stage kinds take no options: a stage's options are its command's
    flags, checked against the command by `Planning.argv`. Core's kinds
    (`hegelion_core.pipeline.kinds`) are registered the same way as a plugin's.
    """

    role: ClassVar[Role] = "stage_kinds"
    #: What this kind's stages hand on, by the name a later stage asks for, each with the
    #: artifact key holding its path: ``{"traces": "traces"}`` (trace records),
    #: ``{"dataset": "data"}`` (a formatted dataset), ``{"eval_items": ...}``,
    #: ``{"adapter": "adapter"}`` (with ``base``), ``{"model": ...}``.
    provides: ClassVar[dict[str, str]] = {}
    #: Exit statuses of its command that leave a usable output.
    ok_exit: ClassVar[tuple[int, ...]] = (0,)
    #: True: a stage whose options or inputs changed keeps its output and adds to it
    #: (generate) instead of starting afresh with the old output moved aside.
    tops_up: ClassVar[bool] = False
    #: True: the plan's commands are independent of each other (eval: one per model), so
    #: the pipeline may run them at once, each on its own share of the CPU cores.
    side_by_side: ClassVar[bool] = False

    @abstractmethod
    def plan(self, ctx: Planning, options: dict[str, Any]) -> StagePlan:
        """The stage's commands and artifact; ``options`` as written in the file (a copy
        the kind may pop from). Raise ``ctx.error(...)`` for a bad option."""

    def figures(self, plan: StagePlan) -> dict[str, Any]:
        """The few numbers worth a line in the summary, read from the stage's outputs."""
        return {}

    def check(self, plan: StagePlan, figures: dict[str, Any]) -> None:
        """Raise `hegelion_core.pipeline.StageFailed` when the command succeeded but the
        stage made nothing usable (a generate stage with no records)."""

    def failure(self, status: int) -> str:
        """Why the command failed, from its exit status: ``failed``, unless it says more."""
        return "failed"

    def resume(self, plan: StagePlan) -> None:
        """The stage continues in place what its directory holds (an interrupted or
        ``--stage`` run): adjust ``plan`` if the command needs telling (``--resume``)."""

    def expected(self, plan: StagePlan) -> Artifact:
        """What a dry run takes the stage to hand on before it ran (an export's GGUF)."""
        return dict(plan.artifact)

    def finished(self, plan: StagePlan) -> Artifact:
        """What the stage made, read back from its own outputs once it ran."""
        return dict(plan.artifact)


class ModelScheme(Driver):
    """A model reference ``SCHEME:NAME`` in a pipeline file (``stage:export``,
    ``packaged:smollm2``), resolved to the artifact the stage uses (``{"model": PATH}``,
    or a train stage's ``adapter`` and ``base``). Anything without a registered scheme
    is a path or a hub id."""

    role: ClassVar[Role] = "model_schemes"

    @abstractmethod
    def resolve(self, ctx: Planning, key: str, name: str) -> Artifact:
        """``name`` is the text after ``SCHEME:``; ``key`` is the option that holds the
        reference, for ``ctx.error(key, ...)``. In a dry run (``ctx.dry_run``), name what
        would be used without making it (no download, no conversion)."""


BASES: dict[Role, type[Driver]] = {
    "teachers": Teacher,
    "prompt_sources": PromptSource,
    "formatters": Formatter,
    "trainers": Trainer,
    "exporters": Exporter,
    "stage_kinds": StageKind,
    "model_schemes": ModelScheme,
}
