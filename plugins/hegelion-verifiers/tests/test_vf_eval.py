"""The real ``vf-eval`` (verifiers 0.4.0's eval CLI, as a subprocess) loads the Hegelion
environment by its id, evaluates SmolLM2 behind llama.cpp's own OpenAI-compatible
server on 127.0.0.1, and prints each rollout's rewards: Hegelion's, by name, in their
documented ranges, and the numbers Hegelion's own reward functions give the same text.
Against the scripted server: a sound dialectic scores the top of the range, and a
server outage is a failed rollout with no score, never a zero held against the prompt."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hegelion_core.records import DialecticTrace, render_output
from hegelion_core.rewards import calibration_reward, format_reward, markers_reward
from hegelion_core.testing.scripted_server import ScriptedOpenAIServer

VF_EVAL = str(Path(sys.executable).with_name("vf-eval"))
#: SmolLM2 on two shared CPU cores makes about one token a second: short, greedy answers.
LLAMA = ("--sampling.max-tokens", "24", "--sampling.temperature", "0")
#: Hegelion's rewards move in steps of 0.25 (format, markers); calibration is in [0, 1].
STEPS = {0.0, 0.25, 0.5, 0.75, 1.0}


def _vf_eval(
    base_url: str, out: Path, *args: str, model: str = "smollm2"
) -> subprocess.CompletedProcess[str]:
    cmd = [
        VF_EVAL,
        "hegelion-verifiers",
        "-m",
        model,
        "--client.base-url",
        base_url,
        "--client.api-key-var",
        "OPENAI_API_KEY",
        "--env.agent.runtime.type",
        "subprocess",
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


def _nowhere(key: str, result: subprocess.CompletedProcess[str], out: Path) -> None:
    """The fake key is in no output and no file of the run (traces, configs, logs)."""
    assert key not in result.stdout + result.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files and not [p for p in files if key.encode() in p.read_bytes()]


def _check(
    result: subprocess.CompletedProcess[str], key: str, n: int, out: Path
) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr[-3000:]
    traces = _printed_traces(result.stdout)
    assert len(traces) == n, result.stdout[-3000:]
    for trace in traces:
        assert trace["ok"] and trace["agent"]["config"]["harness"]["id"] == "hegelion-verifiers"
        assert trace["agent"]["config"]["model"] == "smollm2"
    _nowhere(key, result, out)
    return traces


@pytest.mark.llama_server
def test_vf_eval_scores_the_dialectic_with_hegelions_rewards(
    llama_server: str, fake_api_key: Callable[..., str], tmp_path: Path
) -> None:
    key = fake_api_key("OPENAI_API_KEY")
    result = _vf_eval(llama_server, tmp_path / "outputs", "-n", "2", *LLAMA)
    traces = _check(result, key, 2, tmp_path / "outputs")
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


@pytest.mark.llama_server
def test_vf_eval_scores_calibration_with_the_brier_reward(
    llama_server: str, fake_api_key: Callable[..., str], tmp_path: Path
) -> None:
    key = fake_api_key("OPENAI_API_KEY")
    result = _vf_eval(
        llama_server, tmp_path / "outputs", "-n", "1", "--env.taskset.kind", "calibration", *LLAMA
    )
    (trace,) = _check(result, key, 1, tmp_path / "outputs")
    (name,) = trace["rewards"]
    score = trace["rewards"]["calibration"]["score"]
    assert name == "calibration" and 0.0 <= score <= 1.0
    data = trace["task"]["data"]
    (expected,) = calibration_reward(
        completions=[_completion(trace)], answer=[data["answer"]], aliases=[data["aliases"]]
    )
    assert score == expected


def _scripted(
    server: ScriptedOpenAIServer, out: Path, key: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    result = _vf_eval(server.base_url, out, "-n", "2", *args, model="scripted")
    assert result.returncode == 0, result.stderr[-3000:]
    _nowhere(key, result, out)
    assert all(r.sent_bearer(key) for r in server.requests)  # the key went to the server
    return result, _printed_traces(result.stdout)


def test_a_sound_dialectic_scores_the_top_of_the_range(
    openai_server: ScriptedOpenAIServer, fake_api_key: Callable[..., str], tmp_path: Path
) -> None:
    key = fake_api_key("OPENAI_API_KEY")
    _, traces = _scripted(openai_server, tmp_path / "outputs", key)
    assert len(traces) == 2
    for trace in traces:
        text = _completion(trace)
        assert trace["ok"] and trace["rewards"]["format"]["score"] == 1.0
        assert trace["rewards"]["format"]["score"] == format_reward(completions=[text])[0]
        assert trace["rewards"]["markers"]["score"] == markers_reward(completions=[text])[0]


def test_a_cut_reply_loses_the_final_answers_credit(
    openai_server: ScriptedOpenAIServer, fake_api_key: Callable[..., str], tmp_path: Path
) -> None:
    """A sound dialectic cut two words before its end (finish_reason "length"): what is
    left still parses whole, but it is scored as TRL's cut completion is, without the
    final answer's credit, never as a finished one."""
    key = fake_api_key("OPENAI_API_KEY")
    sound = render_output(
        DialecticTrace(
            thesis="Promises bind.",
            antithesis="Some should be broken.",
            synthesis="Keep them unless keeping one does more harm.",
            answer="Yes, when keeping it would do greater harm than breaking it.",
        )
    )
    openai_server.enqueue(("reply", sound), ("reply", sound))
    limit = str(len(sound.split()) - 2)
    _, traces = _scripted(openai_server, tmp_path / "outputs", key, "--sampling.max-tokens", limit)
    for trace in traces:
        assert trace["calls"][-1]["finish_reason"] == "length"
        text, score = _completion(trace), trace["rewards"]["format"]["score"]
        assert format_reward(completions=[text])[0] == 1.0  # had it not been cut
        assert score == format_reward(completions=[text], **_cut(trace))[0] == 0.75


def test_a_server_outage_is_a_failed_rollout_not_a_zero(
    openai_server: ScriptedOpenAIServer, fake_api_key: Callable[..., str], tmp_path: Path
) -> None:
    """500 on every call (the SDK's retries included): each rollout fails with the
    provider's error, and no reward is recorded for the prompt."""
    key = fake_api_key("OPENAI_API_KEY")
    openai_server.enqueue(*[("status", 500)] * 12)
    _, traces = _scripted(openai_server, tmp_path / "outputs", key)
    assert len(traces) == 2 and len(openai_server.requests) >= 2
    for trace in traces:
        assert not trace["ok"] and trace["rewards"] == {}
        assert [e["type"] for e in trace["errors"]] == ["ProviderError"]
