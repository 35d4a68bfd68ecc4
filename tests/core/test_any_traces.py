"""Traces from any tool: `hegelion dataset` and `hegelion curate` on rows whose trace is
only text (curator, distilabel, the earlier tool's SFT files, chat `messages`, Hub
datasets) give the same rows as on Hegelion's own records of the same traces.

The shapes are written with the calls those tools make: curator returns a
`datasets.Dataset` whose columns are its `parse` output (`{**input, "response": ...}`),
saved with `to_json`, `to_parquet` or `save_to_disk`; distilabel's `Distiset.save_to_disk`
writes one `DatasetDict.save_to_disk` per subset (`default/`) beside `distiset_configs/`,
and its `TextGeneration` step writes `instruction`, `generation`, `model_name` and
`distilabel_metadata`. The committed fixtures under fixtures/any_traces/ are these
shapes of the first six sample traces (`python -m tests.core.test_any_traces` rewrites
them).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from datasets import Dataset, DatasetDict

from hegelion_core.data.formatters.chat import ChatFormatter
from hegelion_core.data.traces import InvalidTrace, record_from_dict
from hegelion_core.records import DEFAULT_SYSTEM, DialecticTrace, TraceRecord
from hegelion_core.testing.sample_traces import SAMPLE_TRACES, sample_records, write_sample_traces

FIXTURES = Path(__file__).parent / "fixtures" / "any_traces"
FIXTURE_TRACES = SAMPLE_TRACES[:6]
# Fields a text row cannot carry: when and by which Hegelion the record was written.
_WRITE_TIME = {"created_at", "hegelion_version"}


def own_records(traces=SAMPLE_TRACES) -> list[TraceRecord]:
    """Hegelion's own records of ``traces``, as `write_sample_traces` writes them."""
    return [
        TraceRecord.build(i, DialecticTrace(thesis=t, antithesis=a, synthesis=s))
        for i, t, a, s in traces
    ]


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


# ----- the shapes other tools write -------------------------------------------------


def curator_rows(records: list[TraceRecord]) -> list[dict[str, Any]]:
    """curator ``LLM.parse`` returning ``{**input, "response": response}``."""
    return [{"instruction": r.instruction, "input": r.input, "response": r.output} for r in records]


def distilabel_rows(records: list[TraceRecord]) -> list[dict[str, Any]]:
    """distilabel ``TextGeneration`` rows (``enable_metadata=True`` keeps the metadata)."""
    return [
        {
            "instruction": r.prompt,
            "generation": r.output,
            "distilabel_metadata": {
                "raw_input_text_generation_0": [{"role": "user", "content": r.prompt}],
                "raw_output_text_generation_0": r.output,
                "statistics_text_generation_0": {"input_tokens": 12, "output_tokens": 80},
            },
            "model_name": "Qwen/Qwen2.5-1.5B-Instruct",
        }
        for r in records
    ]


def write_curator_json(records: list[TraceRecord], path: Path) -> Path:
    Dataset.from_list(curator_rows(records)).to_json(str(path))  # JSON lines, as curator users do
    return path


def write_curator_parquet(records: list[TraceRecord], path: Path) -> Path:
    Dataset.from_list(curator_rows(records)).to_parquet(str(path))
    return path


def write_curator_saved(records: list[TraceRecord], path: Path) -> Path:
    Dataset.from_list(curator_rows(records)).save_to_disk(str(path))
    return path


def write_distiset(records: list[TraceRecord], path: Path) -> Path:
    """What ``Distiset.save_to_disk(path)`` writes for a pipeline with one leaf step."""
    DatasetDict({"train": Dataset.from_list(distilabel_rows(records))}).save_to_disk(
        str(path / "default")
    )
    configs = path / "distiset_configs"
    configs.mkdir()
    (configs / "README.md").write_text(
        "---\nsize_categories: n<1K\ntags:\n- synthetic\n- distilabel\n- rlaif\n---\n\n"
        '<p align="left">\n  <a href="https://github.com/argilla-io/distilabel">Built with '
        "Distilabel</a>\n</p>\n\n# Dataset Card for dialectic-traces\n",
        encoding="utf-8",
    )
    (configs / "pipeline.yaml").write_text(
        "distilabel:\n  version: 1.5.3\npipeline:\n  name: dialectic-traces\n  steps:\n"
        "  - step:\n      name: text_generation_0\n      type_info:\n"
        "        module: distilabel.steps.tasks.text_generation\n        name: TextGeneration\n",
        encoding="utf-8",
    )
    return path


