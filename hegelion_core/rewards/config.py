"""Which rewards a GRPO run scores with, and how much each one counts.

In the training config::

    grpo:
      rewards:
        format: 1.0                      # a bare number is the weight
        judge: {weight: 0.5, teacher: llama-cpp, options: {base_url: http://127.0.0.1:8080/v1}}
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RewardSpec(BaseModel):
    """One reward by name (``format``, ``markers``, ``judge``, ``calibration``,
    ``belief_revision``) and its weight; the judge also names its teacher."""

    model_config = ConfigDict(extra="forbid")

    weight: float = 1.0
    teacher: str | None = None  # judge: any installed teacher (llama-cpp, openai, anthropic...)
    model: str | None = None  # judge: the teacher's model
    options: dict[str, Any] = Field(default_factory=dict)  # judge: teacher options

    @model_validator(mode="before")
    @classmethod
    def _bare_weight(cls, value: Any) -> Any:
        return {"weight": value} if isinstance(value, (int, float)) else value
