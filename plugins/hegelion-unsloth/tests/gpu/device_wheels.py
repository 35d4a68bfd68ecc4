"""Fetch, here, the wheels that run_gpu_checks.py needs on a GPU machine with no network.

The GPU machine's image has Python 3.12 with torch (CUDA), transformers, peft,
accelerate and triton, but no unsloth, trl, bitsandbytes or datasets, and it cannot
reach PyPI. This downloads those wheels for CPython 3.12 into a folder to carry,
under the carry limit (64 MiB with the working tree): bitsandbytes ships one library
per CUDA, ROCm and XPU version (43 MB), so the copy made here keeps only CUDA 13's.

    python plugins/hegelion-unsloth/tests/gpu/device_wheels.py .whl     # then carry .whl

On the GPU machine:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-build-isolation --target /tmp/site \
        .whl/*.whl ./ ./plugins/hegelion-unsloth
    PYTHONPATH=/tmp/site python3 plugins/hegelion-unsloth/tests/gpu/run_gpu_checks.py --out $OUT/gpu
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

#: Exactly what the GPU image lacks, at the versions verified with Unsloth 2026.10.7.
WHEELS = (
    "unsloth==2026.10.7",
    "unsloth_zoo==2026.10.7",
    "trl==1.15.0",
    "bitsandbytes==0.50.2",
    "datasets==4.8.5",
    "torchao==0.18.0",
    "cut_cross_entropy==25.1.1",
    "tyro==1.0.17",
    "docstring-parser==0.18.0",
    "typeguard==4.6.0",
    "msgspec==0.22.0",
    "hf_transfer==0.1.9",
    "diffusers==0.42.1",
    "dill==0.4.1",
    "multiprocess==0.70.19",
    "structlog==26.1.0",
    "nest-asyncio==1.6.0",
    "lazy-importer==0.1.0",
    # hegelion-core's own needs that the image lacks
    "pydantic==2.14.3",
    "pydantic-core==2.50.4",
    "annotated-types==0.8.0",
    "typing-inspection==0.4.5",
    "jsonlines==4.0.0",
    "orjson==3.13.0",
    "stevedore==5.10.0",
)
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
#: The image's torch is built for CUDA 13.0; the CPU library is bitsandbytes' fallback.
KEEP = {"libbitsandbytes_cuda130.so", "libbitsandbytes_cpu.so"}


def slim_bitsandbytes(wheel: Path) -> None:
    """Rewrite the wheel without the libraries for other CUDA versions, ROCm and XPU
    (pip does not check RECORD hashes when installing)."""
    slim = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            name = item.filename.rsplit("/", 1)[-1]
            if name.startswith("libbitsandbytes_") and name not in KEEP:
                continue
            dst.writestr(item, src.read(item))
    slim.replace(wheel)


def main(dest: Path) -> int:
    dest.mkdir(parents=True, exist_ok=True)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            *platforms,
            "-d",
            str(dest),
            *WHEELS,
        ],
        check=True,
    )
    for wheel in dest.glob("bitsandbytes-*.whl"):
        slim_bitsandbytes(wheel)
    total = sum(p.stat().st_size for p in dest.glob("*.whl"))
    print(f"{len(list(dest.glob('*.whl')))} wheels, {total / 2**20:.1f} MiB in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".whl")))