def write_output_only(records: list[TraceRecord], path: Path) -> Path:
    """The issue's rows: the whole user turn as ``instruction``, the trace in ``output``."""
    return jsonl(path, [{"instruction": r.prompt, "output": r.output} for r in records])


def write_messages(records: list[TraceRecord], path: Path) -> Path:
    """Chat rows as Hegelion's own `chat` formatter (and most chat datasets) write them."""
    chat = ChatFormatter({})
    return jsonl(path, [row for r in records for row in chat.format(r)])


def write_earlier_sft(records: list[TraceRecord], path: Path) -> Path:
    """The earlier tool's SFT rows: bold section labels, no `hegelion_trace`."""
    rows = []
    for r in records:
        t = r.hegelion_trace
        rows.append(
            {
                "instruction": r.instruction,
                "input": r.input,
                "output": f"<thought>\n**THESIS**: {t.thesis}\n\n**ANTITHESIS**: {t.antithesis}"
                f"\n\n**SYNTHESIS**: {t.synthesis}\n</thought>\n{t.final_answer}",
                "system": r.system,
            }
        )
    return jsonl(path, rows)


SHAPES: dict[str, tuple[str, Callable[[list[TraceRecord], Path], Path]]] = {
    "curator-json": ("curator.jsonl", write_curator_json),
    "curator-parquet": ("curator.parquet", write_curator_parquet),
    "curator-saved": ("curator-saved", write_curator_saved),
    "distilabel": ("distiset", write_distiset),
    "output-only": ("output-only.jsonl", write_output_only),
    "messages": ("messages.jsonl", write_messages),
    "earlier-sft": ("earlier-sft.jsonl", write_earlier_sft),
}


def write_fixtures(root: Path = FIXTURES) -> None:
    """Write fixtures/any_traces/: every shape of `FIXTURE_TRACES`."""
    import shutil

    records = own_records(FIXTURE_TRACES)
    for name, write in SHAPES.values():
        target = root / name
        if target.is_dir():
            shutil.rmtree(target)
        target.unlink(missing_ok=True)
        write(records, target)


# ----- helpers -----------------------------------------------------------------------


def rows_of(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def dataset_rows(run_cli, src: Path | None, out: Path, *args: str) -> list[dict]:
    inputs = [src] if src is not None else []
    run_cli("dataset", *inputs, out, *args)
    return rows_of(out)


def comparable(record: TraceRecord) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude=_WRITE_TIME)


# ----- the must-show: the same rows from every shape ----------------------------------


@pytest.fixture(scope="module")
def own_file(tmp_path_factory) -> Path:
    return write_sample_traces(tmp_path_factory.mktemp("own") / "traces.jsonl")


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize(
    "fmt", [("dpo",), ("dpo", "--rejected", "both", "--conversational"), ("sft",)]
)
def test_every_shape_gives_the_rows_of_hegelions_own_records(
    run_cli, own_file, tmp_path, shape, fmt
) -> None:
    name, write = SHAPES[shape]
    src = write(own_records(), tmp_path / name)
    expected = dataset_rows(run_cli, own_file, tmp_path / "own.jsonl", "--format", *fmt)
    got = dataset_rows(run_cli, src, tmp_path / "out.jsonl", "--format", *fmt)
    assert len(expected) >= len(SAMPLE_TRACES)
    assert got == expected


@pytest.mark.parametrize("shape", list(SHAPES))
def test_committed_fixtures_read_as_hegelions_own_records(shape) -> None:
    """The fixtures as committed, record by record: the same prompt_id and fields."""
    from hegelion_core.data.traces import ReadStats, iter_records

    stats = ReadStats()
    got = list(iter_records(FIXTURES / SHAPES[shape][0], stats))
    assert stats.lines == stats.valid == len(FIXTURE_TRACES), stats
    expected = own_records(FIXTURE_TRACES)
    if shape == "distilabel":  # its model_name column is the model that answered
        expected = [r.model_copy(update={"model": "Qwen/Qwen2.5-1.5B-Instruct"}) for r in expected]
    assert [comparable(r) for r in got] == [comparable(r) for r in expected]


