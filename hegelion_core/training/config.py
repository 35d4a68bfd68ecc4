"""One training config for every trainer, and the adapter checks of ``init_adapter``.

The schema reads the Simplex ``training_config.yaml`` layout as it is::

    model: Qwen/Qwen3-8B
    lora: {r: 16, lora_alpha: 32, lora_dropout: 0.05, target_modules: [q_proj, v_proj]}
    training: {num_train_epochs: 3, learning_rate: 2.0e-4, per_device_train_batch_size: 4,
               gradient_accumulation_steps: 4, lr_scheduler_type: cosine, warmup_ratio: 0.03,
               optim: adamw_torch, max_seq_length: 2048, bf16: true, gradient_checkpointing: true}

Hegelion keeps one (r, alpha) pair and translates it per backend (mlx's ``scale``
is alpha / r). A wrong key or type is an error that names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hegelion_core.errors import HegelionError, InputError, describe_validation
from hegelion_core.rewards.config import RewardSpec
from hegelion_core.training.scu import SCUConfig
from hegelion_core.yamlconf import line_of, load_yaml_mapping, set_dotted

Method = Literal["sft", "dpo", "grpo"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraConfig(_Strict):
    r: int = Field(16, ge=1)
    lora_alpha: float = Field(32, gt=0)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )

    @property
    def scale(self) -> float:
        """mlx-lm's ``scale``: the factor on the LoRA update, alpha / r."""
        return self.lora_alpha / self.r

    def to_mlx(self, num_layers: int = -1) -> dict[str, Any]:
        """mlx-lm's ``lora_parameters`` (it takes ``scale``, not ``alpha``)."""
        return {
            "rank": self.r,
            "scale": self.scale,
            "dropout": self.lora_dropout,
            **(
                {
                    "keys": [
                        f"self_attn.{m}"
                        if m in ("q_proj", "k_proj", "v_proj", "o_proj")
                        else f"mlp.{m}"
                        for m in self.target_modules
                    ]
                }
                if isinstance(self.target_modules, list)
                else {}
            ),
        }

    def to_peft(self) -> dict[str, Any]:
        return {
            "r": self.r,
            "lora_alpha": self.lora_alpha,
            "lora_dropout": self.lora_dropout,
            "target_modules": self.target_modules,
            "task_type": "CAUSAL_LM",
            "bias": "none",
        }


class TrainingArgs(_Strict):
    num_train_epochs: float = Field(1, gt=0)
    max_steps: int = -1  # overrides epochs when > 0
    learning_rate: float = Field(2e-4, gt=0)
    per_device_train_batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    optim: str = "adamw_torch"
    max_seq_length: int = Field(2048, ge=8)
    bf16: bool = False
    gradient_checkpointing: bool = False
    seed: int = 42
    logging_steps: int = Field(1, ge=1)
    save_steps: int = Field(50, ge=1)  # checkpoints for --resume
    save_total_limit: int = Field(2, ge=1)
    packing: bool = False
    completion_only_loss: bool = True  # train on the assistant turn only
    beta: float = Field(0.1, gt=0)  # DPO


class GRPOArgs(_Strict):
    """The ``grpo:`` section (``method: grpo``); names follow TRL's ``GRPOConfig``."""

    num_generations: int = Field(4, ge=2)  # completions per prompt, compared with each other
    max_completion_length: int = Field(256, ge=1)
    temperature: float = Field(1.0, gt=0)
    beta: float = Field(0.0, ge=0)  # KL weight against the reference; 0 needs no reference model
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = "dapo"
    rewards: dict[str, RewardSpec] = Field(
        default_factory=lambda: {"format": RewardSpec(weight=1.0)}
    )


class TrackingConfig(_Strict):
    """Where training metrics go besides ``metrics.jsonl``: the trackers users already run."""

    report_to: list[Literal["tensorboard", "wandb", "mlflow", "trackio"]] = Field(
        default_factory=list
    )
    run_name: str | None = None
    project: str | None = None  # wandb/trackio project, mlflow experiment

    @field_validator("report_to", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        """``-c tracking.report_to=tensorboard,wandb`` (or ``none``) as TRL's own
        ``--report_to`` reads it."""
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip() and p.strip() != "none"]
        return value


class TrainConfig(_Strict):
    """Everything a trainer needs besides the data path and the output directory."""

    model: str | None = None
    method: Method = "sft"
    lora: LoraConfig = Field(default_factory=LoraConfig)
    training: TrainingArgs = Field(default_factory=TrainingArgs)
    scu: SCUConfig | None = None  # None: plain LoRA; set: SCU-regularised
    grpo: GRPOArgs = Field(default_factory=GRPOArgs)  # read when method is grpo
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    quantization: Literal["none", "4bit", "8bit"] = "none"  # QLoRA where the backend can
    merge: bool = False  # also write merged weights (adapter folded into the base)
    # Continue training this PEFT adapter instead of a fresh LoRA: how the Simplex stages
    # chain (each starts from the previous stage's adapter, not from the base).
    init_adapter: Path | None = None
    resume: bool = False  # continue from the newest checkpoint in the output directory
    num_processes: int = Field(1, ge=1)  # >1: a multi-process launch where the trainer supports it


def require_peft_adapter(adapter_dir: Path) -> Path:
    """``init_adapter`` must be a PEFT adapter directory; one message for every trainer."""
    if not (Path(adapter_dir) / "adapter_config.json").is_file():
        raise HegelionError(
            f"init_adapter: {adapter_dir} is not a PEFT adapter (no adapter_config.json); give "
            "the `adapter` directory that an earlier `hegelion train` wrote"
        )
    pickled = Path(adapter_dir) / "adapter_model.bin"
    if pickled.is_file() and not (Path(adapter_dir) / "adapter_model.safetensors").is_file():
        raise HegelionError(f"init_adapter: {pickled_adapter_message(pickled)}")
    return Path(adapter_dir)


def pickled_adapter_message(pickled: Path) -> str:
    """Why an ``adapter_model.bin`` is refused (loading a pickle can run code), and the fix."""
    return (
        f"{pickled} is a pickled PyTorch file; Hegelion loads only safetensors adapters "
        "(adapter_model.safetensors). Save the adapter again with "
        "save_pretrained(DIR, safe_serialization=True), or convert it: python -c "
        f"\"import torch; from safetensors.torch import save_file; save_file(torch.load('{pickled}', "
        f"weights_only=True), '{pickled.with_suffix('.safetensors')}')\""
    )


def load_train_config(path: Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read YAML, apply dotted CLI overrides (``training.learning_rate``), validate.

    Errors name the file and the line of the offending key where YAML knows it.
    """
    data: dict[str, Any] = {}
    lines: dict[str, int] = {}
    if path is not None:
        data, lines = load_yaml_mapping(path)
    for dotted, value in (overrides or {}).items():
        set_dotted(data, dotted, value)
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        where = path or "--config"
        raise InputError(
            where,
            line_of(lines, first["loc"]),
            describe_validation(exc),
            field=key,
            hint="see docs/training.md for every key",
        ) from None
