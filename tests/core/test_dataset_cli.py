"""`hegelion dataset`: layouts, bad input, and never a half-written output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from hegelion_core.records import DialecticTrace, TraceRecord
from tests.conftest import write_jsonl


def rows_of(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def many_records(n: int) -> list[dict]:
    return [
        TraceRecord.build(
            f"Question number {i}?",
            DialecticTrace(
                thesis=f"Thesis {i}.", antithesis=f"Antithesis {i}.", synthesis=f"Synthesis {i}."
            ),
            confidence=0.5,
        ).model_dump(mode="json")
        for i in range(n)
    ]


@pytest.mark.parametrize("fmt", ["sft", "chat", "dpo", "scu", "simplex"])
def test_every_format_writes_jsonl_and_a_manifest(run_cli, example_traces, tmp_path, fmt) -> None:
    out = tmp_path / f"{fmt}.jsonl"
    result = run_cli("dataset", example_traces, out, "--format", fmt)
    assert f"wrote 12 rows (train 12) to {out} [{fmt}]" in result.output
    assert len(rows_of(out)) == 12
    manifest = orjson.loads((tmp_path / f"{fmt}.jsonl.manifest.json").read_bytes())
    assert manifest["stage"] == "dataset" and manifest["counts"]["records"] == 12
    assert manifest["inputs"][0]["sha256"] and manifest["config"]["format"] == fmt


def test_hegelion_dataset_alias(example_traces, tmp_path) -> None:
    out = tmp_path / "dpo.jsonl"
    subprocess.run(
        [
            Path(sys.executable).with_name("hegelion-dataset"),
            example_traces,
            out,
            "--format",
            "dpo",
            "--rejected",
            "both",
        ],
        check=True,
        capture_output=True,
    )
    assert len(rows_of(out)) == 24


def test_invalid_json_names_file_and_line(run_cli, traces_file, tmp_path) -> None:
    good = [r for r in rows_of(traces_file())]
    src = write_jsonl(tmp_path / "bad.jsonl", [good[0], b'{"instruction": "oops",', good[1]])
    out = tmp_path / "out.jsonl"
    result = run_cli("dataset", src, out, "--format", "sft", ok=False)
    assert result.exit_code != 0
    assert f"{src}:2: invalid JSON" in result.output
    assert "--skip-invalid" in result.output
    assert not out.exists()

    result = run_cli("dataset", src, out, "--format", "sft", "--skip-invalid")
    assert len(rows_of(out)) == 2
    assert "1  invalid JSON   e.g. " in result.output and f"{src}:2" in result.output


def test_invalid_traces_are_counted_by_reason(run_cli, tmp_path, traces_file) -> None:
    good = rows_of(traces_file())
    placeholder = good[0] | {
        "prompt_id": "x1",
        "instruction": "Other?",
        "hegelion_trace": good[0]["hegelion_trace"] | {"thesis": "[Generated via CLI]"},
        "output": "[Generated via CLI]",
    }
    src = write_jsonl(
        tmp_path / "mixed.jsonl", [*good, placeholder, {"foo": 1}, {"foo": 2}, good[0]]
    )
    out = tmp_path / "out.jsonl"
    result = run_cli("dataset", src, out, "--format", "chat")
    assert len(rows_of(out)) == 3
    assert "read 7 lines: 3 records used, 4 skipped" in result.output
    assert "2  not a trace record" in result.output
    assert "1  thesis missing" in result.output
    assert "1  duplicate prompt_id" in result.output


def test_nothing_valid_fails_and_keeps_the_old_output(run_cli, tmp_path) -> None:
    src = write_jsonl(
        tmp_path / "junk.jsonl",
        [
            {"foo": 1},
            {
                "query": "Q",
                "thesis": "T",
                "antithesis": "A",
                "synthesis": "[Synthesis generation failed: 500]",
            },
        ],
    )
    out = tmp_path / "out.jsonl"
    out.write_text("previous good data\n")
    result = run_cli("dataset", src, out, "--format", "sft", ok=False)
    assert result.exit_code != 0
    assert "no valid records" in result.output and "synthesis missing" in result.output
    assert out.read_text() == "previous good data\n"
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_unknown_format_lists_the_available_ones(run_cli, example_traces, tmp_path) -> None:
    result = run_cli(
        "dataset", example_traces, tmp_path / "o.jsonl", "--format", "alpaca", ok=False
    )
    assert "no formatter named 'alpaca'" in result.output and "sft" in result.output


def test_option_not_accepted_by_the_format(run_cli, example_traces, tmp_path) -> None:
    result = run_cli(
        "dataset",
        example_traces,
        tmp_path / "o.jsonl",
        "--format",
        "sft",
        "--rejected",
        "both",
        ok=False,
    )
    assert "invalid options for formatter 'sft': rejected: unknown field" in result.output


def test_generic_option_pairs(run_cli, example_traces, tmp_path) -> None:
    out = tmp_path / "o.jsonl"
    run_cli("dataset", example_traces, out, "--format", "chat", "-o", "include_system=false")
    assert [m["role"] for m in rows_of(out)[0]["messages"]] == ["user", "assistant"]


def test_mlx_split_directory(run_cli, example_traces, tmp_path) -> None:
    out = tmp_path / "mlx"
    result = run_cli(
        "dataset",
        example_traces,
        out,
        "--format",
        "mlx",
        "--valid-ratio",
        "0.34",
        "--batch-size",
        "2",
        "--seed",
        "3",
    )
    assert "(train 8, valid 4)" in result.output
    train, valid = rows_of(out / "train.jsonl"), rows_of(out / "valid.jsonl")
    assert len(train) == 8 and len(valid) == 4
    assert not {r["messages"][1]["content"] for r in train} & {
        r["messages"][1]["content"] for r in valid
    }
    assert (out / "manifest.json").exists() and "# Hegelion" in (out / "README.md").read_text()
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "manifest.json",
        "train.jsonl",
        "valid.jsonl",
    ]

    again = tmp_path / "mlx2"
    run_cli(
        "dataset",
        example_traces,
        again,
        "--format",
        "mlx",
        "--valid-ratio",
        "0.34",
        "--batch-size",
        "2",
        "--seed",
        "3",
    )
    assert (again / "valid.jsonl").read_bytes() == (out / "valid.jsonl").read_bytes()  # seeded


def test_mlx_split_smaller_than_batch_size_is_an_error(run_cli, example_traces, tmp_path) -> None:
    out = tmp_path / "mlx"
    result = run_cli("dataset", example_traces, out, "--format", "mlx", ok=False)
    assert "split too small for batch size 4: valid would have 1 rows" in result.output
    assert "--batch-size" in result.output
    assert not out.exists()


def test_split_keeps_a_records_rows_together(run_cli, tmp_path) -> None:
    src = write_jsonl(tmp_path / "t.jsonl", many_records(30))
    out = tmp_path / "dpo"
    run_cli(
        "dataset",
        src,
        out,
        "--format",
        "dpo",
        "--rejected",
        "both",
        "--valid-ratio",
        "0.2",
        "--test-ratio",
        "0.1",
    )
    splits = {s: rows_of(out / f"{s}.jsonl") for s in ("train", "valid", "test")}
    assert [len(v) for v in splits.values()] == [42, 12, 6]
    prompts = {s: {r["prompt"] for r in rows} for s, rows in splits.items()}
    assert not (prompts["train"] & prompts["valid"]) and not (prompts["train"] & prompts["test"])


def test_parquet_file(run_cli, example_traces, tmp_path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "chat.parquet"
    run_cli("dataset", example_traces, out, "--format", "chat")
    table = pq.read_table(out)
    assert table.num_rows == 12 and table.column_names == ["messages"]
    assert table.to_pylist()[0]["messages"][2]["content"].startswith("<thought>")


def test_hf_dataset_dict_on_disk(run_cli, example_traces, tmp_path) -> None:
    from hegelion_core.data.dataset import load_dataset_dict

    out = tmp_path / "hf"
    run_cli(
        "dataset", example_traces, out, "--format", "dpo", "--to", "hf", "--valid-ratio", "0.25"
    )
    dd = load_dataset_dict(out)
    assert set(dd) == {"train", "validation"}
    assert dd["train"].num_rows == 9 and dd["validation"].num_rows == 3
    assert set(dd["train"].column_names) == {"prompt", "chosen", "rejected"}
    assert "| validation | 3 |" in (out / "README.md").read_text()


def test_push_to_hub_goes_as_far_as_the_network(example_traces, tmp_path) -> None:
    """The upload is real: pointed at a local endpoint that refuses, it fails clearly,
    after the dataset and its card were built and saved locally."""
    import http.server
    import threading

    hits: list[str] = []

    class Refuse(http.server.BaseHTTPRequestHandler):
        def _refuse(self) -> None:
            hits.append(f"{self.command} {self.path}")
            body = b'{"error": "Invalid credentials"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_HEAD = _refuse

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = tmp_path / "hf"
        env = os.environ | {
            "HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
            "HF_HUB_OFFLINE": "0",
            "HF_TOKEN": "hf_test_not_a_real_token",
            "HF_HOME": str(tmp_path / "hfhome"),
        }
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "hegelion_core",
                "dataset",
                example_traces,
                out,
                "--format",
                "chat",
                "--to",
                "hf",
                "--push-to-hub",
                "someone/hegelion-test",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    finally:
        server.shutdown()
    assert proc.returncode != 0
    assert "push to the Hub (someone/hegelion-test) failed" in proc.stderr
    assert f"saved locally at {out}" in proc.stderr
    assert "hf_test_not_a_real_token" not in proc.stderr
    assert hits, "the upload never reached the endpoint"
    assert "How it was made" in (out / "README.md").read_text()