@pytest.mark.parametrize("shape", ["messages", "curator-json", "output-only"])
def test_the_three_varied_sample_records_give_the_same_dpo_rows(run_cli, tmp_path, shape) -> None:
    """With an input, a separate final answer and markers in the text."""
    records = sample_records()
    own = jsonl(tmp_path / "own.jsonl", [r.model_dump(mode="json") for r in records])
    name, write = SHAPES[shape]
    src = write(records, tmp_path / name)
    for fmt in (("dpo",), ("dpo", "--conversational"), ("chat",)):
        expected = dataset_rows(run_cli, own, tmp_path / "a.jsonl", "--format", *fmt)
        assert dataset_rows(run_cli, src, tmp_path / "b.jsonl", "--format", *fmt) == expected


# ----- what a row may hold ------------------------------------------------------------


def test_text_fields_in_order_of_preference() -> None:
    own = own_records()[0]
    other = own_records()[1].output
    # `output` wins over `response`, which wins over `generation`...
    row = {"instruction": own.instruction, "output": own.output, "response": other}
    assert record_from_dict(row).hegelion_trace == own.hegelion_trace
    row = {"prompt": own.instruction, "completion": own.output, "answer": other}
    assert record_from_dict(row).hegelion_trace == own.hegelion_trace
    row = {"question": own.instruction, "answer": own.output}
    assert comparable(record_from_dict(row)) == comparable(own)


def test_named_trace_and_prompt_fields() -> None:
    from hegelion_core.data.sources import ReadOptions

    own = own_records()[2]
    row = {"problem_text": own.instruction, "reasoning_trace": own.output, "output": "no trace"}
    options = ReadOptions(trace_field="reasoning_trace", prompt_field="problem_text")
    assert comparable(record_from_dict(row, options)) == comparable(own)
    with pytest.raises(InvalidTrace) as info:
        record_from_dict(row, ReadOptions(trace_field="nope"))
    assert info.value.reason == "not a trace record" and "reasoning_trace" in info.value.detail


def test_messages_take_the_last_assistant_turn_and_the_user_turn_before_it() -> None:
    own = own_records()[3]
    row = {
        "messages": [
            {"role": "system", "content": "Answer as a dialectician."},
            {"role": "user", "content": "An earlier question?"},
            {"role": "assistant", "content": "An earlier answer."},
            {"role": "user", "content": [{"type": "text", "text": own.instruction}]},
            {"role": "assistant", "content": own.output},
        ]
    }
    record = record_from_dict(row)
    assert record.instruction == own.instruction and record.prompt_id == own.prompt_id
    assert record.hegelion_trace == own.hegelion_trace
    assert record.system == "Answer as a dialectician."
    no_system = {"messages": row["messages"][3:]}
    assert record_from_dict(no_system).system == DEFAULT_SYSTEM


def test_a_cut_answer_is_kept_out_as_truncated(run_cli, tmp_path) -> None:
    own = own_records()[:3]
    rows = [{"instruction": r.instruction, "output": r.output} for r in own]
    rows[1]["finish_reason"] = "length"
    src = jsonl(tmp_path / "cut.jsonl", rows)
    result = run_cli("dataset", src, tmp_path / "dpo.jsonl", "--format", "dpo")
    assert len(rows_of(tmp_path / "dpo.jsonl")) == 2
    assert "1  truncated" in result.output


# ----- rejects, by reason, at their place -----------------------------------------------


