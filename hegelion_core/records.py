"""Every record Hegelion reads or writes, as pydantic models, in one place.

Trace records are the hub of the pipeline: generators write them, formatters read
them. Their field names (`instruction`, `input`, `output`, `system`,
`hegelion_trace`) are the ones users' existing files already have.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hegelion_core._version import __version__

DEFAULT_SYSTEM = "You are a dialectical reasoning engine."

# Text the earlier tool stored as if it were data. Seeing one of these means the
# phase never produced anything, so it must count as missing.
_PLACEHOLDER = re.compile(
    r"^\s*\[(generated via cli|[a-z ]*(generation )?failed\b[^\]]*|error\b[^\]]*|"
    r"placeholder|todo|n/?a|none|null|missing|empty)\]?\s*$"
    r"|^\s*(none|null|n/a|todo|tbd)\s*$",  # str(None) and friends, unbracketed
    re.IGNORECASE | re.DOTALL,
)


def is_placeholder(text: str | None) -> bool:
    """True when `text` is empty or a stand-in such as ``[Generated via CLI]``."""
    if text is None or not text.strip():
        return True
    stripped = text.strip()
    if len(stripped) > 400:  # real failure markers are short
        return False
    return bool(_PLACEHOLDER.match(stripped))


def normalize_prompt(text: str) -> str:
    """The form of a prompt that `prompt_id` hashes: NFKC, trimmed, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def prompt_id(instruction: str, input: str = "") -> str:
    """A stable id for a prompt, so reruns and parallel writers agree on identity."""
    key = normalize_prompt(instruction)
    if input and input.strip():
        key += "\n\n" + normalize_prompt(input)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(_Model):
    """One chat turn, as every chat API and trainer takes it."""

    role: Literal["system", "user", "assistant"]
    content: str


class Usage(_Model):
    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class Contradiction(_Model):
    description: str
    evidence: str | None = None


class ResearchProposal(_Model):
    description: str
    testable_prediction: str | None = None


class Critique(_Model):
    """One council member's attack on the thesis."""

    persona: str
    text: str


class JudgeVerdict(_Model):
    """The judge's structured score of a finished dialectic."""

    score: float = Field(ge=0, le=10)
    critique_validity: bool | None = None
    reasoning: str = ""
    strengths: list[str] = Field(default_factory=list)
    improvements: list[str] = Field(default_factory=list)


class DialecticTrace(_Model):
    """Thesis, antithesis and synthesis, plus what the richer modes add."""

    thesis: str
    antithesis: str
    synthesis: str
    answer: str | None = None  # final answer after </thought>; defaults to the synthesis
    contradictions: list[Contradiction] = Field(default_factory=list)
    research_proposals: list[ResearchProposal] = Field(default_factory=list)
    critiques: list[Critique] = Field(default_factory=list)
    judge: JudgeVerdict | None = None
    iterations: int = Field(1, ge=1)

    @field_validator("thesis", "antithesis", "synthesis")
    @classmethod
    def _real_text(cls, value: str) -> str:
        if is_placeholder(value):
            raise ValueError(f"is empty or a placeholder ({value.strip()[:40]!r})")
        return value

    @field_validator("answer")
    @classmethod
    def _no_placeholder_answer(cls, value: str | None) -> str | None:
        return None if is_placeholder(value) else value  # then the synthesis answers

    @property
    def final_answer(self) -> str:
        return self.answer if self.answer and self.answer.strip() else self.synthesis


class Belief(_Model):
    text: str
    confidence: float = Field(ge=0, le=1)


class HiveContext(_Model):
    name: str
    experiences: list[str] = Field(default_factory=list)
    knowledge: list[str] = Field(default_factory=list)
    beliefs: list[Belief] = Field(default_factory=list)


class SimplexContext(_Model):
    """What a Simplex agent knows when it answers: the `<context>` block's content."""

    experiences: list[str] = Field(default_factory=list)
    facts: list[str] = Field(default_factory=list)
    beliefs: list[Belief] = Field(default_factory=list)
    hive: HiveContext | None = None


