"""``hegelion generate --batch`` with the kimi teacher: Moonshot's Batch API speaks
OpenAI's protocol, so the run goes through hegelion-openai's adapter with Kimi's own
request body, against the scripted batch service's OpenAI endpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hegelion_core.testing.batch_runs import HoldingBatchServer, run_cli, varied_reply
from hegelion_core.testing.batch_server import BatchScript

pytest.importorskip("hegelion_openai", reason="kimi --batch needs hegelion-kimi[batch]")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[HoldingBatchServer]:
    with HoldingBatchServer(
        state_dir=tmp_path / "state", reply=varied_reply, script=BatchScript(polls=1)
    ) as server:
        yield server


def test_kimi_batch_run_writes_the_records_a_live_run_writes(
    service: HoldingBatchServer, tmp_path: Path, moonshot_key: str
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Is a lake a river?\nIs fog a cloud?\nIs glass a liquid?\n")
    env = {"MOONSHOT_API_KEY": moonshot_key}

    def args(out: Path) -> list[str]:
        return [
            "generate", "--prompt-file", str(prompts), "-o", str(out), "--limit", "2",
            "--teacher", "kimi", "--base-url", service.openai_base_url, "--mode", "phased",
            "--judge", "-t", "json_mode=json_schema",  # the scripted judge fits a schema
        ]  # fmt: skip

    batch_out, live_out = tmp_path / "batch.jsonl", tmp_path / "live.jsonl"
    started = run_cli([*args(batch_out), "--batch"], env)
    assert started.returncode == 0, started.stderr
    done = run_cli(["batch", "collect", str(batch_out), "--wait", "--poll-interval", "0"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert run_cli(args(live_out), env).returncode == 0
    keep = ("prompt_id", "output", "hegelion_trace", "usage", "model")

    def rows(path: Path) -> dict[str, dict[str, object]]:
        lines = path.read_text().splitlines()
        return {r["prompt_id"]: {k: r[k] for k in keep} for r in map(json.loads, lines)}

    assert len(rows(batch_out)) == 2 and rows(batch_out) == rows(live_out)
    assert {s.api for s in service.submissions()} == {"openai"}
    assert moonshot_key not in started.stdout + started.stderr + done.stdout + done.stderr