def test_placeholders_and_unparseable_rows_are_counted_by_reason(run_cli, tmp_path) -> None:
    own = own_records()
    loop = " ".join(["the thesis is the thesis"] * 30)
    rows = [
        {"instruction": own[0].instruction, "output": own[0].output},  # good
        {"instruction": "Q1?", "output": "[Generated via CLI]"},  # placeholder
        {"instruction": "Q2?", "output": "Just an answer, no dialectic."},  # unparseable
        {"instruction": "Q3?", "output": "THESIS: a\n\nANTITHESIS: b\n\nSYNTHESIS: [TODO]"},
        {"output": own[1].output},  # no prompt
        {"instruction": "Q4?", "chosen": "x", "rejected": "y"},  # a DPO row: no trace
        {
            "instruction": "Q5?",
            "output": f"THESIS:\n{loop}\n\nANTITHESIS:\nNo.\n\nSYNTHESIS:\nMaybe.",
        },
        {
            "instruction": "Q6?",
            "output": "<thought>\nTHESIS:\nA.\n\nANTITHESIS:\nB.\n\nSYNTHESIS:\nC.\n</thought>\n",
        },
    ]
    src = jsonl(tmp_path / "mixed.jsonl", rows)
    out = tmp_path / "sft.jsonl"
    result = run_cli("dataset", src, out, "--format", "sft")
    assert len(rows_of(out)) == 1
    lines = result.output
    assert "read 8 lines: 1 records used, 7 skipped" in lines
    for count, reason, where in [
        (2, "thesis missing", f"{src}:2: output is empty or a placeholder"),
        (1, "synthesis missing", f"{src}:4: output: SYNTHESIS section is a placeholder"),
        (1, "instruction missing", f"{src}:5:"),
        (1, "not a trace record", f"{src}:6:"),
        (1, "degenerate: repetitive", f"{src}:7: output: repetitive"),
        (1, "degenerate: empty_answer", f"{src}:8: output: empty_answer"),
    ]:
        assert f"{count}  {reason}   e.g. {where}" in lines, (reason, lines)
    # Nothing was invented: the one record is the good row's.
    assert rows_of(out)[0]["instruction"] == own[0].instruction


def test_a_parquet_row_error_names_file_and_row(run_cli, tmp_path) -> None:
    own = own_records()[:3]
    rows = curator_rows(own)
    rows[2]["response"] = "No dialectic here."
    src = tmp_path / "c.parquet"
    Dataset.from_list(rows).to_parquet(str(src))
    result = run_cli("dataset", src, tmp_path / "d.jsonl", "--format", "dpo")
    assert f"thesis missing   e.g. {src}:row 2: response: no THESIS section found" in result.output


