"""Each built-in formatter: its rows' shape, its options, and the contract suite."""

from __future__ import annotations

import pytest

from hegelion_core.contracts import SkipRecord
from hegelion_core.data.formatters.chat import ChatFormatter
from hegelion_core.data.formatters.dpo import DPOFormatter
from hegelion_core.data.formatters.mlx import MLXFormatter
from hegelion_core.data.formatters.scu import SCUFormatter
from hegelion_core.data.formatters.sft import SFTFormatter
from hegelion_core.data.formatters.simplex import SimplexFormatter, render_context
from hegelion_core.errors import OptionsError
from hegelion_core.records import Belief, HiveContext, SimplexContext
from hegelion_core.testing import FormatterContract, sample_records

PLAIN, WITH_INPUT, RICH = sample_records()


@pytest.mark.parametrize(
    "cls", [SFTFormatter, ChatFormatter, DPOFormatter, SCUFormatter, MLXFormatter, SimplexFormatter]
)
class TestBuiltinContract(FormatterContract):
    @pytest.fixture
    def driver(self, cls):
        return cls()


def test_sft_row_keeps_the_earlier_layout() -> None:
    (row,) = SFTFormatter().format(WITH_INPUT)
    assert row == {
        "instruction": WITH_INPUT.instruction,
        "input": WITH_INPUT.input,
        "output": WITH_INPUT.output,
        "system": WITH_INPUT.system,
    }
    assert row["output"].startswith("<thought>") and row["output"].endswith(
        WITH_INPUT.hegelion_trace.answer
    )


def test_sft_synthesis_only() -> None:
    (row,) = SFTFormatter({"synthesis_only": True}).format(PLAIN)
    assert row["output"] == PLAIN.hegelion_trace.synthesis
    assert "<thought>" not in row["output"]


def test_chat_rows() -> None:
    (row,) = ChatFormatter({"system": "Be brief."}).format(WITH_INPUT)
    roles = [m["role"] for m in row["messages"]]
    assert roles == ["system", "user", "assistant"]
    assert row["messages"][0]["content"] == "Be brief."
    assert row["messages"][1]["content"] == f"{WITH_INPUT.instruction}\n\n{WITH_INPUT.input}"
    assert row["messages"][2]["content"] == WITH_INPUT.output
    (bare,) = ChatFormatter({"include_system": False}).format(PLAIN)
    assert [m["role"] for m in bare["messages"]] == ["user", "assistant"]


@pytest.mark.parametrize(("side", "expected"), [("thesis", 1), ("antithesis", 1), ("both", 2)])
def test_dpo_synthesis_is_chosen(side: str, expected: int) -> None:
    rows = list(DPOFormatter({"rejected": side}).format(PLAIN))
    assert len(rows) == expected
    trace = PLAIN.hegelion_trace
    for row in rows:
        assert row["chosen"] == trace.synthesis and row["prompt"] == PLAIN.prompt
    rejected = [r["rejected"] for r in rows]
    wanted = {
        "thesis": [trace.thesis],
        "antithesis": [trace.antithesis],
        "both": [trace.thesis, trace.antithesis],
    }
    assert rejected == wanted[side]


def test_dpo_conversational_form() -> None:
    (row,) = DPOFormatter({"conversational": True}).format(PLAIN)
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["chosen"] == [{"role": "assistant", "content": PLAIN.hegelion_trace.synthesis}]
    assert row["rejected"] == [{"role": "assistant", "content": PLAIN.hegelion_trace.thesis}]


def test_dpo_rejects_a_misspelled_option() -> None:
    with pytest.raises(OptionsError, match="rejectd: unknown field"):
        DPOFormatter({"rejectd": "both"})
    with pytest.raises(OptionsError, match="rejected"):
        DPOFormatter({"rejected": "synthesis"})


def test_scu_renders_chatml() -> None:
    (row,) = SCUFormatter().format(PLAIN)
    assert row["text"] == (
        f"<|im_start|>system\n{PLAIN.system}<|im_end|>\n"
        f"<|im_start|>user\n{PLAIN.instruction}<|im_end|>\n"
        f"<|im_start|>assistant\n{PLAIN.output}<|im_end|>\n"
    )


def test_mlx_defaults_to_a_split_sized_for_mlx_batches() -> None:
    assert MLXFormatter.default_split is not None
    assert MLXFormatter.default_split.min_rows == 4
    assert list(MLXFormatter().format(PLAIN)) == list(ChatFormatter().format(PLAIN))


def test_simplex_needs_a_real_confidence() -> None:
    with pytest.raises(SkipRecord, match="no confidence"):
        list(SimplexFormatter().format(PLAIN))  # PLAIN has no confidence: none is invented


def test_simplex_row_from_a_derived_context() -> None:
    (row,) = SimplexFormatter().format(RICH)
    system, user, assistant = (m["content"] for m in row["messages"])
    assert "70%" in system and "Divine" in system
    assert user.startswith(
        "<context>\nRecent experiences:\n- Considered: Nuclear power is low-carbon"
    )
    assert "- Challenged by: Cost" in user
    assert "Known facts:\n- Plants ran over budget." in user
    assert "Current beliefs (confidence > 30%):\n- (none)" in user
    assert user.endswith(RICH.instruction)
    assert assistant.endswith("\n\n[confidence: 0.70]")
    assert assistant.startswith(RICH.hegelion_trace.final_answer)


def test_simplex_context_thresholds_and_hive() -> None:
    ctx = SimplexContext(
        experiences=["Saw the test fail twice."],
        facts=["The CI runner has 2 cores."],
        beliefs=[
            Belief(text="The test is flaky", confidence=0.8),
            Belief(text="It is the cache", confidence=0.25),
        ],
        hive=HiveContext(
            name="build-team",
            experiences=["Flakes rose after the upgrade."],
            knowledge=["Upgrade changed the scheduler."],
            beliefs=[
                Belief(text="Scheduler causes flakes", confidence=0.6),
                Belief(text="Disk is full", confidence=0.4),
            ],
        ),
    )
    text = render_context(ctx)
    assert "- The test is flaky (80%)" in text
    assert "It is the cache" not in text  # below the 30% Anima threshold
    assert '<hive name="build-team">' in text and text.endswith("</hive>")
    assert "Hive beliefs (confidence > 50%):\n- Scheduler causes flakes (60%)" in text
    assert "Disk is full" not in text  # below the 50% hive threshold
    assert "<hive" not in render_context(ctx, include_hive=False)

    record = RICH.model_copy(update={"context": ctx, "confidence": 0.82})
    (row,) = SimplexFormatter().format(record)
    assert row["messages"][1]["content"].startswith(text)
    assert row["messages"][2]["content"].endswith("[confidence: 0.82]")


@pytest.mark.parametrize(
    "cls", [SFTFormatter, ChatFormatter, DPOFormatter, SCUFormatter, MLXFormatter, SimplexFormatter]
)
def test_a_truncated_record_is_skipped_as_truncated(cls) -> None:
    record = RICH.model_copy(update={"truncated": True, "confidence": 0.8})
    with pytest.raises(SkipRecord) as info:
        list(cls().format(record))
    assert info.value.reason == "truncated"
    assert list(cls().format(record.model_copy(update={"truncated": False})))
