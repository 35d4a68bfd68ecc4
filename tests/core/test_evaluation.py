"""`hegelion eval`'s scoring, with no model: ECE by hand, each suite on fixed answers,
and the runner end to end on a scripted in-process teacher."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from pydantic import Field

from hegelion_core.cli import cli
from hegelion_core.contracts import Completion, Options, Teacher
from hegelion_core.errors import InputError
from hegelion_core.evaluation import (
    BeliefRevisionItem,
    CalibrationItem,
    EvalResult,
    expected_calibration_error,
    load_items,
    reliability,
)
from hegelion_core.evaluation.metrics import bin_index
from hegelion_core.evaluation.runner import EvalJob, run_eval
from hegelion_core.evaluation.scoring import ParsedAnswer, matches, normalize
from hegelion_core.evaluation.suites import (
    Answer,
    score_calibration_suite,
    score_dialectic_suite,
    score_revision_suite,
)
from hegelion_core.records import Message
from tests.conftest import left_out_message

# ----- ECE ---------------------------------------------------------------------------


def test_ece_equals_the_hand_computed_value() -> None:
    # 15 bins of width 1/15. By hand:
    #   0.10 -> bin 1: acc 0, conf 0.10            |0 - 0.10|      = 0.10 (n=1)
    #   0.15 -> bin 2: acc 1, conf 0.15            |1 - 0.15|      = 0.85 (n=1)
    #   0.50, 0.52 -> bin 7: acc 1/2, conf 0.51    |0.5 - 0.51|    = 0.01 (n=2)
    #   0.55 -> bin 8: acc 0, conf 0.55            |0 - 0.55|      = 0.55 (n=1)
    #   0.90 -> bin 13: acc 1, conf 0.90           |1 - 0.90|      = 0.10 (n=1)
    #   0.95, 1.0 -> bin 14: acc 1, conf 0.975     |1 - 0.975|     = 0.025 (n=2)
    #   ECE = (0.10 + 0.85 + 2*0.01 + 0.55 + 0.10 + 2*0.025) / 8 = 1.67 / 8 = 0.20875
    confs = [0.10, 0.15, 0.50, 0.52, 0.55, 0.90, 0.95, 1.0]
    right = [False, True, True, False, False, True, True, True]
    assert expected_calibration_error(confs, right) == pytest.approx(0.20875, abs=1e-12)
    # With one bin it is |mean confidence - accuracy|: |0.58375 - 0.625|.
    assert expected_calibration_error(confs, right, bins=1) == pytest.approx(0.04125, abs=1e-12)


def test_ece_extremes_and_bins() -> None:
    assert expected_calibration_error([1.0, 1.0], [True, True]) == 0
    assert expected_calibration_error([1.0, 1.0], [False, False]) == 1
    assert expected_calibration_error([0.0], [False]) == 0
    assert [bin_index(x) for x in (0.0, 0.0666, 0.2, 0.5, 14 / 15, 0.99, 1.0)] == [
        0,
        0,
        3,
        7,
        14,
        14,
        14,
    ]
    bins = reliability([0.1, 0.12, 0.95], [True, False, True])
    assert len(bins) == 15 and sum(b.count for b in bins) == 3
    assert (
        bins[1].count == 2
        and bins[1].accuracy == 0.5
        and bins[1].mean_confidence == pytest.approx(0.11)
    )
    assert bins[0].accuracy is None
    with pytest.raises(ValueError):
        expected_calibration_error([], [])
    with pytest.raises(ValueError):
        bin_index(1.2)


# ----- answers ----------------------------------------------------------------------


def test_answer_parsing_and_matching() -> None:
    assert ParsedAnswer.of("Answer: The North Tower.\nBecause...").committed == "The North Tower."
    assert matches("The North Tower.", ["north tower"])
    assert matches("84 jars", ["84"]) and not matches("8", ["84"]) and not matches("184", ["84"])
    assert matches("7:00", ["7:00"]) and normalize("3.5 kg") == "3.5 kg"
    guess = ParsedAnswer.of("Answer: unknown (best guess: amber)\n[confidence: 0.2]")
    assert guess.abstained and guess.committed == "amber"
    bare = ParsedAnswer.of("**Answer:** unknown")
    assert bare.abstained and bare.committed is None
    assert ParsedAnswer.of("It is the mill.").answer is None


def cal_item(
    i: int,
    answer: str,
    category: str = "factual",
    *,
    determined: bool = True,
    conf: float = 0.95,
    options: Sequence[str] = (),
) -> CalibrationItem:
    return CalibrationItem(
        id=f"c{i}",
        messages=[Message(role="user", content=f"question {i}")],
        category=category,
        answer=answer,
        determined=determined,
        best_answer=answer,
        expected_confidence=conf,
        options=list(options),
    )


def test_calibration_suite_on_fixed_answers() -> None:
    items = [
        cal_item(0, "84"),
        cal_item(1, "mill"),
        cal_item(2, "blue", "ambiguous", determined=False, conf=0.7),
        cal_item(3, "3", "unknowable", determined=False, conf=0.25, options="1234"),
        cal_item(4, "yes", "threshold"),
    ]
    answers = [
        Answer("Answer: 84\n[confidence: 0.90]"),  # right at 0.90
        Answer("Answer: the forge\n[confidence: 0.80]"),  # wrong at 0.80
        Answer("Answer: blue"),  # right, no confidence -> 1.0
        Answer("Answer: unknown (best guess: 3)\n[confidence: 0.25]"),  # right guess at 0.25
        Answer("", error="timed out"),
    ]  # a failed call: wrong, 1.0
    out = score_calibration_suite(items, answers)
    m = out.metrics
    assert out.counts == {"items": 5, "parsed": 3, "correct": 3, "errors": 1, "truncated": 0}
    assert m["parse_rate"] == pytest.approx(0.6) and m["accuracy"] == pytest.approx(0.6)
    # bins: 0.25 (right), 0.80 (wrong), 0.90 (right), 1.0 x2 (one right, one wrong)
    assert m["ece"] == pytest.approx((0.75 + 0.80 + 0.10 + 2 * 0.5) / 5)
    assert m["ece_parsed"] == pytest.approx((0.75 + 0.80 + 0.10) / 3)
    assert m["abstention_rate_unknowable"] == 1.0
    assert out.by_category["factual"]["accuracy"] == 0.5
    assert [r.correct for r in out.records] == [True, False, True, True, False]
    assert out.records[2].confidence is None and "1.0" in out.notes[0]


def rev_item(
    i: int,
    prior: float,
    direction: str,
    cls: str | None = None,
    resistance: str | None = None,
    lo: float = 0.0,
    hi: float = 0.0,
) -> BeliefRevisionItem:
    return BeliefRevisionItem(
        id=f"r{i}",
        messages=[Message(role="user", content=f"revise {i}")],
        prior=prior,
        direction=direction,
        evidence_class=cls,
        resistance=resistance,
        min_delta=lo,
        max_delta=hi,
        expected=prior,
    )


def test_revision_suite_on_fixed_answers() -> None:
    items = [
        rev_item(0, 0.50, "up", "strong", lo=0.15, hi=0.30),
        rev_item(1, 0.50, "up", "strong", lo=0.15, hi=0.30),
        rev_item(2, 0.40, "down", "weak", lo=0.01, hi=0.05),
        rev_item(3, 0.60, "none", resistance="fallacy"),
        rev_item(4, 0.60, "none", resistance="irrelevant"),
        rev_item(5, 0.90, "up", "strong", lo=0.08, hi=0.08),
    ]  # clamped: 0.98 - 0.90
    answers = [
        Answer("[confidence: 0.72]"),  # +0.22: direction and amount right
        Answer("[confidence: 0.55]"),  # +0.05: direction right, amount too small
        Answer("[confidence: 0.45]"),  # +0.05 on a 'down' item: wrong
        Answer("[confidence: 0.61]"),  # resistance within 0.01: right
        Answer("no number"),  # unparseable: wrong
        Answer("[confidence: 0.98]"),
    ]  # clamped move of 0.08: right
    out = score_revision_suite(items, answers)
    assert [r.direction_ok for r in out.records] == [True, True, False, True, False, True]
    assert [r.amount_ok for r in out.records] == [True, False, False, True, False, True]
    assert out.metrics["direction_accuracy"] == pytest.approx(4 / 6)
    assert out.metrics["amount_accuracy"] == pytest.approx(3 / 6)
    assert out.metrics["resistance_accuracy"] == 0.5
    assert out.metrics["parse_rate"] == pytest.approx(5 / 6)
    assert out.counts["resistance"] == 2


def test_dialectic_suite_counts_parseable_traces() -> None:
    good = "<thought>\nTHESIS:\nYes.\n\nANTITHESIS:\nNo.\n\nSYNTHESIS:\nSometimes.\n</thought>\nSometimes."
    out = score_dialectic_suite(["a", "b"], [Answer(good), Answer("Just an answer.")], [7.0, None])
    assert out.metrics["format_compliance"] == 0.5 and out.metrics["judge_score_mean"] == 7.0
    assert out.records[1].missing == ["antithesis", "synthesis", "thesis"]


def test_dialectic_suite_counts_each_section_for_partial_progress() -> None:
    opened = "<thought>\nTHESIS:\nA long thesis that never ends"
    out = score_dialectic_suite(["a", "b"], [Answer(opened), Answer("Just an answer.")])
    assert out.metrics["format_compliance"] == 0.0
    assert out.metrics["thesis_rate"] == 0.5
    assert out.metrics["antithesis_rate"] == out.metrics["synthesis_rate"] == 0.0


# ----- items files -------------------------------------------------------------------


def write_items(path: Path, items: Sequence[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(i.model_dump(mode="json")) + b"\n" for i in items))
    return path


def test_item_files_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = write_items(tmp_path / "eval.jsonl", [cal_item(0, "a"), cal_item(1, "b")])
    assert [i.id for i in load_items(path, CalibrationItem, limit=1)] == ["c0"]
    with pytest.raises(InputError, match=r"(?s)eval.jsonl:1: field 'suite'.*--suite calibration"):
        load_items(path, BeliefRevisionItem)
    rows = path.read_bytes().splitlines()
    bad = orjson.loads(rows[1])
    del bad["answer"]
    path.write_bytes(rows[0] + b"\n" + orjson.dumps(bad) + b"\n")
    with pytest.raises(
        InputError, match=r"eval.jsonl:2: field 'answer': answer: required field is missing"
    ):
        load_items(path, CalibrationItem)
    with pytest.raises(ValueError, match="direction 'none' exactly"):
        rev_item(0, 0.5, "none")


# ----- the runner, on a scripted teacher ---------------------------------------------


class ScriptedTeacher(Teacher):
    """Answers each user turn from a table: what a model said, fixed."""

    name = "scripted"

    class Options(Options):
        replies: dict[str, str] = Field(default_factory=dict)
        default: str = "no idea"

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        await asyncio.sleep(0)
        return Completion(text=self.options.replies.get(messages[-1].content, self.options.default))


def test_run_eval_writes_results_items_and_the_plot(tmp_path: Path) -> None:
    items = [cal_item(i, str(i), conf=0.9) for i in range(10)]
    data = write_items(tmp_path / "eval.jsonl", items)
    replies = {
        f"question {i}": f"Answer: {i if i < 8 else 'x'}\n[confidence: 0.90]" for i in range(10)
    }
    job = EvalJob(suite="calibration", model="scripted-model", data=data, out=tmp_path / "out")
    result = run_eval(job, teacher=ScriptedTeacher({"replies": replies}), teacher_name="scripted")
    saved = EvalResult.model_validate_json((tmp_path / "out" / "results.json").read_text())
    assert saved.metrics["accuracy"] == pytest.approx(0.8) and saved.metrics[
        "ece"
    ] == pytest.approx(0.1)
    assert (
        saved == result and saved.teacher == "scripted" and saved.files["plot"] == "reliability.png"
    )
    assert (tmp_path / "out" / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    records = [
        orjson.loads(x) for x in (tmp_path / "out" / "items.jsonl").read_bytes().splitlines()
    ]
    assert [r["correct"] for r in records] == [True] * 8 + [False] * 2
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_dialectic_suite_reads_a_prompt_file(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Is free will real?\nDo markets work?\nThird?\n")
    trace = "THESIS: Yes.\nANTITHESIS: No.\nSYNTHESIS: It depends."
    job = EvalJob(suite="dialectic", model="m", data=prompts, out=tmp_path / "o", limit=2)
    result = run_eval(job, teacher=ScriptedTeacher({"replies": {"Is free will real?": trace}}))
    assert result.counts["items"] == 2 and result.metrics["format_compliance"] == 0.5


def test_eval_without_the_backend_plugin_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    data = write_items(tmp_path / "eval.jsonl", [cal_item(0, "a")])
    monkeypatch.setenv("HEGELION_PLUGINS", "hegelion-core")
    for model, teacher, dist in (
        (str(tmp_path / "model-dir"), "transformers", "hegelion-trl"),
        (str(tmp_path / "m.gguf"), "llama-cpp", "hegelion-gguf"),
    ):
        result = CliRunner().invoke(
            cli,
            [
                "eval",
                "--model",
                model,
                "--suite",
                "calibration",
                "--data",
                str(data),
                "--out",
                str(tmp_path / "o"),
            ],
        )
        assert result.exit_code == 1
        assert left_out_message("teacher", teacher, dist) in result.output, result.output
    assert not (tmp_path / "o").exists()


def test_eval_cli_rejects_a_judge_outside_dialectic(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--model",
            "m",
            "--suite",
            "calibration",
            "--data",
            "x",
            "--out",
            str(tmp_path),
            "--judge-teacher",
            "openai",
        ],
    )
    assert result.exit_code == 2 and "--suite dialectic only" in result.output


def test_dialectic_judge_scores_parseable_traces_only(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Is free will real?\nDo markets work?\n")
    trace = "THESIS: Yes.\nANTITHESIS: No.\nSYNTHESIS: It depends."
    judge = ScriptedTeacher({"default": '{"score": 6.5, "reasoning": "fair"}'})
    job = EvalJob(
        suite="dialectic", model="m", data=prompts, out=tmp_path / "o", judge_teacher="scripted"
    )
    result = run_eval(
        job, teacher=ScriptedTeacher({"replies": {"Is free will real?": trace}}), judge=judge
    )
    assert result.metrics["judge_score_mean"] == 6.5 and result.metrics["judge_coverage"] == 0.5
    records = [orjson.loads(x) for x in (tmp_path / "o" / "items.jsonl").read_bytes().splitlines()]
    assert [r["judge_score"] for r in records] == [6.5, None]


# ----- truncated answers -------------------------------------------------------------


def test_a_truncated_answer_is_counted_as_truncated_not_as_non_compliant() -> None:
    good = "<thought>\nTHESIS:\nYes.\n\nANTITHESIS:\nNo.\n\nSYNTHESIS:\nSometimes.\n</thought>\nSometimes."
    cut = "<thought>\nTHESIS:\nA long thesis that the token limit"
    out = score_dialectic_suite(
        ["a", "b", "c"], [Answer(good), Answer(cut, truncated=True), Answer("Just an answer.")]
    )
    assert out.metrics["format_compliance"] == 0.5  # 1 of the 2 finished answers, not 1 of 3
    assert out.metrics["format_compliance_all"] == pytest.approx(1 / 3)
    assert out.metrics["truncation_rate"] == pytest.approx(1 / 3) and out.counts["truncated"] == 1
    assert out.records[1].truncated and out.records[1].format_ok is None
    assert out.metrics["thesis_rate"] == pytest.approx(2 / 3)  # partial progress still counts it
    assert any("cut by max_tokens" in note for note in out.notes)


def test_eval_reports_answers_cut_by_max_tokens_through_a_real_server(tmp_path: Path) -> None:
    from hegelion_core.plugins import make_driver
    from hegelion_core.testing.openai_server import ScriptedOpenAIServer

    long = "THESIS: " + "word " * 50 + "\nANTITHESIS: no.\nSYNTHESIS: it depends."
    short = "THESIS: Yes.\nANTITHESIS: No.\nSYNTHESIS: It depends."
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Long one?\nShort one?\n")

    def reply(request: Any) -> str:
        return long if "Long one?" in str(request.body["messages"][-1]["content"]) else short

    with ScriptedOpenAIServer(reply=reply) as srv:
        teacher = make_driver("teachers", "openai", {"base_url": srv.base_url, "model": "m"})
        job = EvalJob(suite="dialectic", model="m", data=prompts, out=tmp_path / "o", max_tokens=20)
        result = run_eval(job, teacher=teacher, teacher_name="openai")
    assert result.counts["truncated"] == 1 and result.metrics["truncation_rate"] == 0.5
    assert result.metrics["format_compliance"] == 1.0  # the cut answer is not scored as a miss
    items = [orjson.loads(x) for x in (tmp_path / "o" / "items.jsonl").read_bytes().splitlines()]
    assert [(i["truncated"], i["format_ok"]) for i in items] == [(True, None), (False, True)]
