"""`hegelion curate`: every filter drops and counts, survivors are their input bytes,
bad input is located, an interrupted run leaves no OUT, and the dataset card says it."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from hegelion_core.data.curate import CurateJob, curate, curation_card, curation_lineage
from hegelion_core.data.curate.contamination import ContaminationFilter
from hegelion_core.data.curate.filters import Row
from hegelion_core.records import DialecticTrace, JudgeVerdict, TraceRecord

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONTEXT = (
    "Our team runs a small online shop that sells handmade ceramics to customers in "
    "three countries, ships about two hundred orders each month, keeps its stock in one "
    "rented garage, and answers every support email within a day."
)


def _words(rng: random.Random, n: int) -> str:
    vocab = [f"w{i}" for i in range(3000)]
    return " ".join(rng.choice(vocab) for _ in range(n))


def record(
    instruction: str, synthesis: str, *, input: str = "", score: float | None = 8.0, **extra: object
) -> dict:
    trace = DialecticTrace(
        thesis="A first position, stated plainly.",
        antithesis="An objection that bites.",
        synthesis=synthesis,
        judge=JudgeVerdict(score=score) if score is not None else None,
    )
    return {**TraceRecord.build(instruction, trace, input=input).model_dump(mode="json"), **extra}


def one_word_changed(text: str) -> str:
    words = text.split()
    words[len(words) // 2] = "changed"
    return " ".join(words)


def fixture_lines(tmp_path: Path) -> tuple[Path, list[bytes], dict[str, int]]:
    """The 12 example traces plus one row of each kind to drop, as (file, the lines that
    must survive, where each planted row is). One kept row is spaced and key-ordered as
    no serialiser of ours writes it, so a re-serialised copy would not be identical."""
    rng = random.Random(1)
    examples = EXAMPLES.joinpath("traces.jsonl").read_bytes().splitlines(keepends=True)
    first = orjson.loads(examples[0])
    third = orjson.loads(examples[2])
    long_prompt = record("Should we open a second warehouse?", _words(rng, 150), input=CONTEXT)
    long_prompt_line = (
        json.dumps(
            dict(reversed(long_prompt.items())),
            ensure_ascii=True,
            indent=None,
            separators=(", ", " : "),
        )
        + "\n"
    ).encode()
    planted = {
        "exact duplicate prompt": examples[0],
        "exact duplicate synthesis": orjson.dumps(
            record("A brand new question about gardens?", first["hegelion_trace"]["synthesis"])
        )
        + b"\n",
        "near-duplicate synthesis": orjson.dumps(
            record(
                "Another unrelated question on taxes?",
                one_word_changed(third["hegelion_trace"]["synthesis"]),
            )
        )
        + b"\n",
        "near-duplicate prompt": orjson.dumps(
            record(
                "Should we open a second warehouse?",
                _words(rng, 150),
                input=one_word_changed(CONTEXT),
            )
        )
        + b"\n",
        # EVAL_PROMPTS line 4, shorter than 13 words: matched as a whole
        "short eval prompt": orjson.dumps(
            record(
                "Quick one. Should scientists publish research that could be misused? Be brief.",
                _words(rng, 150),
            )
        )
        + b"\n",
        # 13 words in a row from the long held-out prompt in held_out.jsonl
        "13-gram": orjson.dumps(
            record(
                "Explain why the committee decided that every bridge inspection report must be "
                "published online within a week, please.",
                _words(rng, 150),
            )
        )
        + b"\n",
    }
    lines = [*examples, long_prompt_line, *planted.values()]
    path = tmp_path / "traces.jsonl"
    path.write_bytes(b"".join(lines))
    where = {k: len(examples) + 2 + i for i, k in enumerate(planted)}  # 1-based line numbers
    return path, [*examples, long_prompt_line], where


EVAL_PROMPTS = """Should a city spend its budget on public transit or on roads?
Is it right to break a promise to prevent a small harm?
Do standardized tests measure what schools should teach?
Should scientists publish research that could be misused?
"""  # the short questions of examples/eval_prompts.txt, as a 13-gram never fits them


def eval_prompts(tmp_path: Path) -> Path:
    path = tmp_path / "eval_prompts.txt"
    path.write_text(EVAL_PROMPTS, encoding="utf-8")
    return path


def held_out(tmp_path: Path) -> Path:
    path = tmp_path / "held_out.jsonl"
    path.write_bytes(
        orjson.dumps(
            {
                "question": (
                    "In the city archive we found that the committee decided that every bridge inspection "
                    "report must be published online within thirty days of the visit."
                )
            }
        )
        + b"\n"
    )
    return path


def report(manifest: dict, name: str) -> dict:
    return next(f for f in manifest["filters"] if f["name"] == name)


def test_duplicates_and_contamination_dropped_by_reason_survivors_byte_identical(
    run_cli, tmp_path: Path
) -> None:
    src, survivors, where = fixture_lines(tmp_path)
    out = tmp_path / "curated.jsonl"
    result = run_cli(
        "curate",
        src,
        "-o",
        out,
        "--decontaminate",
        eval_prompts(tmp_path),
        "--decontaminate",
        held_out(tmp_path),
    )
    assert f"kept 13 of 19 rows in {out}" in result.output

    assert out.read_bytes() == b"".join(survivors)  # the input's bytes, in order
    manifest = orjson.loads((tmp_path / "curated.jsonl.manifest.json").read_bytes())
    dups = report(manifest, "duplicates")
    assert dups["dropped"] == {
        "exact duplicate prompt": 1,
        "exact duplicate synthesis": 1,
        "near-duplicate synthesis": 1,
        "near-duplicate prompt": 1,
    }
    for reason in dups["dropped"]:
        assert dups["examples"][reason].startswith(f"{src}:{where[reason]}: prompt_id ")
    assert f"same prompt as {src}:1" in dups["examples"]["exact duplicate prompt"]
    assert f"similar to {src}:3" in dups["examples"]["near-duplicate synthesis"]
    assert f"similar to {src}:13" in dups["examples"]["near-duplicate prompt"]

    decon = report(manifest, "decontaminate")
    assert decon["rows_in"] == 19 and decon["rows_out"] == 17
    assert decon["dropped"] == {"overlaps a held-out prompt": 2}
    example = decon["examples"]["overlaps a held-out prompt"]
    assert example.startswith(f"{src}:{where['short eval prompt']}:")
    assert f"{tmp_path / 'eval_prompts.txt'}:4" in example

    assert [f["name"] for f in manifest["filters"]] == [
        "read",
        "truncated",
        "degenerate",
        "decontaminate",
        "duplicates",
    ]
    assert manifest["counts"] == {"lines": 19, "records": 19, "dropped": 6, "rows_out": 13}
    assert manifest["inputs"][0]["sha256"] and manifest["output"]["bytes"] == out.stat().st_size
    import hashlib

    assert manifest["output"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()


def test_the_thirteen_gram_and_a_short_held_out_prompt(tmp_path: Path) -> None:
    src, _, where = fixture_lines(tmp_path)
    f = ContaminationFilter([held_out(tmp_path), eval_prompts(tmp_path)], n=13)
    assert f.sizes[0] == 13 and f.prompts == 5
    rows = {i: orjson.loads(line) for i, line in enumerate(src.read_bytes().splitlines(), 1)}

    def check(i: int):
        return f.check(Row(src, i, b"", TraceRecord.model_validate(rows[i])))

    drop = check(where["13-gram"])
    assert (
        drop and "13-gram 'the committee decided that every bridge inspection report" in drop.detail
    )
    assert f"{tmp_path / 'held_out.jsonl'}:1" in drop.detail
    assert check(where["short eval prompt"]) is not None
    assert all(check(i) is None for i in range(1, 13))
    # One word short of 13 in a row: not contaminated.
    assert (
        ContaminationFilter([held_out(tmp_path)], n=14).check(
            Row(src, 1, b"", TraceRecord.model_validate(rows[where["13-gram"]]))
        )
        is None
    )


def test_exact_only_and_no_dedupe(tmp_path: Path) -> None:
    src, _, _ = fixture_lines(tmp_path)
    exact = curate(CurateJob(inputs=[src], output=tmp_path / "a.jsonl", near_threshold=1))
    assert exact.filters[-1].dropped == {
        "exact duplicate prompt": 1,
        "exact duplicate synthesis": 1,
    }
    none = curate(CurateJob(inputs=[src], output=tmp_path / "b.jsonl", dedupe=False))
    assert [f.name for f in none.filters] == ["read", "truncated", "degenerate"]
    assert none.filters[-1].rows_out == 19


def test_judge_length_truncated_and_degenerate_filters(run_cli, tmp_path: Path) -> None:
    rng = random.Random(2)
    loop = " ".join(["the same phrase again"] * 40)
    rows = [
        record("Question one?", _words(rng, 120), score=9.0),
        record("Question two?", _words(rng, 120), score=4.0),
        record("Question three?", _words(rng, 120), score=None),
        record("Question four?", _words(rng, 5), score=9.0),
        record("Question five?", _words(rng, 120), score=9.0, truncated=True),
        record("Question six?", loop, score=9.0),
        record("Question seven?", _words(rng, 120), score=7.0),
    ]
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    out = tmp_path / "out.jsonl"
    run_cli("curate", src, "-o", out, "--min-judge-score", "7", "--min-chars", "400")
    manifest = orjson.loads(out.with_name("out.jsonl.manifest.json").read_bytes())
    assert report(manifest, "truncated")["dropped"] == {"truncated": 1}
    assert report(manifest, "degenerate")["dropped"] == {"degenerate: repetitive": 1}
    assert report(manifest, "judge")["dropped"] == {"judge score below 7": 1, "no judge score": 1}
    assert report(manifest, "length")["dropped"] == {"output under 400 chars": 1}
    assert [orjson.loads(line)["instruction"] for line in out.read_bytes().splitlines()] == [
        "Question one?",
        "Question seven?",
    ]

    kept_all = tmp_path / "all.jsonl"
    run_cli("curate", src, "-o", kept_all, "--quality", "enabled=false", "--no-dedupe")
    assert len(kept_all.read_bytes().splitlines()) == 6  # only the truncated row goes


def test_bad_json_names_file_and_line_and_writes_nothing(run_cli, tmp_path: Path) -> None:
    good = EXAMPLES.joinpath("traces.jsonl").read_bytes().splitlines(keepends=True)
    src = tmp_path / "bad.jsonl"
    src.write_bytes(good[0] + b'{"instruction": "oops",\n' + good[1] + b'{"thesis": "x"}\n')
    out = tmp_path / "out.jsonl"
    result = run_cli("curate", src, "-o", out, ok=False)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert f"{src}:2: invalid JSON" in result.output and "--skip-invalid" in result.output
    assert not out.exists() and not list(tmp_path.glob(".out.jsonl.tmp-*"))

    run_cli("curate", src, "-o", out, "--skip-invalid")
    assert out.read_bytes() == good[0] + good[1]
    read = report(orjson.loads(out.with_name("out.jsonl.manifest.json").read_bytes()), "read")
    assert read["rows_in"] == 4 and read["rows_out"] == 2
    assert read["examples"]["invalid JSON"].startswith(f"{src}:2: ")
    assert read["examples"]["instruction missing"].startswith(f"{src}:4: ")


def test_nothing_left_and_output_over_an_input_are_errors(run_cli, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(orjson.dumps(record("Question?", "An answer, of sorts.", score=None)) + b"\n")
    result = run_cli(
        "curate", src, "-o", tmp_path / "out.jsonl", "--min-judge-score", "5", ok=False
    )
    assert "no row of" in result.output and "no judge score" in result.output
    assert not (tmp_path / "out.jsonl").exists()
    before = src.read_bytes()
    result = run_cli("curate", src, "-o", src, ok=False)
    assert "the output is also an input" in result.output and src.read_bytes() == before
    result = run_cli("curate", tmp_path / "missing.jsonl", "-o", tmp_path / "o.jsonl", ok=False)
    assert f"{tmp_path / 'missing.jsonl'}: file not found" in result.output


def test_killed_mid_run_leaves_no_partial_output(tmp_path: Path) -> None:
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(3000)]
    base = record("Question?", "Synthesis.")
    src = tmp_path / "big.jsonl"
    with src.open("wb") as fp:
        for i in range(6000):
            trace = {**base["hegelion_trace"], "synthesis": " ".join(rng.choices(vocab, k=200))}
            row = {
                **base,
                "instruction": f"Question {i} about {' '.join(rng.choices(vocab, k=8))}?",
                "prompt_id": f"{i:016x}",
                "hegelion_trace": trace,
            }
            fp.write(orjson.dumps(row) + b"\n")
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"an earlier result\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hegelion_core", "curate", str(src), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not any(p.stat().st_size for p in tmp_path.glob(".out.jsonl.tmp-*")):
        assert proc.poll() is None, "finished before it could be killed: make the input bigger"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert out.read_bytes() == b"an earlier result\n"  # untouched, never half-written
    assert not out.with_name("out.jsonl.manifest.json").exists()


@pytest.fixture
def curated(tmp_path: Path) -> Path:
    src, _, _ = fixture_lines(tmp_path)
    first = curate(CurateJob(inputs=[src], output=tmp_path / "c1.jsonl", near_threshold=1))
    curate(
        CurateJob(
            inputs=[first.output],
            output=tmp_path / "c2.jsonl",
            decontaminate=[eval_prompts(tmp_path)],
        )
    )
    return tmp_path / "c2.jsonl"


def test_lineage_reads_every_curation_behind_an_input(curated: Path, tmp_path: Path) -> None:
    steps = curation_lineage([curated])
    assert [Path(s.output.path).name for s in steps] == ["c1.jsonl", "c2.jsonl"]
    assert all(s.matches for s in steps)
    assert Path(steps[0].inputs[0].path) == tmp_path / "traces.jsonl"
    card = curation_card([curated])
    assert "## Curation" in card and "| duplicates | 19 | 2 | 17 |" in card
    assert "| decontaminate | 17 | 1 | 16 |" in card and steps[1].output.sha256[:16] in card

    curated.write_bytes(curated.read_bytes()[:100] + b"\n")
    assert not curation_lineage([curated])[-1].matches
    assert "changed after curation" in curation_card([curated])
    assert curation_card([EXAMPLES / "traces.jsonl"]) == ""


def test_templated_prompts_are_not_near_duplicates(tmp_path: Path) -> None:
    """400 prompts that share a long template (Jaccard about 0.6 between any two): the
    MinHash estimate of some pair reaches 0.8 by chance, the shingle sets never do."""
    from hegelion_core.data.curate.duplicates import DuplicateFilter

    rng = random.Random(4)
    template = (
        "Please write a careful dialectical analysis of the following question about "
        "public policy in modern cities:"
    )
    rows = [record(f"{template} {_words(rng, 3)}?", _words(rng, 60)) for _ in range(400)]
    dedupe = DuplicateFilter(threshold=0.8, num_perm=64)
    drops = [
        dedupe.check(Row(tmp_path, i, b"", TraceRecord.model_validate(r)))
        for i, r in enumerate(rows, 1)
    ]
    assert [d for d in drops if d is not None] == []
    near = dedupe.near["prompt"]
    assert near.size == 400 and len(near.lsh.query(near.minhash)) > 50  # many candidates seen


def test_the_dataset_card_lists_each_curation(run_cli, curated: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    run_cli("dataset", curated, out, "--format", "sft", "--valid-ratio", "0.2")
    card = (out / "README.md").read_text(encoding="utf-8")
    assert card.index("## Curation") < card.index("## Splits")
    assert (
        "`hegelion curate` wrote `c1.jsonl`" in card
        and "`hegelion curate` wrote `c2.jsonl`" in card
    )
    assert (
        "| duplicates | 19 | 2 | 17 | exact duplicate prompt: 1; exact duplicate synthesis: 1 |"
        in card
    )
    digest = orjson.loads(curated.with_name("c2.jsonl.manifest.json").read_bytes())["output"][
        "sha256"
    ]
    assert digest[:16] in card and "changed after curation" not in card


def test_a_curate_stage_between_generate_and_format(plugin_site: Path, tmp_path: Path) -> None:
    from tests.conftest import hegelion

    (tmp_path / "prompts.txt").write_text(
        "".join(f"Question number {i}: is it so?\n" for i in range(4))
    )
    (tmp_path / "held_out.txt").write_text("Question number 0: is it so?\n")
    config = tmp_path / "pipe.yaml"
    config.write_text(f"""\
