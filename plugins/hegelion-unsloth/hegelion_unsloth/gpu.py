"""The GPU boundary: check for CUDA before ``import unsloth``, and translate its refusal.

``import unsloth`` without an accelerator raises ``NotImplementedError: Unsloth cannot
find any torch accelerator?`` from deep inside its package, after seconds of patching.
Checking ``torch.cuda`` first gives the user one clear sentence with the alternatives
instead, and catching the NotImplementedError covers the cases the check cannot see.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from types import ModuleType

from hegelion_core import HegelionError

ALTERNATIVES = (
    "Train on this machine with `--trainer trl` (hegelion-trl: CPU or any GPU; give it an "
    "environment of its own with torch's CPU build, since TRL 1.15 cannot train on CPU where "
    "Unsloth's triton is installed), or on a Mac with `--trainer mlx`; `--trainer unsloth` "
    "runs where an NVIDIA GPU is (pip install hegelion-unsloth there)."
)


class NoGPUError(HegelionError):
    """Unsloth cannot run here: no usable NVIDIA GPU."""


@dataclass(frozen=True)
class GPUInfo:
    """The facts about device 0 that the run needs or reports."""

    name: str
    capability: tuple[int, int]
    bf16: bool
    total_memory_gb: float
    torch_version: str
    cuda_version: str


def no_gpu_message(reason: str) -> str:
    return f"the unsloth trainer needs an NVIDIA GPU with CUDA, and {reason}. {ALTERNATIVES}"


def require_cuda() -> GPUInfo:
    """Device 0's facts, or `NoGPUError` naming the alternatives. Imports torch, never unsloth."""
    try:
        import torch
    except ImportError:
        raise NoGPUError(no_gpu_message("torch is not installed here")) from None
    cuda = torch.version.cuda
    hip = getattr(torch.version, "hip", None)
    if cuda is None and hip is None:
        raise NoGPUError(no_gpu_message(f"torch {torch.__version__} here is a CPU-only build"))
    if not torch.cuda.is_available():
        raise NoGPUError(
            no_gpu_message(
                f"none is visible here (torch {torch.__version__} built for CUDA {cuda or hip}: "
                "torch.cuda.is_available() is False; no NVIDIA driver, or CUDA_VISIBLE_DEVICES hides it)"
            )
        )
    props = torch.cuda.get_device_properties(0)
    return GPUInfo(
        name=props.name,
        capability=(props.major, props.minor),
        bf16=bool(torch.cuda.is_bf16_supported()),
        total_memory_gb=round(props.total_memory / 2**30, 2),
        torch_version=torch.__version__,
        cuda_version=str(cuda or hip),
    )


def import_unsloth() -> ModuleType:
    """``import unsloth``, its refusal of this machine turned into `NoGPUError`.

    Call it before anything imports trl, transformers or peft: Unsloth patches them
    when it is imported, and warns (and runs slower) when it comes second.
    """
    try:
        import unsloth
    except NotImplementedError as exc:  # "Unsloth cannot find any torch accelerator? ..."
        raise NoGPUError(no_gpu_message(f"Unsloth refused this machine ({exc})")) from None
    except ImportError as exc:
        raise HegelionError(
            f"unsloth does not import ({type(exc).__name__}: {exc}); reinstall it with "
            "`pip install hegelion-unsloth` on the NVIDIA machine"
        ) from None
    return unsloth


#: The distributions whose versions decide how a run trains, recorded in the manifest.
VERSIONED = (
    "hegelion-unsloth",
    "unsloth",
    "unsloth_zoo",
    "trl",
    "peft",
    "transformers",
    "accelerate",
    "bitsandbytes",
    "torch",
    "datasets",
)


def library_versions(gpu: GPUInfo | None = None) -> dict[str, str]:
    """Installed versions (from metadata, importing nothing), plus the GPU and CUDA."""
    out = {}
    for dist in VERSIONED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    if gpu is not None:
        out.update(
            gpu=gpu.name,
            cuda=gpu.cuda_version,
            compute_capability=".".join(map(str, gpu.capability)),
        )
    return out
