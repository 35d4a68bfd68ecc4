"""The Hegelion taskset: dialectic prompts, or Simplex calibration items, with a rubric
of Hegelion's own rewards.

``--env.taskset.kind`` picks the task:

* ``dialectic`` (the default): answer a question as a dialectic (``<thought>`` with
  THESIS, ANTITHESIS and SYNTHESIS, then the final answer). Rubric: ``format`` (weight
  1.0) and ``markers`` (0.5).
* ``calibration``: answer a Simplex calibration item and end with ``[confidence: 0.XX]``.
  Rubric: ``calibration`` (1.0), the Brier score against the item's checkable answer.
  Items come from hegelion-simplex's held-out eval stream when it is installed
  (``--env.taskset.n``, ``--env.taskset.seed``), else from the six shipped with this
  package.

``--env.taskset.prompts FILE.jsonl`` replaces the shipped prompts with your own: one
object a line with ``prompt`` (and optionally ``id``, ``system``, and for calibration
``answer`` and ``aliases``). ``--env.taskset.task.rewards`` replaces the rubric, with
verifiers' own syntax (the paths are in `hegelion_verifiers.rubric`).
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import verifiers.v1 as vf
from pydantic import Field, model_validator

from hegelion_core import DEFAULT_SYSTEM, DriverNotFound, InputError, load_driver, read_jsonl
from hegelion_verifiers.rubric import PATHS

Kind = Literal["dialectic", "calibration"]

#: The dialectic's instructions: the format Hegelion's parser reads (`render_output`).
DIALECTIC_SYSTEM = (
    f"{DEFAULT_SYSTEM} Think inside <thought> and </thought> in three labelled sections: "
    "THESIS:, ANTITHESIS: and SYNTHESIS:. In the antithesis, state each CONTRADICTION: "
    "with its EVIDENCE:; in the synthesis, a RESEARCH_PROPOSAL: with its "
    "TESTABLE_PREDICTION:. After </thought>, give your final answer."
)

#: A calibration item's instructions (hegelion-simplex's calibration stage says the same).
CALIBRATION_SYSTEM = (
    "You are a Simplex agent. Start with 'Answer: ...'. When the prompt does not decide the "
    "answer, write 'Answer: unknown (best guess: ...)'. Then give your reason, and end with "
    "[confidence: 0.XX], the probability that your answer is right."
)
#: Each kind's instructions, for prompts that bring none.
SYSTEMS = {"dialectic": DIALECTIC_SYSTEM, "calibration": CALIBRATION_SYSTEM}

#: Each kind's rubric: reward name -> weight.
RUBRICS: dict[str, dict[str, float]] = {
    "dialectic": {"format": 1.0, "markers": 0.5},
    "calibration": {"calibration": 1.0},
}


def rubric(kind: str) -> dict[str, vf.RewardFunctionConfig]:
    """The kind's rewards as verifiers' plugged rewards (name -> fn and weight)."""
    return {
        name: vf.RewardFunctionConfig(fn=PATHS[name], weight=weight)
        for name, weight in RUBRICS[kind].items()
    }


class HegelionData(vf.TaskData):
    """One prompt; a calibration item also has its checkable answer."""

    answer: str | None = None
    aliases: list[str] = Field(default_factory=list)


class HegelionTask(vf.Task[HegelionData]):
    """Scored by the rewards the config plugs (`rubric`); nothing else to run."""


class HegelionConfig(vf.TasksetConfig):
    kind: Kind = "dialectic"
    """Which task: `dialectic` (format and markers) or `calibration` (Brier score)."""
    prompts: Path | None = None
    """A JSONL file of your own prompts (`prompt`, optional `id`, `system`, `answer`,
    `aliases`) instead of the shipped ones."""
    n: int = Field(6, ge=1)
    """Calibration items to draw from hegelion-simplex (when it is installed)."""
    seed: int = 0
    """The seed of the Simplex items."""

    @model_validator(mode="after")
    def _default_rubric(self) -> HegelionConfig:
        # The kind's rubric, unless the config plugs rewards of its own.
        if not self.task.rewards:
            self.task.rewards = rubric(self.kind)
        return self


class HegelionTaskset(vf.Taskset[HegelionTask, HegelionConfig]):
    def load(self) -> Iterator[HegelionTask]:
        rows = self._rows()
        for row in rows:
            yield HegelionTask(HegelionData(**row), self.config.task)

    def _rows(self) -> list[dict[str, Any]]:
        config = self.config
        if config.prompts is not None:
            return list(_read_prompts(config.prompts, config.kind))
        if config.kind == "calibration":
            simplex = _simplex_items(config.n, config.seed)
            if simplex is not None:
                return simplex
        shipped = Path(str(files("hegelion_verifiers") / "data" / f"{config.kind}.jsonl"))
        return list(_read_prompts(shipped, config.kind))


def _read_prompts(path: Path, kind: str) -> Iterator[dict[str, Any]]:
    for line, obj in read_jsonl(path):
        prompt = obj.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(
                path, line, "no prompt", field="prompt", hint='each line needs "prompt": "..."'
            )
        answer = obj.get("answer")
        if kind == "calibration" and not (isinstance(answer, str) and answer.strip()):
            raise InputError(
                path,
                line,
                "a calibration item needs its checkable answer",
                field="answer",
                hint='add "answer": "..." (and "aliases": [...] for other spellings)',
            )
        aliases = obj.get("aliases") or []
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise InputError(
                path, line, "must be a list of strings", field="aliases", hint='"aliases": ["4"]'
            )
        yield {
            "id": str(obj.get("id") or f"{path.stem}-{line}"),
            "prompt": prompt,
            "system_prompt": obj.get("system") or SYSTEMS[kind],
            "answer": answer if kind == "calibration" else None,
            "aliases": aliases,
        }


def _simplex_items(n: int, seed: int) -> list[dict[str, Any]] | None:
    """hegelion-simplex's held-out calibration items (what ``hegelion eval`` checks),
    or None where it is not installed."""
    try:
        source = load_driver("prompt_sources", "simplex-calibration")
    except DriverNotFound:
        return None
    items = source(n=n, seed=seed, stream="eval").iter_prompts()
    return [
        {
            "id": p.source or p.id,
            "prompt": p.text,
            "system_prompt": p.system,
            "answer": p.meta["truth"]["answer"],
            "aliases": list(p.meta["truth"].get("aliases") or []),
        }
        for p in items
    ]
