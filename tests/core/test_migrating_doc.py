"""docs/migrating.md cannot rot: every block under "Hegelion:" runs, in order, in one
directory, and every earlier command and flag on the page is mapped.

What the run replaces, and why (the rest runs as written, through bash):

- ``--teacher kimi-cli`` / ``--teacher kimi``: the ``openai`` teacher on the scripted
  server (no login or key in a test);
- ``HuggingFaceH4/ultrafeedback_binarized``: a local ``save_to_disk`` copy of its shape
  (a ``train_prefs`` split with a ``prompt`` column), six prompts;
- ``hegelion train`` and ``hegelion run`` get ``--dry-run``: a Mac, a GPU, an 8B model or
  a real teacher is needed to run them, and the dry run checks config, data and wiring;
- ``hegelion export gguf``: parsed by its own command (every flag and value checked), not
  run: it downloads the 8B base model.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from hegelion_core.testing.openai_server import ScriptedOpenAIServer
from tests.core.scripted_dialectic import phase_reply

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "migrating.md"
BIN = Path(sys.executable).parent

#: The earlier documents' commands (issue 14): each must be on the page, in an earlier block.
EARLIER = [
    "python -m hegelion.training.generator",
    "python -m hegelion.training.mlx_scu_trainer",
    "python -m hegelion.training.mlx_trainer",
    "python -m hegelion.training.unsloth_trainer",
    "python -m hegelion.scripts.hegelion_cli",
    "python -m hegelion.scripts.hegelion_dataset",
    "python scripts/convert_for_scu.py",
    "hegelion-agent",
    "hegelion-dataset",
    "prime-intellect deploy",
    "python scripts/train_context_protocol.py --local-test --generate-data",
    "python scripts/run_full_training.py --all",
    "python scripts/train_confidence_calibration.py",
    "python scripts/train_belief_revision.py",
    "python scripts/export_to_gguf.py",
    "ollama create",
]
#: ... and these in the monitoring table, each with its Hegelion form.
WATCHED = [
    "watch -n 30 'wc -l",
    "./CHECK_STATUS.sh",
    "tail -f generator_ultrafeedback.log",
    'ps aux \\| grep "hegelion.training.generator"',
    "tail -50 generator_ultrafeedback.log",
]


def sections() -> list[tuple[str, list[tuple[str, str]], str]]:
    """(heading, [(kind, code)], prose) per ``##`` section; kind is "hegelion" for a block
    after a paragraph starting "Hegelion", "earlier" after one starting "Earlier"."""
    out: list[tuple[str, list[tuple[str, str]], str]] = []
    heading, blocks, prose, last, code, blank = "", [], [], "", None, True
    for line in DOC.read_text().splitlines():
        if code is not None:
            if line.startswith("```"):
                kind = (
                    "hegelion"
                    if last.startswith("Hegelion")
                    else "earlier"
                    if last.startswith("Earlier")
                    else "other"
                )
                blocks.append((kind, "\n".join(code)))
                code = None
            else:
                code.append(line)
        elif line.startswith("```"):
            code = []
        elif line.startswith("## "):
            out.append((heading, blocks, "\n".join(prose)))
            heading, blocks, prose = line[3:], [], []
        else:
            prose.append(line)
            if line.strip() and blank:
                last = line.strip()  # a paragraph's first line says whose the next block is
            blank = not line.strip()
    out.append((heading, blocks, "\n".join(prose)))
    return out


def blocks(kind: str) -> list[str]:
    return [code for _, bs, _ in sections() for k, code in bs if k == kind]


def joined(code: str) -> list[str]:
    return code.replace("\\\n", " ").splitlines()


# ----- coverage ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", EARLIER)
def test_every_earlier_command_is_on_the_page(command: str) -> None:
    assert any(command in code for code in blocks("earlier")), command


@pytest.mark.parametrize("command", WATCHED)
def test_every_monitoring_command_has_its_hegelion_form(command: str) -> None:
    rows = [
        line for line in DOC.read_text().splitlines() if line.startswith("|") and command in line
    ]
    assert rows and all(row.split("|")[2].strip("` ") for row in rows), command  # a form beside it


def test_every_earlier_flag_is_mapped_in_its_section() -> None:
    """A flag of an earlier command is mentioned in its section outside the earlier blocks
    (a flag table, the Hegelion block, or the prose)."""
    missing = []
    for heading, bs, prose in sections():
        mapped = prose + "\n".join(code for kind, code in bs if kind != "earlier")
        for kind, code in bs:
            if kind != "earlier":
                continue
            for flag in set(re.findall(r"(?<![\w-])--[a-z][\w-]*", code)):
                if flag not in mapped:
                    missing.append(f"{heading}: {flag}")
    assert not missing


# ----- the Hegelion forms run -------------------------------------------------------------


@pytest.fixture(scope="module")
def ultrafeedback(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from datasets import Dataset, DatasetDict

    target = tmp_path_factory.mktemp("hf") / "ultrafeedback_binarized"
    prompts = [f"Question {i}: how should a service cache images it resizes?" for i in range(6)]
    DatasetDict({"train_prefs": Dataset.from_dict({"prompt": prompts})}).save_to_disk(str(target))
    return target


def script_for(code: str, url: str, ultrafeedback: Path) -> tuple[str, list[str]]:
    """The block as a bash script with the substitutions above, and the export lines."""
    exports, lines = [], []
    for line in joined(code):
        line = re.sub(
            r"--teacher kimi(-cli)?\b", f"--teacher openai --base-url {url} -m scripted-model", line
        )
        line = line.replace("HuggingFaceH4/ultrafeedback_binarized", str(ultrafeedback))
        line = line.replace(" examples/", f" {ROOT}/examples/")
        if line.startswith("hegelion export "):
            exports.append(line)
            continue
        if line.startswith(("hegelion train ", "hegelion run ")):
            line += " --dry-run"
        lines.append(line)
    wait = 'for job in $(jobs -p); do wait "$job"; done'  # a background generator's status too
    return "set -euo pipefail\n" + "\n".join(lines) + f"\n{wait}\n", exports


def test_every_hegelion_form_runs(tmp_path: Path, ultrafeedback: Path) -> None:
    for plugin in (
        "hegelion_openai",
        "hegelion_simplex",
        "hegelion_gguf",
    ):  # tox -e pipeline has all
        pytest.importorskip(plugin)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HEGELION_PLUGINS", "HEGELION_DISABLE_PLUGIN_AUTOLOAD")
    }
    env |= {
        "OPENAI_API_KEY": "sk-migrating-test-0123456789",
        "HEGELION_CONFIG_DIR": str(tmp_path / "config"),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    work = tmp_path / "work"
    work.mkdir()
    exports: list[str] = []
    outputs: list[str] = []
    with ScriptedOpenAIServer(reply=phase_reply) as srv:
        for code in blocks("hegelion"):
            script, more = script_for(code, srv.base_url, ultrafeedback)
            exports += more
            proc = subprocess.run(
                ["bash", "-c", script],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert proc.returncode == 0, f"{code}\n---\n{proc.stdout}\n{proc.stderr}"
            outputs.append(proc.stdout + proc.stderr)
    everything = "\n".join(outputs)

    def rows(name: str) -> list[dict]:
        return [orjson.loads(x) for x in (work / name).read_bytes().splitlines()]

    # generate: the dataset's 6 prompts, shared by two generators without duplicates, + 3 own
    traces = rows("artifacts/data/hegelion_kimi_training_data.jsonl")
    assert len(traces) == len({t["prompt_id"] for t in traces}) == 9
    assert {"instruction", "input", "output", "system", "hegelion_trace"} <= set(traces[0])
    assert len(rows("dialectic_data.jsonl")) == len(rows("hegelion_kimi_training_data.jsonl")) == 6
    assert "Samples: 9/500" in everything, everything
    assert "hegelion_kimi_training_data.jsonl: 9 written, 0 prompts rejected" in everything
    # convert, train
    assert all(set(r) == {"text"} for r in rows("artifacts/data/hegelion_scu_ready.jsonl"))
    for trainer in ("mlx-scu", "mlx", "unsloth", "trl"):
        assert f"would train: --trainer {trainer} " in everything
    assert not (work / "artifacts" / "adapters").exists()  # dry runs wrote nothing
    # agents and datasets
    coding = rows("collected_data/coding_traces.jsonl")
    assert len(coding) == 1 and coding[0]["hegelion_trace"]["iterations"] == 2
    assert len(rows("collected_data/batch_1.jsonl")) == 3  # one per line of my_prompts.txt
    assert set(rows("train_dpo.jsonl")[0]) == {"prompt", "chosen", "rejected"}
    anti = rows("train_dpo_anti.jsonl")[0]
    assert anti["rejected"] == coding[0]["hegelion_trace"]["antithesis"]
    assert rows("train_sft.jsonl")[0]["output"] == coding[0]["hegelion_trace"]["synthesis"]
    assert rows("train_sft_full.jsonl")[0]["output"].startswith("<thought>")
    assert set(rows("training_data.jsonl")[0]) == {"prompt", "chosen", "rejected"}
    # Simplex
    assert (work / "data" / "context" / "train.jsonl").is_file()
    assert "context-train (train):" in everything and "revision-eval (eval):" in everything
    # the export line: every flag and value is the gguf exporter's own
    assert exports, "the page lost its export command"
    check_export_lines(exports)


def check_export_lines(lines: list[str]) -> None:
    import shlex

    import click

    pytest.importorskip("hegelion_gguf")
    from hegelion_core.cli import cli

    for line in lines:
        argv = shlex.split(line)[1:]
        ctx = cli.make_context("hegelion", list(argv), resilient_parsing=False)
        group = cli.get_command(ctx, argv[0])
        sub = group.get_command(ctx, argv[1])
        params = sub.make_context(argv[1], argv[2:]).params
        assert params["quantization"] == "q4_k_m" and params["name"] == "simplex-cognitive-8b", (
            params
        )
        assert isinstance(sub, click.Command)


def test_train_dry_run_checks_the_data_and_trains_nothing(tmp_path: Path) -> None:
    """The dry run the page relies on: a wrong format is the same error as a real run's."""
    hegelion = str(BIN / "hegelion")
    data = tmp_path / "dpo.jsonl"
    subprocess.run(
        [hegelion, "dataset", ROOT / "examples" / "traces.jsonl", data, "--format", "dpo", "-q"],
        check=True,
    )
    ok = subprocess.run(
        [
            hegelion,
            "train",
            "--trainer",
            "trl",
            "--model",
            "m",
            "--method",
            "dpo",
            "--data",
            data,
            "--output",
            tmp_path / "out",
            "-c",
            "training.max_steps=500",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert f"--method dpo on {data} (dpo rows), model m, into {tmp_path / 'out'}" in ok.stdout
    assert '"max_steps": 500' in ok.stdout
    sft = subprocess.run(
        [
            hegelion,
            "train",
            "--trainer",
            "trl",
            "--model",
            "m",
            "--data",
            data,
            "--output",
            tmp_path / "out",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
    )
    assert sft.returncode == 1 and "holds dpo rows, but --method sft needs" in sft.stderr
    assert not (tmp_path / "out").exists()
