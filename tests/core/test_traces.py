"""Files from the earlier tool read as they are; broken phases are never data."""

from __future__ import annotations

from pathlib import Path

import pytest

from hegelion_core.data.traces import InvalidTrace, ReadStats, iter_records, record_from_dict
from hegelion_core.records import prompt_id

THESIS = "THESIS: Consciousness as Computational Process\n\nMachines can possess consciousness."
ANTITHESIS = (
    "ANTITHESIS: The Hard Problem\n\nCONTRADICTION: The Explanatory Gap\n"
    "EVIDENCE: Functionalism cannot explain subjective experience."
)
SYNTHESIS = (
    "SYNTHESIS: Emergent Network Property\n\nConsciousness needs specific dynamics.\n\n"
    "**RESEARCH_PROPOSAL: Comparative Architecture Study**\nBuild two systems.\n\n"
    "**TESTABLE_PREDICTION**: Neuromorphic systems generalise better."
)
RESULT = {
    "query": "Can machines possess genuine consciousness?",
    "mode": "synthesis",
    "thesis": THESIS,
    "antithesis": ANTITHESIS,
    "synthesis": SYNTHESIS,
    "contradictions": [
        {"description": "The Explanatory Gap", "evidence": "Zombies are conceivable."}
    ],
    "research_proposals": [
        {"description": "Comparative study", "testable_prediction": "Neuromorphic wins"}
    ],
    "metadata": {
        "source": "claude-sonnet-4",
        "backend_provider": "anthropic",
        "backend_model": "claude-sonnet-4",
    },
    "trace": {
        "thesis": THESIS,
        "contradictions_found": 1,
        "research_proposals": ["x | Prediction: y"],
    },
}


def test_earlier_generator_row_with_full_result_dict() -> None:
    row = {
        "instruction": RESULT["query"],
        "input": "",
        "output": f"<thought>\nTHESIS:\n{THESIS}\n\nANTITHESIS:\n{ANTITHESIS}\n\nSYNTHESIS:\n{SYNTHESIS}\n</thought>\n{SYNTHESIS}",
        "system": "You are a dialectical reasoning engine.",
        "hegelion_trace": RESULT,
    }
    record = record_from_dict(row)
    assert record.instruction == RESULT["query"]
    assert record.hegelion_trace.thesis == THESIS
    assert record.hegelion_trace.contradictions[0].description == "The Explanatory Gap"
    assert record.hegelion_trace.research_proposals[0].testable_prediction == "Neuromorphic wins"
    assert record.output == row["output"]  # the user's text is kept as is
    assert (record.teacher, record.model) == ("anthropic", "claude-sonnet-4")
    assert record.prompt_id == prompt_id(RESULT["query"])
    assert record.created_at is None  # not recorded by the earlier tool: not invented


def test_earlier_result_dump_with_top_level_phases() -> None:
    record = record_from_dict(RESULT)
    assert record.instruction == RESULT["query"]
    assert record.hegelion_trace.synthesis == SYNTHESIS
    assert record.output.startswith("<thought>")


def test_earlier_agent_log_wrapped_in_result() -> None:
    step = {"observation": "tests fail", "action": "fix the import", "result": RESULT}
    record = record_from_dict(step)
    assert record.hegelion_trace.antithesis == ANTITHESIS
    assert record.model_extra["action"] == "fix the import"


def test_kimi_cli_placeholder_row_is_recovered_from_its_raw_trace() -> None:
    raw = (
        "<thought>\n**THESIS**: Remote work raises output.\n\n**ANTITHESIS**: Surveys are self-reported.\n\n"
        "**SYNTHESIS**: It helps focused work.\n</thought>\nRemote work helps focused work."
    )
    row = {
        "instruction": "Does remote work raise output?",
        "input": "",
        "output": raw,
        "hegelion_trace": {
            "query": "Does remote work raise output?",
            "mode": "synthesis",
            "thesis": "[Generated via CLI]",
            "antithesis": "[Generated via CLI]",
            "synthesis": raw,
            "contradictions": [],
            "research_proposals": [],
            "metadata": {"source": "kimi_cli"},
        },
    }
    record = record_from_dict(row)
    assert record.hegelion_trace.thesis == "Remote work raises output."
    assert record.hegelion_trace.answer == "Remote work helps focused work."
    assert record.source == "kimi_cli"


def test_kimi_cli_placeholder_row_without_a_trace_is_rejected() -> None:
    row = {
        "instruction": "Q?",
        "output": "Just an answer.",
        "hegelion_trace": {
            "query": "Q?",
            "thesis": "[Generated via CLI]",
            "antithesis": "[Generated via CLI]",
            "synthesis": "Just an answer.",
        },
    }
    with pytest.raises(InvalidTrace) as info:
        record_from_dict(row)
    assert info.value.reason == "thesis missing"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"hello": "world"}, "not a trace record"),
        ({"thesis": "T", "antithesis": "A", "synthesis": "S"}, "instruction missing"),
        (
            {
                "query": "Q",
                "thesis": "T",
                "antithesis": "A",
                "synthesis": "[Synthesis generation failed: rate limit]",
            },
            "synthesis missing",
        ),
        ({"query": "Q", "thesis": "T", "synthesis": "S"}, "antithesis missing"),
    ],
)
def test_invalid_rows_have_countable_reasons(row: dict, reason: str) -> None:
    with pytest.raises(InvalidTrace) as info:
        record_from_dict(row)
    assert info.value.reason == reason


def test_current_rows_round_trip(example_traces: Path) -> None:
    stats = ReadStats()
    records = list(iter_records(example_traces, stats))
    assert len(records) == stats.valid == stats.lines == 12
    for record in records:
        assert record_from_dict(record.model_dump(mode="json")) == record
