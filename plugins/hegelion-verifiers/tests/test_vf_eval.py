"""The real ``vf-eval`` (verifiers 0.4.0's eval CLI, as a subprocess) loads the Hegelion
environment by its id, evaluates SmolLM2 behind llama.cpp's own OpenAI-compatible
server on 127.0.0.1, and prints each rollout's rewards: Hegelion's, by name, in their
documented ranges, and the numbers Hegelion's own reward functions give the same text."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hegelion_core.rewards import calibration_reward, format_reward, markers_reward

pytestmark = pytest.mark.llama_server

VF_EVAL = str(Path(sys.executable).with_name("vf-eval"))
#: Hegelion's rewards move in steps of 0.25 (format, markers); calibration is in [0, 1].
STEPS = {0.0, 0.25, 0.5, 0.75, 1.0}


def _vf_eval(base_url: str, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        VF_EVAL,
        "hegelion-verifiers",
        "-m",
        "smollm2",
        "--client.base-url",
        base_url,
        "--client.api-key-var",
        "OPENAI_API_KEY",
        "--env.agent.runtime.type",
        "subprocess",
        "--sampling.max-tokens",
        "24",
        "--sampling.temperature",
        "0",
        "-c",
        "1",  # llama.cpp's server answers one request at a time
        "--no-push",
        "--no-rich",
        "-o",
        str(out),
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=out.parent)


def _printed_traces(stdout: str) -> list[dict[str, Any]]:
    """The traces ``vf-eval --no-rich`` prints, one indented JSON object after another."""
    decoder, traces, at = json.JSONDecoder(), [], 0
    while (at := stdout.find("{", at)) != -1:
        obj, at = decoder.raw_decode(stdout, at)
        traces.append(obj)
    return traces


def _completion(trace: dict[str, Any]) -> str:
    (reply,) = [n["message"]["content"] for n in trace["nodes"] if n.get("sampled")]
    return str(reply)


def _cut(trace: dict[str, Any]) -> dict[str, Any]:
    """TRL's arguments for a completion cut at its limit, when llama.cpp cut this one."""
    if trace["calls"][-1]["finish_reason"] != "length":
        return {}
    return {"completion_ids": [[0]], "max_completion_length": 1}


def _check(result: subprocess.CompletedProcess[str], key: str, n: int) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr[-3000:]
    traces = _printed_traces(result.stdout)
    assert len(traces) == n, result.stdout[-3000:]
    for trace in traces:
        assert trace["ok"] and trace["agent"]["config"]["harness"]["id"] == "hegelion-verifiers"
        assert trace["agent"]["config"]["model"] == "smollm2"
    assert key not in result.stdout + result.stderr  # the fake key is never shown
    return traces


def test_vf_eval_scores_the_dialectic_with_hegelions_rewards(
    llama_server: str, fake_api_key: Callable[..., str], tmp_path: Path
) -> None:
    key = fake_api_key("OPENAI_API_KEY")
    result = _vf_eval(llama_server, tmp_path / "outputs", "-n", "2")
    traces = _check(result, key, 2)
    for trace in traces:
        rewards = trace["rewards"]
        assert set(rewards) == {"format", "markers"}  # Hegelion's, by their names
        assert rewards["format"]["weight"] == 1.0 and rewards["markers"]["weight"] == 0.5
        assert {rewards["format"]["score"], rewards["markers"]["score"]} <= STEPS
        completions, kwargs = [_completion(trace)], _cut(trace)
        assert rewards["format"]["score"] == format_reward(completions=completions, **kwargs)[0]
        assert rewards["markers"]["score"] == markers_reward(completions=completions)[0]
    # the rubric the run resolved: Hegelion's functions, by dotted path
    (saved,) = (tmp_path / "outputs").glob("*/configs/resolved/eval.json")
    plugged = json.loads(saved.read_text())["env"]["taskset"]["task"]["rewards"]
    assert {name: spec["fn"] for name, spec in plugged.items()} == {
        "format": "hegelion_verifiers.rubric:format_reward",
        "markers": "hegelion_verifiers.rubric:markers_reward",
    }
    assert "reward=" in result.stderr  # and its log line per rollout


def test_vf_eval_scores_calibration_with_the_brier_reward(
    llama_server: str, fake_api_key: Callable[..., str], tmp_path: Path
) -> None:
    key = fake_api_key("OPENAI_API_KEY")
    result = _vf_eval(
        llama_server, tmp_path / "outputs", "-n", "1", "--env.taskset.kind", "calibration"
    )
    (trace,) = _check(result, key, 1)
    (name,) = trace["rewards"]
    score = trace["rewards"]["calibration"]["score"]
    assert name == "calibration" and 0.0 <= score <= 1.0
    data = trace["task"]["data"]
    (expected,) = calibration_reward(
        completions=[_completion(trace)], answer=[data["answer"]], aliases=[data["aliases"]]
    )
    assert score == expected
