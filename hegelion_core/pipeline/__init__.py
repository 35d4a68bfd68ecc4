"""``hegelion run PIPELINE.yaml``: generate, format, train, export and eval from one file."""

from hegelion_core.pipeline.config import PipelineConfig, StageSpec, load_pipeline
from hegelion_core.pipeline.runner import (
    StageFailed,
    StageRecord,
    plan_pipeline,
    run_pipeline,
    summary,
    workdir_of,
)

__all__ = [
    "PipelineConfig",
    "StageFailed",
    "StageRecord",
    "StageSpec",
    "load_pipeline",
    "plan_pipeline",
    "run_pipeline",
    "summary",
    "workdir_of",
]