name: demo
workdir: {tmp_path / "w"}
stages:
  generate: {{teacher: echo, mode: single, prompt_file: prompts.txt, limit: 4}}
  curate: {{decontaminate: [held_out.txt]}}
  format: {{format: sft}}
""")
    done = hegelion(plugin_site, "run", config)
    assert done.returncode == 0, done.stderr
    w = tmp_path / "w"
    curated = w / "curate" / "curated.jsonl"
    traces = (w / "generate" / "traces.jsonl").read_bytes().splitlines(keepends=True)
    # The echo teacher gives every prompt the same synthesis: one row is left, the first
    # that is not the held-out prompt, as it was in the traces.
    assert curated.read_bytes() == next(line for line in traces if b"number 0:" not in line)
    stage = json.loads((w / "curate" / "stage.json").read_text())
    assert stage["kind"] == "curate"
    assert stage["figures"]["rows_out"] == 1 and stage["figures"]["dropped"] == 3
    assert f"--decontaminate {tmp_path / 'held_out.txt'}" in " ".join(stage["commands"][0])
    fmt = json.loads((w / "format" / "stage.json").read_text())
    assert fmt["inputs"][0]["path"] == str(curated)
    assert len((w / "format" / "sft.jsonl").read_bytes().splitlines()) == 1


def test_every_curate_option_is_documented() -> None:
    from hegelion_core.cli.curate import curate_command

    docs = (EXAMPLES.parent / "docs" / "curation.md").read_text(encoding="utf-8")
    options = [o for p in curate_command.params for o in p.opts if o.startswith("--")]
    assert [o for o in options if o not in docs and o not in ("--quiet", "--output")] == []
