"""One filter for everything Hegelion writes or prints (`hegelion_core.secrets`): credential
names matched exactly, known key values masked wherever they appear (nested options,
JSON values, URL passwords), and `hegelion run` stages that get their secrets through
the environment, never their command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hegelion_core import hooks, secrets
from hegelion_core.pipeline.runner import _redacted_options, redacted
from tests.conftest import EXAMPLES, hegelion, hegelion_env


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "key",
        "hf_token",
        "HF_TOKEN",
        "apiKey",
        "x-api-key",
        "Authorization",
        "password",
        "client_secret",
        "token",
    ],
)
def test_credential_names(name: str) -> None:
    assert secrets.is_credential_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "max_tokens",
        "api_key_env",
        "pad_token",
        "eos_token",
        "sort_key",
        "model",
        "base_url",
        "tokens_per_s",
        "keys",
        "max_new_tokens",
    ],
)
def test_names_that_only_look_like_credentials(name: str) -> None:
    assert not secrets.is_credential_name(name)


def test_max_tokens_is_not_masked_but_every_credential_is() -> None:
    shown = hooks.redact(
        {
            "max_tokens": 512,
            "api_key": "sk-top-level-0001",
            "hf_token": "t",
            "api_key_env": "OPENAI_API_KEY",
            "stages": {"password": "pw-nested-0002"},
        }
    )
    assert shown == {
        "max_tokens": 512,
        "api_key": "***",
        "hf_token": "***",
        "api_key_env": "OPENAI_API_KEY",
        "stages": {"password": "***"},
    }


def test_known_values_are_masked_wherever_they_appear() -> None:
    options = {
        "extra_body": {"api_key": "sk-in-extra-body-0003"},
        "base_url": "https://user:sk-in-the-url-0004@api.example.com/v1",
        "note": "header was Bearer sk-in-extra-body-0003",
        "list": ["sk-in-the-url-0004"],
    }
    shown = secrets.redact(options)
    text = json.dumps(shown)
    assert "sk-in-extra-body-0003" not in text and "sk-in-the-url-0004" not in text
    assert shown["base_url"] == "https://user:***@api.example.com/v1"
    assert shown["note"] == "header was Bearer ***"
    # learnt: free text printed later is masked too
    assert secrets.scrub("connect to sk-in-the-url-0004 failed") == "connect to *** failed"
    assert secrets.scrub("https://bob:hunter2@host/x") == "https://bob:***@host/x"


def test_words_under_credential_names_do_not_mask_those_words_everywhere() -> None:
    secrets.redact({"auth": "none", "key": "instruction"})
    assert secrets.scrub("the instruction says none") == "the instruction says none"


def test_argv_masking_covers_pairs_flags_json_and_urls() -> None:
    argv = [
        "generate",
        "--teacher-option",
        "api_key=sk-pair-0005",
        "--hf-token",
        "hf-flag-0006",
        "--teacher-option",
        'extra_body={"api_key": "sk-json-0007", "top_k": 5}',
        "--base-url",
        "https://u:sk-url-0008@host/v1",
        "--max-tokens",
        "64",
    ]
    shown = redacted(argv)
    assert shown == [
        "generate",
        "--teacher-option",
        "api_key=***",
        "--hf-token",
        "***",
        "--teacher-option",
        'extra_body={"api_key": "***", "top_k": 5}',
        "--base-url",
        "https://u:***@host/v1",
        "--max-tokens",
        "64",
    ]
    assert _redacted_options(
        {"teacher_option": {"extra_body": {"api_key": "sk-json-0007"}}, "max_tokens": 64}
    ) == {"teacher_option": {"extra_body": {"api_key": "***"}}, "max_tokens": 64}


def test_sealed_argv_holds_no_secret_and_unseals_to_the_same_command() -> None:
    argv = [
        "generate",
        "--teacher-option",
        "api_key=sk-seal-0009",
        "--teacher-option",
        'extra_body={"api_key": "sk-q\\"uote-0010"}',
        "--base-url",
        "https://u:sk-seal-url-0011@host/v1",
        "--limit",
        "3",
    ]
    sealed, env = secrets.seal_argv(argv)
    assert not any(s in " ".join(sealed) for s in ("sk-seal-0009", "uote-0010", "sk-seal-url-0011"))
    assert sealed[2] == "api_key=${HEGELION_SECRET_0}" and sealed[-2:] == ["--limit", "3"]
    back = secrets.unseal_argv(sealed, env)
    assert back[:3] == argv[:3] and back[5:] == argv[5:]
    assert json.loads(back[4].partition("=")[2]) == {"api_key": 'sk-q"uote-0010'}
    assert secrets.mask_argv(sealed) == sealed  # a reference is no secret: shown as it is


def test_a_sealed_command_runs_with_its_secret_from_the_environment(tmp_path: Path) -> None:
    """What `hegelion run` does for a stage, through ``python -m hegelion_core`` itself:
    the value arrives although the command line holds only the reference."""
    out = tmp_path / "x.jsonl"
    env = os.environ | {"HEGELION_SECRET_0": str(EXAMPLES / "traces.jsonl")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hegelion_core",
            "dataset",
            "${HEGELION_SECRET_0}",
            str(out),
            "--format",
            "sft",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0


PIPE = """\
name: demo
workdir: {workdir}
stages:
  generate:
    teacher: echo
    mode: single
    prompt_file: prompts.txt
    limit: 1
    base_url: https://user:{url_key}@example.invalid/v1
    teacher_option: {{api_key: {key}, extra_body: {{api_key: {body_key}}}}}
