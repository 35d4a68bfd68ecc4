from __future__ import annotations

import pytest
from pydantic import ValidationError

from hegelion_core.data.parsing import parse_trace
from hegelion_core.records import DialecticTrace, Prompt, TraceRecord, is_placeholder, prompt_id


def test_prompt_id_ignores_spacing_and_unicode_forms() -> None:
    assert prompt_id("What is  justice?\n") == prompt_id(" What is justice?")
    assert prompt_id("ﬁne") == prompt_id("fine")  # NFKC folds the ligature
    assert prompt_id("What is justice?") != prompt_id("What is justice")
    assert len(prompt_id("x")) == 16


def test_prompt_id_includes_input() -> None:
    assert prompt_id("Summarise.", "text A") != prompt_id("Summarise.", "text B")
    assert prompt_id("Summarise.", "") == prompt_id("Summarise.")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "[Generated via CLI]",
        "[Synthesis generation failed: timeout after 60s]",
        "[Antithesis generation failed]",
        "[error: 429]",
        "[placeholder]",
        "None",
        " n/a ",
        "TODO",
    ],
)
def test_placeholders(text: str) -> None:
    assert is_placeholder(text)


@pytest.mark.parametrize(
    "text", ["No.", "[1] Smith argues the opposite.", "Generated via CLI is a phrase."]
)
def test_real_text_is_not_a_placeholder(text: str) -> None:
    assert not is_placeholder(text)


def test_trace_rejects_placeholder_phase() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        DialecticTrace(thesis="[Generated via CLI]", antithesis="a", synthesis="s")


def test_placeholder_answer_falls_back_to_the_synthesis() -> None:
    trace = DialecticTrace(
        thesis="T.", antithesis="A.", synthesis="S.", answer="[Generated via CLI]"
    )
    assert trace.answer is None and trace.final_answer == "S."


def test_build_renders_a_parseable_output() -> None:
    trace = DialecticTrace(thesis="T.", antithesis="A.", synthesis="S.", answer="Final.")
    record = TraceRecord.build("Q?", trace, teacher="t")
    assert record.output.startswith("<thought>\n") and record.output.endswith("</thought>\nFinal.")
    parsed = parse_trace(record.output)
    assert (parsed.thesis, parsed.antithesis, parsed.synthesis, parsed.answer) == (
        "T.",
        "A.",
        "S.",
        "Final.",
    )
    assert record.prompt_id == prompt_id("Q?")
    assert record.created_at is not None and record.hegelion_version


def test_record_keeps_unknown_user_fields() -> None:
    trace = DialecticTrace(thesis="T.", antithesis="A.", synthesis="S.")
    data = TraceRecord.build("Q?", trace).model_dump(mode="json") | {"my_tag": "keep"}
    assert TraceRecord.model_validate(data).model_dump(mode="json")["my_tag"] == "keep"


def test_prompt_gets_id_from_text() -> None:
    assert Prompt(text="Why?").id == prompt_id("Why?")
    assert Prompt(text="Why?", id="custom").id == "custom"
