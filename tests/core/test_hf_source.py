"""The `hf` prompt source: real `datasets.load_dataset` on local Parquet, JSON and
save_to_disk data, streaming and not."""

from __future__ import annotations

from itertools import islice

import pytest
from datasets import Dataset, DatasetDict

from hegelion_core.data.prompt_sources.hf import HFPromptSource
from hegelion_core.errors import HegelionError
from hegelion_core.testing import PromptSourceContract

ROWS = [
    {"prompt": f"Question {i}?", "chosen": [{"role": "user", "content": f"Question {i}?"}]}
    for i in range(50)
]


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf") / "train.parquet"
    Dataset.from_list(ROWS).to_parquet(str(path))
    return path


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf") / "ufb"
    messages = [
        {
            "messages": [
                {"role": "user", "content": f"Chat {i}?"},
                {"role": "assistant", "content": "x"},
            ]
        }
        for i in range(20)
    ]
    DatasetDict(
        {"train_prefs": Dataset.from_list(messages), "test_prefs": Dataset.from_list(messages[:5])}
    ).save_to_disk(str(path))
    return path


class TestHFContract(PromptSourceContract):
    @pytest.fixture
    def driver(self, parquet):
        return HFPromptSource({"dataset": str(parquet)})


@pytest.mark.parametrize("streaming", [True, False])
def test_parquet_in_order(parquet, streaming) -> None:
    texts = [
        p.text
        for p in HFPromptSource(
            {"dataset": str(parquet), "streaming": streaming, "limit": 3}
        ).iter_prompts()
    ]
    assert texts == ["Question 0?", "Question 1?", "Question 2?"]


def test_json_lines_file(tmp_path) -> None:
    path = tmp_path / "d.jsonl"
    Dataset.from_list([{"instruction": "Why?"}, {"instruction": "How?"}]).to_json(str(path))
    assert [p.text for p in HFPromptSource({"dataset": str(path)}).iter_prompts()] == [
        "Why?",
        "How?",
    ]


def test_saved_dataset_dict_split_and_messages_column(saved) -> None:
    prompts = list(HFPromptSource({"dataset": str(saved), "split": "test_prefs"}).iter_prompts())
    assert [p.text for p in prompts] == [f"Chat {i}?" for i in range(5)]
    assert prompts[0].source == f"{saved}:test_prefs"


def test_unknown_split_lists_the_real_ones(saved) -> None:
    with pytest.raises(HegelionError) as info:
        list(
            HFPromptSource({"dataset": str(saved)}).iter_prompts()
        )  # default "train" does not exist
    assert (
        "has no split 'train'. Its splits are: train_prefs, test_prefs. Choose one with --split"
        in str(info.value)
    )


def test_unknown_split_of_a_file(parquet) -> None:
    with pytest.raises(HegelionError, match="Its splits are: train"):
        list(HFPromptSource({"dataset": str(parquet), "split": "validation"}).iter_prompts())


@pytest.mark.parametrize("streaming", [True, False])
def test_seeded_shuffle_is_deterministic_and_shuffles(parquet, streaming) -> None:
    def first(seed: int) -> list[str]:
        opts = {
            "dataset": str(parquet),
            "seed": seed,
            "streaming": streaming,
            "shuffle_buffer": 100,
        }
        return [p.text for p in islice(HFPromptSource(opts).iter_prompts(), 10)]

    assert first(42) == first(42)
    assert first(42) != first(7)
    assert first(42) != [f"Question {i}?" for i in range(10)]


def test_named_column(parquet) -> None:
    texts = [
        p.text
        for p in islice(
            HFPromptSource({"dataset": str(parquet), "column": "chosen"}).iter_prompts(), 2
        )
    ]
    assert texts == ["Question 0?", "Question 1?"]
    with pytest.raises(Exception, match="no column 'missing'"):
        list(HFPromptSource({"dataset": str(parquet), "column": "missing"}).iter_prompts())


def test_iter_unsettled_is_iter_prompts_minus_the_settled(parquet) -> None:
    source = HFPromptSource({"dataset": str(parquet), "limit": 7})
    every = list(source.iter_prompts())
    done = {int(p.id, 16) for p in every[:3]}
    fast = list(source.iter_unsettled(lambda key: key in done))
    assert [p.model_dump() for p in fast] == [p.model_dump() for p in every[3:]]
