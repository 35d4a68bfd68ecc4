"""examples/prime-rl up to the network boundary: the configs parse and their environment
sections pass verifiers' own loader (prime-rl's own schema too, where prime-rl-configs is
installed: it needs Python 3.12 and is not on PyPI); every ``prime`` command the plan and
the docs show is a real command of ``prime`` 0.18.0 with real options (its ``--help``
exits 0 and lists them); and the plan prints its commands without running any."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hegelion_verifiers.taskset import RUBRICS, HegelionConfig
from verifiers.v1.utils.loaders import resolve_env_config

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "prime-rl"
DOC = ROOT / "docs" / "prime-intellect.md"
PRIME = Path(sys.executable).with_name("prime")


def _toml(name: str) -> dict[str, Any]:
    return tomllib.loads((EXAMPLE / name).read_text())


def _plan(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["bash", str(EXAMPLE / "plan.sh"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=True,
    )
    return result.stdout


def _commands(text: str) -> list[str]:
    """The ``prime ...`` command lines of a plan or of the docs' code blocks."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line.startswith("prime ")]


def test_the_example_sources_pass_verifiers_own_env_loader() -> None:
    sources = _toml("rl.toml")["orchestrator"]["train"]["source"]
    assert [s["name"] for s in sources] == ["dialectic", "calibration"]
    for source in sources:
        env = resolve_env_config(source["env"])  # what prime-rl validates `env` with
        assert isinstance(env.taskset, HegelionConfig)
        assert env.taskset.id == "hegelion-verifiers"
        weights = {name: spec.weight for name, spec in env.taskset.task.rewards.items()}
        assert weights == RUBRICS[env.taskset.kind]
        assert env.agent.runtime.type == "subprocess"


def test_the_multi_node_overlay_matches_the_plan() -> None:
    deployment = _toml("multi-node.toml")["deployment"]
    assert deployment["type"] == "multi_node"
    nodes = deployment["num_train_nodes"] + deployment["num_infer_nodes"]
    assert f"--nodes {nodes} " in _plan()
    assert "[inference]" in (EXAMPLE / "rl.toml").read_text()  # multi-node needs it


def test_prime_rls_own_schema_accepts_the_configs() -> None:
    configs = pytest.importorskip(
        "prime_rl.configs.rl", reason="prime-rl-configs: Python 3.12 only, not on PyPI"
    )
    from prime_rl.utils.config import cli

    single = cli(configs.RLConfig, args=["@", str(EXAMPLE / "rl.toml")])
    assert single.deployment.type == "single_node"
    multi = cli(
        configs.RLConfig,
        args=["@", str(EXAMPLE / "rl.toml"), "@", str(EXAMPLE / "multi-node.toml")],
    )
    assert multi.deployment.type == "multi_node" and multi.slurm is not None
    assert {s.env.taskset.kind for s in multi.orchestrator.train.source} == set(RUBRICS)


@pytest.mark.parametrize("mode", [(), ("--single-node",)], ids=["slurm", "pod"])
def test_the_plan_prints_and_runs_nothing(mode: tuple[str, ...], tmp_path: Path) -> None:
    """Stand-ins for prime, uv, git, ssh and sbatch record any call: none is made."""
    calls = tmp_path / "calls"
    for tool in ("prime", "uv", "git", "ssh", "sbatch"):
        stub = tmp_path / tool
        stub.write_text(f"#!/bin/sh\necho {tool} >> {calls}\n")
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "CLUSTER_ID": "c-42"}
    printed = _plan(*mode, env=env)
    assert not calls.exists()
    assert "prime login" in printed
    configs = re.findall(r"uv run rl (@ \S+(?: @ \S+)*)", printed)
    assert configs, printed
    for config in configs[0].split("@")[1:]:
        assert (EXAMPLE / Path(config.strip()).name).is_file()
    if not mode:
        assert "prime factory slurm resize c-42 --nodes 3 --wait --yes" in printed


def _documented() -> list[str]:
    commands = _commands(_plan()) + _commands(_plan("--single-node"))
    commands += _commands(DOC.read_text())
    return sorted(set(commands))


@pytest.mark.parametrize("command", _documented())
def test_each_prime_command_is_real(command: str) -> None:
    """``prime <sub> <sub> --help`` exits 0 and names each option the command uses."""
    words = shlex.split(command)[1:]
    path: list[str] = []
    for word in words:
        if word.startswith("-") or not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        path.append(word)
    result = subprocess.run(
        [str(PRIME), "--plain", *path, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"prime {' '.join(path)}" in " ".join(result.stdout.split())
    for option in (w.split("=", 1)[0] for w in words if w.startswith("--")):
        assert option in result.stdout, f"{command}: {option} is not an option of it"


def test_prime_env_push_takes_the_package_for_a_v1_environment() -> None:
    """``prime env push`` reads the verifiers pin to tell the API the package targets."""
    from prime_cli.utils.environment_runtime import VERIFIERS_V1, classify_runtime_from_metadata

    pyproject = tomllib.loads(
        (ROOT / "plugins" / "hegelion-verifiers" / "pyproject.toml").read_text()
    )
    assert "verifiers==0.4.0" in pyproject["project"]["dependencies"]
    assert classify_runtime_from_metadata(pyproject["project"]["dependencies"]) == VERIFIERS_V1


def test_the_docs_show_the_plan() -> None:
    doc = DOC.read_text()
    assert "bash examples/prime-rl/plan.sh" in doc
    assert "## What was run here, and what was not" in doc and "Not run:" in doc
