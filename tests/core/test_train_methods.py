"""``hegelion train --method``: which trainer implements which method (``Trainer.methods``),
refused before anything loads, and what ``--method grpo`` reads (prompts, not answers)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from hegelion_core.cli import cli
from hegelion_core.contracts import Trainer
from hegelion_core.errors import HegelionError, InputError
from hegelion_core.records import DEFAULT_SYSTEM
from hegelion_core.training.data import (
    check_data,
    check_method,
    detect_format,
    grpo_prompts,
    is_dataset,
    resolve_data,
    trainers_for,
)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


@pytest.fixture
def prompts_txt(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("Is free will real?\n\n  Do markets work?  \n", encoding="utf-8")
    return path


# ----- the capability -----------------------------------------------------------------


def test_trainers_default_to_sft_and_dpo() -> None:
    assert Trainer.methods == ("sft", "dpo")


def test_a_method_the_trainer_lacks_is_refused_naming_the_trainers_that_have_it() -> None:
    can = trainers_for("grpo")
    with pytest.raises(HegelionError) as err:
        check_method("sfter", ("sft",), "grpo")
    message = str(err.value)
    assert "the sfter trainer cannot train --method grpo (it trains sft)" in message
    if can:  # trl where hegelion-trl is installed
        assert all(f"--trainer {name}" in message for name in can)
    else:
        assert "pip install hegelion-trl" in message
    check_method("grpoer", ("sft", "grpo"), "grpo")  # no error


def test_the_trainers_that_can_are_those_whose_methods_say_so() -> None:
    pytest.importorskip("hegelion_trl")
    from hegelion_core.plugins import load_driver

    can = trainers_for("grpo")
    assert "trl" in can
    assert all("grpo" in load_driver("trainers", name).methods for name in can)
    assert "mlx" not in can and "mlx-scu" not in can


@pytest.mark.parametrize("trainer", ["mlx", "mlx-scu"])
def test_mlx_refuses_grpo_before_anything_loads(
    trainer: str, prompts_txt: Path, tmp_path: Path
) -> None:
    pytest.importorskip("hegelion_mlx")
    out = tmp_path / "run"
    for dry in ([], ["--dry-run"]):
        result = CliRunner().invoke(
            cli,
            [
                "train",
                "--trainer",
                trainer,
                "--method",
                "grpo",
                "--model",
                "some/model",
                "--data",
                str(prompts_txt),
                "--output",
                str(out),
                *dry,
            ],
        )
        assert result.exit_code == 1, result.output
        assert f"the {trainer} trainer cannot train --method grpo (it trains sft)" in result.output
        assert "--trainer trl" in result.output or "hegelion-trl" in result.output
        assert "Traceback" not in result.output
        assert not out.exists()  # refused before the output directory was made


# ----- CLI parsing --------------------------------------------------------------------


def test_method_grpo_and_its_keys_parse_into_the_plan(prompts_txt: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--trainer",
            "trl",
            "--method",
            "grpo",
            "--model",
            "some/model",
            "--data",
            str(prompts_txt),
            "--output",
            str(tmp_path / "run"),
            "-c",
            "grpo.num_generations=8",
            "-c",
            "grpo.max_completion_length=96",
            "-c",
            "grpo.rewards.format=0.5",
            "--dry-run",
        ],
    )
    assert result.exit_code == 0, result.output
    head, _, body = result.output.partition("\n")
    assert "--method grpo" in head and "(prompts rows)" in head
    plan = json.loads(body)
    assert plan["method"] == "grpo"
    assert plan["grpo"]["num_generations"] == 8
    assert plan["grpo"]["max_completion_length"] == 96
    assert plan["grpo"]["rewards"]["format"]["weight"] == 0.5


def test_an_unknown_method_is_a_usage_error(prompts_txt: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["train", "--trainer", "trl", "--method", "ppo", "--model", "m"]
        + ["--data", str(prompts_txt), "--output", str(tmp_path / "o"), "--dry-run"],
    )
    assert result.exit_code == 2
    assert "'ppo' is not one of 'sft', 'dpo', 'grpo'" in result.output


# ----- what GRPO reads ----------------------------------------------------------------


def test_a_text_file_is_prompts_in_the_sft_rows_conversation(prompts_txt: Path) -> None:
    assert detect_format(prompts_txt) == "prompts"
    assert check_data(prompts_txt, "grpo") == "prompts"
    assert grpo_prompts(prompts_txt) == [
        {
            "prompt": [
                {"role": "system", "content": DEFAULT_SYSTEM},
                {"role": "user", "content": q},
            ]
        }
        for q in ("Is free will real?", "Do markets work?")
    ]
    with pytest.raises(HegelionError, match="holds prompts rows, but --method sft needs"):
        check_data(prompts_txt, "sft")


def test_jsonl_prompts_keep_their_other_columns(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"prompt": "Q1", "answer": "a", "difficulty": 1},
            {"question": "Q2", "answer": "b", "difficulty": 2, "system": "Be brief."},
        ],
    )
    assert check_data(path, "grpo") == "prompts"
    rows = grpo_prompts(path)
    assert rows[0] == {
        "prompt": [
            {"role": "system", "content": DEFAULT_SYSTEM},
            {"role": "user", "content": "Q1"},
        ],
        "answer": "a",
        "difficulty": 1,
    }
    assert rows[1]["prompt"][0] == {"role": "system", "content": "Be brief."}
    assert rows[1]["answer"] == "b"


def test_chat_rows_and_simplex_items_prompt_up_to_the_last_user_turn(tmp_path: Path) -> None:
    system = {"role": "system", "content": "You are a Simplex agent."}
    user = {"role": "user", "content": "<context>...</context>\nWill it rain?"}
    path = write_jsonl(
        tmp_path / "items.jsonl",
        [
            {
                "id": "cal-1",
                "messages": [system, user],
                "answer": "yes",
                "aliases": ["y"],
                "expected_confidence": 0.8,
            },
            {
                "id": "cal-2",
                "messages": [system, user, {"role": "assistant", "content": "Answer: yes"}],
                "answer": "no",
                "aliases": [],
                "expected_confidence": 0.3,
            },
        ],
    )
    assert check_data(path, "grpo") == "chat"
    rows = grpo_prompts(path)
    assert [r["prompt"] for r in rows] == [[system, user], [system, user]]  # answer not shown
    assert rows[0]["answer"] == "yes" and rows[0]["expected_confidence"] == 0.8
    assert rows[1]["id"] == "cal-2" and rows[1]["aliases"] == []


def test_sft_rows_give_their_system_and_instruction_not_their_output(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "sft.jsonl",
        [{"instruction": "Q", "input": "more", "output": "the answer", "system": "S"}],
    )
    assert grpo_prompts(path) == [
        {"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q\n\nmore"}]}
    ]


def test_a_row_without_a_user_turn_names_file_and_line(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {"messages": [{"role": "user", "content": "ok"}]},
            {"messages": [{"role": "system", "content": "only a system turn"}]},
        ],
    )
    with pytest.raises(InputError) as err:
        grpo_prompts(path)
    assert f"{path}:2" in str(err.value)
    assert "no user turn" in str(err.value)


def test_dpo_rows_are_no_grpo_data(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"}])
    with pytest.raises(HegelionError, match="--method grpo needs prompts or chat or sft rows"):
        check_data(path, "grpo")


# ----- a Hugging Face dataset as GRPO's data ----------------------------------------------

ITEMS = [
    {"question": "Is the Earth flat?", "answer": "no", "aliases": ["No"]},
    {"question": "Is water wet?", "answer": "yes", "aliases": []},
]


def _grpo_rows_of(data: Path, output: Path) -> list[dict]:
    resolved = resolve_data(data, output)
    assert resolved == output / "data" / "train.jsonl"
    check_data(resolved, "grpo")
    return grpo_prompts(resolved)


def test_a_parquet_file_saved_dataset_and_hf_name_are_grpo_prompts_with_their_columns(
    tmp_path: Path,
) -> None:
    """The issue's third data source: a Hugging Face dataset, in each form users hold one
    (a Parquet file, a `save_to_disk` directory, a dataset by name, streamed); the answer
    columns travel with each prompt for the rewards."""
    from datasets import Dataset, DatasetDict

    ds = Dataset.from_list(ITEMS)
    parquet = tmp_path / "items.parquet"
    ds.to_parquet(str(parquet))
    saved = tmp_path / "saved"
    DatasetDict({"train": ds, "test": Dataset.from_list(ITEMS[:1])}).save_to_disk(str(saved))
    repo = tmp_path / "repo" / "data"
    repo.mkdir(parents=True)
    ds.to_parquet(str(repo / "train-00000-of-00001.parquet"))
    for data in (parquet, saved, Path(f"hf:{repo.parent}"), Path(f"hf:{repo.parent}:train")):
        assert is_dataset(data)
        rows = _grpo_rows_of(data, tmp_path / "out" / data.name)
        assert [r["prompt"][-1]["content"] for r in rows] == [i["question"] for i in ITEMS]
        assert [r["answer"] for r in rows] == ["no", "yes"]
        assert rows[0]["aliases"] == ["No"]
        assert rows[0]["prompt"][0] == {"role": "system", "content": DEFAULT_SYSTEM}
    assert not is_dataset(tmp_path / "out" / "items.parquet" / "data" / "train.jsonl")


def test_the_copied_dataset_never_replaces_a_users_own_file(tmp_path: Path) -> None:
    """OUTPUT/data/train.jsonl is Hegelion's only where Hegelion wrote it: a rerun
    replaces its own copy; a user's file of that name is refused and left as it was."""
    from datasets import Dataset

    parquet = tmp_path / "items.parquet"
    Dataset.from_list(ITEMS).to_parquet(str(parquet))
    ours = tmp_path / "ours"
    assert len(_grpo_rows_of(parquet, ours)) == 2
    Dataset.from_list(ITEMS[:1]).to_parquet(str(parquet))
    assert len(_grpo_rows_of(parquet, ours)) == 1  # the rerun replaced its own copy

    theirs = tmp_path / "theirs"
    (theirs / "data").mkdir(parents=True)
    (theirs / "data" / "train.jsonl").write_text('{"prompt": "mine"}\n')
    with pytest.raises(HegelionError, match="did not write"):
        resolve_data(parquet, theirs)
    assert (theirs / "data" / "train.jsonl").read_text() == '{"prompt": "mine"}\n'
    assert sorted(p.name for p in (theirs / "data").iterdir()) == ["train.jsonl"]


def test_an_unreachable_hub_dataset_is_one_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(HegelionError) as caught:
        resolve_data(Path("hf:no-such-owner/no-such-dataset"), tmp_path)
    assert "could not read the Hugging Face dataset" in str(caught.value)
    assert not (tmp_path / "data" / "train.jsonl").exists()
