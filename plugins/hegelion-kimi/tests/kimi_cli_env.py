"""Install the real Kimi CLI (PyPI ``kimi-cli``) into a venv of its own, for the tests.

kimi-cli needs Python >= 3.12 and pins about twenty packages exactly (pydantic,
typer, rich...), while Hegelion runs on 3.11 and up. Users install it apart too
(``uv tool install kimi-cli``), so the tests do the same: a separate venv, and the
teacher pointed at it. Run by tox's ``commands_pre``, and by the tests' conftest
when the venv is missing::

    python kimi_cli_env.py VENV_DIR      # prints the venv's python

The interpreter is ``$HEGELION_KIMI_PYTHON``, else the first of python3.13,
python3.12, python3.14 on PATH that runs, else a pyenv-installed 3.12+. The version is ``$HEGELION_KIMI_CLI_VERSION``,
default 1.52.0 (the last release; its ``kimi`` script is a deprecation stub, its
``python -m kimi_cli.cli`` the full CLI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

DEFAULT_VERSION = "1.52.0"
_CANDIDATES = ("python3.13", "python3.12", "python3.14")


def _is_new_enough(python: str) -> bool:
    """True when ``python`` runs and is 3.12 or newer (a pyenv shim may do neither)."""
    try:
        probe = subprocess.run(
            [python, "-c", "import sys; print(sys.version_info >= (3, 12))"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except OSError:
        return False
    return probe.returncode == 0 and probe.stdout.strip() == "True"


def find_python() -> str:
    explicit = os.environ.get("HEGELION_KIMI_PYTHON")
    if explicit:
        if not _is_new_enough(explicit):
            raise SystemExit(f"HEGELION_KIMI_PYTHON={explicit} is not a Python >= 3.12")
        return explicit
    candidates = [found for name in _CANDIDATES if (found := shutil.which(name))]
    # pyenv installs that are not the selected version: their shims refuse to run.
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates += [
        str(p)
        for p in sorted((pyenv_root / "versions").glob("3.1[2-9]*/bin/python3"), reverse=True)
    ]
    for candidate in candidates:
        if _is_new_enough(candidate):
            return candidate
    raise SystemExit(
        "kimi-cli needs Python >= 3.12 and none was found (tried "
        f"{', '.join(_CANDIDATES)} on PATH and pyenv versions); set HEGELION_KIMI_PYTHON"
    )


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def installed_version(venv: Path) -> str | None:
    python = venv_python(venv)
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('kimi-cli'))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def ensure(venv: Path, version: str | None = None) -> Path:
    """The venv's python, with ``kimi-cli==version`` installed (a no-op when it is)."""
    version = version or os.environ.get("HEGELION_KIMI_CLI_VERSION") or DEFAULT_VERSION
    if installed_version(venv) == version:
        return venv_python(venv)
    if not venv_python(venv).exists():
        subprocess.run([find_python(), "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [
            str(venv_python(venv)),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"kimi-cli=={version}",
        ],
        check=True,
        timeout=1200,
    )
    if installed_version(venv) != version:
        raise SystemExit(f"kimi-cli=={version} did not install into {venv}")
    return venv_python(venv)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(ensure(Path(sys.argv[1]).resolve()))