def test_a_file_that_is_not_parquet_is_a_clear_error(run_cli, tmp_path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    result = run_cli("dataset", bad, tmp_path / "d.jsonl", "--format", "dpo", ok=False)
    assert result.exit_code != 0 and f"{bad}: not a readable Parquet file" in result.output
    assert "Traceback" not in result.output
    plain = tmp_path / "plain_dir"
    plain.mkdir()
    result = run_cli("dataset", plain, tmp_path / "d.jsonl", "--format", "dpo", ok=False)
    assert "no `save_to_disk` wrote" in result.output and "--hf" in result.output


# ----- saved datasets, splits, and --hf ------------------------------------------------


def test_saved_dataset_dict_reads_every_split_or_the_one_named(run_cli, tmp_path) -> None:
    own = own_records()
    saved = tmp_path / "saved"
    DatasetDict(
        {
            "train": Dataset.from_list(curator_rows(own[:15])),
            "test": Dataset.from_list(curator_rows(own[15:])),
        }
    ).save_to_disk(str(saved))
    every = dataset_rows(run_cli, saved, tmp_path / "a.jsonl", "--format", "dpo")
    assert [r["prompt"] for r in every] == [r.instruction for r in own]
    test = dataset_rows(run_cli, saved, tmp_path / "b.jsonl", "--format", "dpo", "--split", "test")
    assert [r["prompt"] for r in test] == [r.instruction for r in own[15:]]
    result = run_cli(
        "dataset", saved, tmp_path / "c.jsonl", "-f", "dpo", "--split", "dev", ok=False
    )
    assert "no split 'dev'; its splits are: train, test" in result.output


def test_hf_streams_a_local_directory_of_parquet_files(run_cli, own_file, tmp_path) -> None:
    own = own_records()
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    Dataset.from_list(curator_rows(own[:10])).to_parquet(
        str(repo / "data" / "train-00000-of-00002.parquet")
    )
    Dataset.from_list(curator_rows(own[10:])).to_parquet(
        str(repo / "data" / "train-00001-of-00002.parquet")
    )
    expected = dataset_rows(run_cli, own_file, tmp_path / "own.jsonl", "--format", "dpo")
    got = dataset_rows(
        run_cli,
        None,
        tmp_path / "hf.jsonl",
        "--format",
        "dpo",
        "--hf",
        str(repo),
        "--split",
        "train",
    )
    assert got == expected
    manifest = orjson.loads((tmp_path / "hf.jsonl.manifest.json").read_bytes())
    assert manifest["config"]["read"]["hf"] == str(repo)


def test_hf_rows_are_streamed_not_loaded(tmp_path, monkeypatch) -> None:
    """A streaming read yields its first row before the rest is read: the generator
    over `load_dataset(..., streaming=True)` is lazy (an IterableDataset)."""
    import datasets

    from hegelion_core.data.sources import ReadOptions, iter_hub_rows

    repo = tmp_path / "repo"
    repo.mkdir()
    Dataset.from_list(curator_rows(own_records())).to_parquet(str(repo / "train.parquet"))
    seen: list[Any] = []
    real = datasets.load_dataset

    def spy(*args: Any, **kwargs: Any) -> Any:
        loaded = real(*args, **kwargs)
        seen.append(loaded)
        return loaded

    monkeypatch.setattr(datasets, "load_dataset", spy)  # the real loader, watched
    first = next(iter_hub_rows(ReadOptions(hf=str(repo))))
    assert first.where == f"{repo}[train]:row 0"
    assert isinstance(seen[0], datasets.IterableDataset)


def test_hf_offline_with_a_hub_name_is_a_clear_error(run_cli, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # an empty cache
    result = run_cli(
        "dataset", tmp_path / "o.jsonl", "-f", "dpo", "--hf", "someone/dialectic-traces", ok=False
    )
    assert result.exit_code != 0
    assert "someone/dialectic-traces: could not read the Hugging Face dataset" in result.output
    assert "offline" in result.output and "Traceback" not in result.output


def test_no_input_at_all_is_a_usage_error(run_cli, tmp_path) -> None:
    result = run_cli("dataset", tmp_path / "o.jsonl", "-f", "dpo", ok=False)
    assert result.exit_code == 2 and "give INPUTS and OUTPUT, or --hf NAME" in result.output


# ----- curate reads them too -------------------------------------------------------------


@pytest.mark.parametrize("shape", ["curator-json", "distilabel", "messages", "curator-parquet"])
def test_curate_reads_every_shape_and_dataset_reads_what_it_kept(
    run_cli, own_file, tmp_path, shape
) -> None:
    own = own_records()
    name, write = SHAPES[shape]
    records = [*own, own[0]]  # one exact duplicate for curate to drop
    src = write(records, tmp_path / name)
    curated = tmp_path / "curated.jsonl"
    result = run_cli("curate", src, "-o", curated)
    assert f"kept {len(own)} of {len(records)} rows" in result.output
    assert "exact duplicate prompt" in result.output
    kept = rows_of(curated)
    if shape in ("curator-json", "messages"):  # JSONL rows are copied byte for byte
        assert (
            curated.read_bytes().splitlines()[0] == (tmp_path / name).read_bytes().splitlines()[0]
        )
    else:
        assert set(kept[0]) == set(
            (curator_rows if shape != "distilabel" else distilabel_rows)(own[:1])[0]
        )
    expected = dataset_rows(run_cli, own_file, tmp_path / "own.jsonl", "--format", "dpo")
    assert dataset_rows(run_cli, curated, tmp_path / "dpo.jsonl", "--format", "dpo") == expected


def test_curate_counts_text_rejects_at_their_place(run_cli, tmp_path) -> None:
    own = own_records()
    rows = curator_rows(own[:4])
    rows[1]["response"] = "[Generated via CLI]"
    src = tmp_path / "c.parquet"
    Dataset.from_list(rows).to_parquet(str(src))
    curated = tmp_path / "curated.jsonl"
    result = run_cli("curate", src, "-o", curated)
    assert "kept 3 of 4 rows" in result.output
    assert (
        f"1  thesis missing   e.g. {src}:row 1: response is empty or a placeholder" in result.output
    )
    manifest = orjson.loads(curated.with_name("curated.jsonl.manifest.json").read_bytes())
    assert manifest["filters"][0]["dropped"] == {"thesis missing": 1}


def test_curate_from_hf(run_cli, tmp_path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    Dataset.from_list(curator_rows(own_records()[:5])).to_parquet(str(repo / "train.parquet"))
    result = run_cli("curate", "--hf", str(repo), "-o", tmp_path / "c.jsonl")
    assert "kept 5 of 5 rows" in result.output


if __name__ == "__main__":  # rewrite fixtures/any_traces/
    write_fixtures(Path(sys.argv[1]) if len(sys.argv) > 1 else FIXTURES)
