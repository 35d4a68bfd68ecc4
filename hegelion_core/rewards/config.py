"""Which rewards a GRPO run scores with, and how much each one counts.

In the training config::

    grpo:
      rewards:
        format: 1.0                      # a bare number is the weight
        judge: {weight: 0.5, teacher: llama-cpp, options: {base_url: http://127.0.0.1:8080/v1}}

Each reward's range and meaning: docs/rl.md.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RewardSpec(BaseModel):
    """One reward by name (``format``, ``markers``, ``judge``, ``calibration``,
    ``belief_revision``) and its weight; the judge also names its teacher, and may set
    how hard it may push that teacher (the generator's limits and retries)."""

    model_config = ConfigDict(extra="forbid")

    weight: float = 1.0
    teacher: str | None = None  # judge: any installed teacher (llama-cpp, openai, anthropic...)
    model: str | None = None  # judge: the teacher's model
    options: dict[str, Any] = Field(default_factory=dict)  # judge: teacher options
    # judge: the generator's limits and retries (`hegelion generate`'s flags of these names)
    concurrency: int = Field(8, ge=1)  # verdicts in flight at once
    rpm: float | None = Field(None, gt=0)  # requests per minute
    tpm: float | None = Field(None, gt=0)  # tokens per minute
    max_retries: int = Field(3, ge=0)  # per verdict, on retryable failures
    timeout: float = Field(120.0, gt=0)  # seconds for one call
    max_retry_wait: float = Field(60.0, ge=0)  # a longer Retry-After fails the verdict
    neutral: float = Field(0.5, ge=0, le=1)  # a failed verdict, when its group has none

    @model_validator(mode="before")
    @classmethod
    def _bare_weight(cls, value: Any) -> Any:
        return {"weight": value} if isinstance(value, (int, float)) else value

    @classmethod
    def judge_settings(cls) -> tuple[str, ...]:
        """The fields only the judge reads, besides teacher, model and options."""
        return ("concurrency", "rpm", "tpm", "max_retries", "timeout", "max_retry_wait", "neutral")
