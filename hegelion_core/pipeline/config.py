"""The pipeline file: ordered stages, each one of Hegelion's commands with its options.

    name: quickstart
    stages:
      generate: {teacher: llama-cpp, prompt_file: prompts.txt, limit: 8, mode: phased}
      format:   {format: sft}
      train:    {trainer: trl, model: "packaged:smollm2-hf", config: {training: {max_steps: 8}}}

A stage's name is its kind (core's generate, curate, format, train, export, eval, or a
plugin's, such as hegelion-simplex's simplex) unless it says ``uses: KIND``, so one file
can hold several stages of a kind (the Simplex chain). Kinds are the entry points of
``hegelion.stage_kinds`` (`hegelion_core.pipeline.stages`).
Its options are the command's own flags, with ``_`` for ``-``; they are checked against
that command's parameters, so a flag that exists on the command line works here too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hegelion_core.errors import InputError, describe_validation
from hegelion_core.plugins import driver_names, missing_message
from hegelion_core.yamlconf import line_of, load_yaml_mapping, set_dotted

#: A stage's name is its directory under the workdir: no separators, no `.` or `..`.
STAGE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class StageSpec(BaseModel):
    """One stage as written: its kind, where its input comes from, and its options."""

    model_config = ConfigDict(extra="allow", frozen=True)

    uses: str | None = None
    # The stage whose output this one reads (default: the nearest earlier stage whose
    # output fits, e.g. format reads generate, train reads format).
    after: str | None = Field(None, alias="from")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    # Relative to the file (load_pipeline resolves it; `-c workdir=` is relative to the
    # working directory). Default: runs/<name> in the working directory.
    workdir: Path | None = None
    stages: dict[str, StageSpec]
    # Not in the file: where it was read from, for relative paths and error messages.
    source: Path = Path("pipeline.yaml")
    lines: dict[str, int] = Field(default_factory=dict)

    def kind(self, stage: str) -> str:
        return self.stages[stage].uses or stage

    @property
    def base_dir(self) -> Path:
        """Relative paths in the file are relative to the file."""
        return self.source.parent

    def error(self, loc: tuple[Any, ...], problem: str, hint: str | None = None) -> InputError:
        return InputError(
            self.source,
            line_of(self.lines, loc),
            problem,
            field=".".join(str(p) for p in loc) or None,
            hint=hint,
        )


def load_pipeline(path: Path, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Read and validate PIPELINE.yaml; ``overrides`` are dotted (``stages.train.model``)."""
    data, lines = load_yaml_mapping(path)
    for dotted, value in (overrides or {}).items():
        set_dotted(data, dotted, value)
    try:
        config = PipelineConfig.model_validate({**data, "source": path, "lines": lines})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError(
            path,
            line_of(lines, first["loc"]),
            describe_validation(exc),
            field=".".join(str(p) for p in first["loc"]),
            hint="see docs/pipeline.md for the file's layout",
        ) from None
    if not config.stages:
        raise config.error(("stages",), "declare at least one stage")
    if config.workdir is not None:
        given_here = "workdir" in (overrides or {})
        base = Path.cwd() if given_here else config.base_dir
        config.workdir = (base / config.workdir.expanduser()).resolve()
    kinds = driver_names("stage_kinds")
    for name, spec in config.stages.items():
        if not STAGE_NAME.fullmatch(name):
            raise config.error(
                ("stages", name),
                f"stage name {name!r} is not a plain name",
                hint="a stage's name is its directory under the workdir: use letters, "
                "digits, `_`, `.` and `-`, starting with a letter, digit or `_`",
            )
        if (kind := config.kind(name)) not in kinds:
            # A first-party kind not installed here: its pip command; else the kinds there are.
            why = missing_message("stage_kinds", kind)
            raise config.error(
                ("stages", name),
                f"unknown kind {kind!r}" + (f": {why}" if why else ""),
                hint=f"a stage is one of {', '.join(kinds)}: name it so, or add `uses: KIND`",
            )
        if spec.after is not None and spec.after not in config.stages:
            raise config.error(("stages", name, "from"), f"`from: {spec.after}` names no stage")
    return config