def render_output(trace: DialecticTrace) -> str:
    """The canonical training output; `hegelion_core.data.parsing.parse_trace` reads it back
    unchanged. Here, beside the schema, so records and parsing do not import each other."""
    return (
        f"<thought>\nTHESIS:\n{trace.thesis.strip()}\n\n"
        f"ANTITHESIS:\n{trace.antithesis.strip()}\n\n"
        f"SYNTHESIS:\n{trace.synthesis.strip()}\n</thought>\n"
        f"{trace.final_answer.strip()}"
    )


class TraceRecord(BaseModel):
    """One prompt and its dialectic: a line of a traces JSONL file.

    Unknown top-level keys are kept (``extra="allow"``): they are the user's data.
    """

    model_config = ConfigDict(extra="allow")

    instruction: str = Field(min_length=1)
    input: str = ""
    output: str
    system: str = DEFAULT_SYSTEM
    hegelion_trace: DialecticTrace

    prompt_id: str
    source: str | None = None
    teacher: str | None = None
    model: str | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    usage: Usage = Field(default_factory=Usage)
    # None on rows converted from the earlier tool, which did not record them.
    created_at: datetime | None = None
    hegelion_version: str | None = None

    # Simplex stages attach what the agent knew and how sure it was.
    context: SimplexContext | None = None
    confidence: float | None = Field(None, ge=0, le=1)
    # The token limit cut a phase and `--on-truncation keep` stored it anyway: not
    # finished text, so formatters skip it (reason "truncated").
    truncated: bool = False

    @field_validator("instruction")
    @classmethod
    def _non_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is blank")
        return value

    @classmethod
    def build(
        cls,
        instruction: str,
        trace: DialecticTrace,
        *,
        input: str = "",
        system: str = DEFAULT_SYSTEM,
        **metadata: Any,
    ) -> TraceRecord:
        """Make a record from a finished dialectic: derives `output` and `prompt_id`."""
        return cls(
            instruction=instruction,
            input=input,
            output=render_output(trace),
            system=system,
            hegelion_trace=trace,
            prompt_id=prompt_id(instruction, input),
            created_at=metadata.pop("created_at", None) or datetime.now(UTC),
            hegelion_version=metadata.pop("hegelion_version", None) or __version__,
            **metadata,
        )

    @property
    def prompt(self) -> str:
        """The user turn: instruction, then input when there is one."""
        if self.input and self.input.strip():
            return f"{self.instruction}\n\n{self.input}"
        return self.instruction


class Prompt(_Model):
    """A prompt waiting for a teacher, as a prompt source yields it."""

    text: str = Field(min_length=1)
    id: str = ""
    source: str | None = None
    system: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    def model_post_init(self, __context: Any) -> None:
        if not self.id:
            self.id = prompt_id(self.text)


# ----- training rows: what formatters emit -------------------------------------------


class SFTRow(_Model):
    instruction: str
    input: str = ""
    output: str
    system: str = DEFAULT_SYSTEM


class ChatRow(_Model):
    messages: list[Message]


class DPORow(_Model):
    """Standard form; conversational rows use lists of messages instead of strings."""

    prompt: str | list[Message]
    chosen: str | list[Message]
    rejected: str | list[Message]


class TextRow(_Model):
    """A whole rendered conversation (the SCU trainer's input)."""

    text: str


# ----- manifests -----------------------------------------------------------------


class FileDigest(_Model):
    path: str
    sha256: str
    bytes: int

    @classmethod
    def of(cls, path: Path) -> FileDigest:
        """SHA-256 of a file's content, read in 4 MiB chunks."""
        h = hashlib.sha256()
        with path.open("rb") as fp:
            while chunk := fp.read(1 << 22):
                h.update(chunk)
        return cls(path=str(path), sha256=h.hexdigest(), bytes=path.stat().st_size)

    @classmethod
    def under(cls, path: Path) -> list[FileDigest]:
        """A file's digest, or those of every file below a directory, in path order."""
        if path.is_file():
            return [cls.of(path)]
        return [cls.of(f) for f in sorted(path.rglob("*")) if f.is_file()] if path.is_dir() else []


class StageManifest(_Model):
    """Written beside every stage's output: where a file came from."""

    stage: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    hegelion_version: str = __version__
    inputs: list[FileDigest] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
