"""Hegelion core: the public API for plugins and the code that drives Hegelion.

A plugin imports what it needs from here, and only from here::

    from hegelion_core import Completion, DriverOptions, Teacher, TeacherError

Every name below is loaded on first use (module ``__getattr__``), so ``import
hegelion_core`` stays cheap: `hegelion plugins` lists drivers without importing pydantic,
and the pytest contract suites (`TeacherContract`...) load pytest only when asked for.
The modules behind the names are grouped by role (docs/architecture.md has the map);
their paths may move, these names do not.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hegelion_core._version import __version__

if TYPE_CHECKING:
    from hegelion_core.contracts import (
        BatchJob,
        BatchLimits,
        BatchRequest,
        BatchResult,
        BatchState,
        BatchTeacher,
        Completion,
        Driver,
        DriverOptions,
        Exporter,
        ExportResult,
        FinishReason,
        Formatter,
        ModelScheme,
        PromptSource,
        Role,
        SkipRecord,
        SplitDefaults,
        StageKind,
        Teacher,
        TeacherError,
        Trainer,
        TrainResult,
        blame_of,
        finish_reason_of,
    )
    from hegelion_core.data.formatters.simplex import (
        ANIMA_THRESHOLD,
        DIVINE_THRESHOLD,
        HIVE_THRESHOLD,
        SIMPLEX_SYSTEM,
        render_context,
        with_confidence,
    )
    from hegelion_core.data.jsonl import (
        OUTPUT_MARK,
        atomic_output,
        listed_beside,
        listed_in_manifest,
        read_jsonl,
    )
    from hegelion_core.data.parsing import parse_trace
    from hegelion_core.errors import (
        DriverLoadError,
        DriverNotFound,
        HegelionError,
        InputError,
        OptionsError,
    )
    from hegelion_core.evaluation.items import CONFIDENCE_CEILING, CONFIDENCE_FLOOR, EVIDENCE_RANGES
    from hegelion_core.evaluation.scoring import render_answer
    from hegelion_core.generation.limits import retryable_status
    from hegelion_core.generation.sdk_teacher import SDKTeacher, error_body
    from hegelion_core.hooks import admit, command_run
    from hegelion_core.hookspecs import hookimpl
    from hegelion_core.pipeline.stages import (
        Artifact,
        Invocation,
        Planning,
        StagePlan,
        dataset_counts,
    )
    from hegelion_core.plugins import load_driver
    from hegelion_core.records import (
        DEFAULT_SYSTEM,
        Belief,
        ChatRow,
        Contradiction,
        Critique,
        DialecticTrace,
        DPORow,
        FileDigest,
        HiveContext,
        JudgeVerdict,
        Message,
        Prompt,
        ResearchProposal,
        SFTRow,
        SimplexContext,
        StageManifest,
        TextRow,
        TraceRecord,
        Usage,
        is_placeholder,
        prompt_id,
        render_output,
    )
    from hegelion_core.rewards.build import build_rewards
    from hegelion_core.secrets import get_secret, remember, require_secret, scrub

    # the contract suites and sample data for a plugin's tests (not in __all__: they need pytest)
    from hegelion_core.testing import DriverContract as DriverContract
    from hegelion_core.testing import ExporterContract as ExporterContract
    from hegelion_core.testing import FormatterContract as FormatterContract
    from hegelion_core.testing import PromptSourceContract as PromptSourceContract
    from hegelion_core.testing import SDKTeacherContract as SDKTeacherContract
    from hegelion_core.testing import TeacherContract as TeacherContract
    from hegelion_core.testing import TrainerContract as TrainerContract
    from hegelion_core.testing import sample_records as sample_records
    from hegelion_core.training.config import (
        Method,
        TrainConfig,
        load_train_config,
        pickled_adapter_message,
        require_peft_adapter,
    )
    from hegelion_core.training.data import check_data, data_files, detect_format, grpo_prompts
    from hegelion_core.training.grpo import grpo_arguments, grpo_rewards, grpo_rows, reward_stats
    from hegelion_core.training.metrics import MetricsLog
    from hegelion_core.training.scu import SCUConfig, SCUController, SCUState
    from hegelion_core.training.tracking import (
        apply_tracker_environment,
        finish_tracker_runs,
        forward_train_metrics,
        require_trackers,
        tracker_run_name,
    )

#: name -> the module that defines it
_HOMES: dict[str, str] = {
    # the roles: the base classes a driver subclasses, and what they return
    **dict.fromkeys(
        [
            "Completion",
            "Driver",
            "DriverOptions",
            "ExportResult",
            "Exporter",
            "FinishReason",
            "Formatter",
            "ModelScheme",
            "PromptSource",
            "Role",
            "SkipRecord",
            "SplitDefaults",
            "StageKind",
            "Teacher",
            "TeacherError",
            "TrainResult",
            "Trainer",
            "blame_of",
            "finish_reason_of",
            # batch APIs (`hegelion generate --batch`): a teacher's batch() returns one
            "BatchJob",
            "BatchLimits",
            "BatchRequest",
            "BatchResult",
            "BatchState",
            "BatchTeacher",
        ],
        "hegelion_core.contracts",
    ),
    # the schemas every role reads and writes
    **dict.fromkeys(
        [
            "Belief",
            "ChatRow",
            "Contradiction",
            "Critique",
            "DEFAULT_SYSTEM",
            "DPORow",
            "DialecticTrace",
            "FileDigest",
            "HiveContext",
            "JudgeVerdict",
            "Message",
            "Prompt",
            "ResearchProposal",
            "SFTRow",
            "SimplexContext",
            "StageManifest",
            "TextRow",
            "TraceRecord",
            "Usage",
            "is_placeholder",
            "prompt_id",
            "render_output",
        ],
        "hegelion_core.records",
    ),
    # the errors users see (file:line: field: problem, and the fix)
    **dict.fromkeys(
        ["DriverLoadError", "DriverNotFound", "HegelionError", "InputError", "OptionsError"],
        "hegelion_core.errors",
    ),
    # hook plugins (pluggy), and firing the hooks from a plugin's own command
    **dict.fromkeys(["hookimpl"], "hegelion_core.hookspecs"),
    **dict.fromkeys(["admit", "command_run"], "hegelion_core.hooks"),
    # loading another driver by role and name
    **dict.fromkeys(["load_driver"], "hegelion_core.plugins"),
    # API keys: from the environment or secrets.toml, scrubbed from what is shown
    **dict.fromkeys(["get_secret", "remember", "require_secret", "scrub"], "hegelion_core.secrets"),
    # files: JSONL reads with file:line errors, atomic outputs Hegelion may replace
    **dict.fromkeys(
        ["OUTPUT_MARK", "atomic_output", "listed_beside", "listed_in_manifest", "read_jsonl"],
        "hegelion_core.data.jsonl",
    ),
    **dict.fromkeys(["parse_trace"], "hegelion_core.data.parsing"),
    # teachers on an HTTP API
    **dict.fromkeys(["retryable_status"], "hegelion_core.generation.limits"),
    **dict.fromkeys(["SDKTeacher", "error_body"], "hegelion_core.generation.sdk_teacher"),
    # trainers: the one training config, the data checks, metrics and SCU
    **dict.fromkeys(
        [
            "Method",
            "TrainConfig",
            "load_train_config",
            "pickled_adapter_message",
            "require_peft_adapter",
        ],
        "hegelion_core.training.config",
    ),
    **dict.fromkeys(
        ["check_data", "data_files", "detect_format", "grpo_prompts"], "hegelion_core.training.data"
    ),
    **dict.fromkeys(["build_rewards"], "hegelion_core.rewards.build"),  # GRPO's reward functions
    **dict.fromkeys(  # GRPO as every TRL-based trainer runs it
        ["grpo_arguments", "grpo_rewards", "grpo_rows", "reward_stats"],
        "hegelion_core.training.grpo",
    ),
    **dict.fromkeys(["MetricsLog"], "hegelion_core.training.metrics"),
    **dict.fromkeys(["SCUConfig", "SCUController", "SCUState"], "hegelion_core.training.scu"),
    **dict.fromkeys(  # the trackers of tracking.report_to
        [
            "apply_tracker_environment",
            "finish_tracker_runs",
            "forward_train_metrics",
            "require_trackers",
            "tracker_run_name",
        ],
        "hegelion_core.training.tracking",
    ),
    # `hegelion run` stage kinds and model schemes: what a kind plans with
    **dict.fromkeys(
        ["Artifact", "Invocation", "Planning", "StagePlan", "dataset_counts"],
        "hegelion_core.pipeline.stages",
    ),
    # the Simplex formats core ships (its formatter and eval suites), for hegelion-simplex
    **dict.fromkeys(
        [
            "ANIMA_THRESHOLD",
            "DIVINE_THRESHOLD",
            "HIVE_THRESHOLD",
            "SIMPLEX_SYSTEM",
            "render_context",
            "with_confidence",
        ],
        "hegelion_core.data.formatters.simplex",
    ),
    **dict.fromkeys(
        ["CONFIDENCE_CEILING", "CONFIDENCE_FLOOR", "EVIDENCE_RANGES"],
        "hegelion_core.evaluation.items",
    ),
    **dict.fromkeys(["render_answer"], "hegelion_core.evaluation.scoring"),
}
#: the test kit's names, resolvable here too, kept out of `__all__` so that
#: ``from hegelion_core import *`` never imports pytest
_TESTING: dict[str, str] = {
    **dict.fromkeys(
        [
            "DriverContract",
            "ExporterContract",
            "FormatterContract",
            "PromptSourceContract",
            "SDKTeacherContract",
            "TeacherContract",
            "TrainerContract",
            "sample_records",
        ],
        "hegelion_core.testing",
    ),
}

__all__ = [
    "__version__",
    "ANIMA_THRESHOLD",
    "Artifact",
    "BatchJob",
    "BatchLimits",
    "BatchRequest",
    "BatchResult",
    "BatchState",
    "BatchTeacher",
    "Belief",
    "CONFIDENCE_CEILING",
    "CONFIDENCE_FLOOR",
    "ChatRow",
    "Completion",
    "Contradiction",
    "Critique",
    "DEFAULT_SYSTEM",
    "DIVINE_THRESHOLD",
    "DPORow",
    "DialecticTrace",
    "Driver",
    "DriverLoadError",
    "DriverNotFound",
    "DriverOptions",
    "EVIDENCE_RANGES",
    "ExportResult",
    "Exporter",
    "FileDigest",
    "FinishReason",
    "Formatter",
    "HIVE_THRESHOLD",
    "HegelionError",
    "HiveContext",
    "InputError",
    "Invocation",
    "JudgeVerdict",
    "Message",
    "Method",
    "MetricsLog",
    "ModelScheme",
    "OUTPUT_MARK",
    "OptionsError",
    "Planning",
    "Prompt",
    "PromptSource",
    "ResearchProposal",
    "Role",
    "SCUConfig",
    "SCUController",
    "SCUState",
    "SDKTeacher",
    "SFTRow",
    "SIMPLEX_SYSTEM",
    "SimplexContext",
    "SkipRecord",
    "SplitDefaults",
    "StageKind",
    "StageManifest",
    "StagePlan",
    "Teacher",
    "TeacherError",
    "TextRow",
    "TraceRecord",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "Usage",
    "admit",
    "apply_tracker_environment",
    "atomic_output",
    "blame_of",
    "build_rewards",
    "check_data",
    "command_run",
    "data_files",
    "dataset_counts",
    "detect_format",
    "error_body",
    "finish_reason_of",
    "finish_tracker_runs",
    "forward_train_metrics",
    "get_secret",
    "grpo_arguments",
    "grpo_prompts",
    "grpo_rewards",
    "grpo_rows",
    "hookimpl",
    "is_placeholder",
    "listed_beside",
    "listed_in_manifest",
    "load_driver",
    "load_train_config",
    "parse_trace",
    "pickled_adapter_message",
    "prompt_id",
    "read_jsonl",
    "remember",
    "render_answer",
    "render_context",
    "render_output",
    "require_peft_adapter",
    "require_secret",
    "require_trackers",
    "retryable_status",
    "reward_stats",
    "scrub",
    "tracker_run_name",
    "with_confidence",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module the first time the name is asked for."""
    home = _HOMES.get(name) or _TESTING.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES, *_TESTING})
