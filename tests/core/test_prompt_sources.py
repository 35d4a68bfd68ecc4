from __future__ import annotations

import pytest

from hegelion_core.data.prompt_sources import NoPromptColumn, extract_prompt
from hegelion_core.data.prompt_sources.file import FilePromptSource
from hegelion_core.errors import InputError
from hegelion_core.records import prompt_id
from hegelion_core.testing import PromptSourceContract
from tests.conftest import EXAMPLES, write_jsonl


class TestFileSourceContract(PromptSourceContract):
    @pytest.fixture
    def driver(self):
        return FilePromptSource({"path": EXAMPLES / "prompts.txt"})


def test_txt_one_prompt_per_line(tmp_path) -> None:
    p = tmp_path / "p.txt"
    p.write_text("First?\n\n  Second?  \nThird?\n")
    prompts = list(FilePromptSource({"path": p}).iter_prompts())
    assert [x.text for x in prompts] == ["First?", "Second?", "Third?"]
    assert prompts[1].id == prompt_id("Second?") and prompts[1].source == "p.txt:3"
    assert len(list(FilePromptSource({"path": p, "limit": 2}).iter_prompts())) == 2


def test_jsonl_column_detection(tmp_path) -> None:
    p = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"prompt": "A?"},
            {"instruction": "B?"},
            {"question": "C?"},
            {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "D?"}]},
        ],
    )
    assert [x.text for x in FilePromptSource({"path": p}).iter_prompts()] == [
        "A?",
        "B?",
        "C?",
        "D?",
    ]


def test_jsonl_named_column_and_its_errors(tmp_path) -> None:
    p = write_jsonl(tmp_path / "p.jsonl", [{"text": "A?"}, {"other": "B?"}])
    source = FilePromptSource({"path": p, "column": "text"})
    with pytest.raises(InputError) as info:
        list(source.iter_prompts())
    assert str(info.value).startswith(f"{p}:2: field 'text': no column 'text'; columns are: other")


def test_no_prompt_column_says_how_to_fix() -> None:
    with pytest.raises(NoPromptColumn, match="name one with --column"):
        extract_prompt({"chosen": "x"})


def test_missing_prompt_file(tmp_path) -> None:
    with pytest.raises(InputError, match="prompt file not found"):
        list(FilePromptSource({"path": tmp_path / "nope.txt"}).iter_prompts())


# ----- the resume fast path: hash the text, build no Prompt for what is settled ---------


@pytest.mark.parametrize(
    "text",
    [
        "Is water wet?",
        "  spaced \t out\n question ",
        "ﬁne ligature and ＦＵＬＬ width",
        "naïve café, ½ cup",
        "emoji 🙂 and\u00a0no-break space",
    ],
)
def test_prompt_key_is_the_prompt_id(text: str) -> None:
    from hegelion_core.data.prompt_sources import prompt_key

    key = prompt_key(text)
    assert key == int(prompt_id(text), 16) and f"{key:016x}" == prompt_id(text)


@pytest.mark.parametrize("kind", ["txt", "jsonl"])
def test_iter_unsettled_is_iter_prompts_minus_the_settled(tmp_path, kind: str) -> None:
    texts = [f"question {i} ﬁ" if i % 3 else f"question {i}" for i in range(40)]
    if kind == "txt":
        path = tmp_path / "p.txt"
        path.write_text("".join(f"{t}\n" for t in texts))
    else:
        path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": t} for t in texts])
    source = FilePromptSource({"path": path, "limit": 30})
    every = list(source.iter_prompts())
    done = {int(p.id, 16) for p in every[::2]}
    asked: list[int] = []

    def settled(key: int) -> bool:
        asked.append(key)
        return key in done

    fast = list(source.iter_unsettled(settled))
    assert [p.model_dump() for p in fast] == [p.model_dump() for p in every[1::2]]
    assert asked == [int(p.id, 16) for p in every]  # every prompt asked about, in order, once