"""


def _pipeline(tmp_path: Path, key: str, body_key: str, url_key: str) -> Path:
    (tmp_path / "prompts.txt").write_text("What is a key?\n")
    path = tmp_path / "pipe.yaml"
    path.write_text(
        PIPE.format(workdir=tmp_path / "w", key=key, body_key=body_key, url_key=url_key)
    )
    return path


def test_the_dry_run_masks_every_secret(plugin_site: Path, tmp_path: Path) -> None:
    config = _pipeline(tmp_path, "sk-dry-run-0012", "sk-dry-body-0013", "sk-dry-url-0014")
    out = hegelion(plugin_site, "run", config, "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "api_key=***" in out.stdout and "https://user:***@example.invalid/v1" in out.stdout
    for key in ("sk-dry-run-0012", "sk-dry-body-0013", "sk-dry-url-0014"):
        assert key not in out.stdout + out.stderr


def test_stage_processes_get_no_secret_on_their_command_line(
    plugin_site: Path, tmp_path: Path
) -> None:
    """``ps`` shows every process's argv to every user: the stage's must hold none."""
    keys = ("sk-argv-0015", "sk-argv-body-0016", "sk-argv-url-0017")
    config = _pipeline(tmp_path, *keys)
    runner = subprocess.Popen(
        [sys.executable, "-m", "hegelion_core", "run", str(config)],
        env=hegelion_env(plugin_site),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: dict[int, str] = {}
    while runner.poll() is None:
        for pid in _children(runner.pid):
            try:
                seen.setdefault(pid, Path(f"/proc/{pid}/cmdline").read_bytes().decode())
            except OSError:
                pass
        time.sleep(0.005)
    stdout, stderr = runner.communicate()
    stages = [cmd for cmd in seen.values() if "generate" in cmd]
    assert stages, f"never saw the stage process; stderr: {stderr}"
    assert "${HEGELION_SECRET_" in stages[0]
    for key in keys:
        assert all(key not in cmd for cmd in seen.values())
        assert key not in stdout + stderr
    assert "api_key=***" in stderr


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_keys_in_extra_body_and_the_url_reach_the_server_but_no_file_or_log(
    plugin_site: Path, tmp_path: Path
) -> None:
    """A whole `hegelion run` with the openai teacher: the keys work (the server gets
    them) and appear in no file of the work directory, no log and no stage argv."""
    pytest.importorskip("hegelion_openai")
    from hegelion_core.testing.openai_server import ScriptedOpenAIServer

    body_key, url_key = "sk-e2e-body-0018", "sk-e2e-url-0019"
    (tmp_path / "prompts.txt").write_text("What is a key?\nWhat is a lock?\n")
    with ScriptedOpenAIServer() as server:
        url = server.base_url.replace("http://", f"http://user:{url_key}@")
        config = tmp_path / "pipe.yaml"
        config.write_text(f"""\
name: demo
workdir: {tmp_path / "w"}
stages:
  generate:
    teacher: openai
    model: scripted-model
    base_url: {url}
    mode: single
    prompt_file: prompts.txt
    teacher_option: {{transport: httpx, extra_body: {{api_key: {body_key}}}}}
""")
        out = hegelion(plugin_site, "run", config, HEGELION_CONFIG_DIR=str(tmp_path / "config"))
        sent = [r.body.get("api_key") for r in server.completion_requests]
    assert out.returncode == 0, out.stderr
    assert sent == [body_key, body_key]
    files = [p for p in (tmp_path / "w").rglob("*") if p.is_file()]
    assert any(p.name == "stage.json" for p in files) and any(
        p.name.endswith("manifest.json") for p in files
    )
    for key in (body_key, url_key):
        assert key not in out.stdout + out.stderr
        assert not [p for p in files if key.encode() in p.read_bytes()]
    stage = json.loads((tmp_path / "w" / "generate" / "stage.json").read_text())
    assert "http://user:***@127.0.0.1" in json.dumps(stage["commands"])
