"""The generators: deterministic, varied, and every label backed by its ground truth."""

from __future__ import annotations

import re
from collections import Counter
from itertools import islice

import orjson
import pytest

from hegelion_core.data.formatters.simplex import parse_confidence
from hegelion_core.evaluation import (
    BeliefRevisionItem,
    CalibrationItem,
    expected_calibration_error,
    parse_item,
)
from hegelion_core.evaluation.items import CONFIDENCE_CEILING, CONFIDENCE_FLOOR, EVIDENCE_RANGES
from hegelion_core.evaluation.scoring import score_calibration, score_revision
from hegelion_simplex.generate import STAGES, generate, templates

N = 3000


def items(stage: str, n: int = N, seed: int = 0):
    return [(ex, parse_item(ex.item(f"{stage}-{i}"))) for i, ex in enumerate(generate(stage, n, seed))]


@pytest.mark.parametrize("stage", STAGES)
def test_same_seed_same_rows_and_seeds_differ(stage: str) -> None:
    a = [orjson.dumps(e.row()) for e in generate(stage, 200, 7)]
    b = [orjson.dumps(e.row()) for e in generate(stage, 200, 7)]
    c = [orjson.dumps(e.row()) for e in generate(stage, 200, 8)]
    assert a == b
    assert sum(x != y for x, y in zip(a, c)) > 190


@pytest.mark.parametrize("stage", STAGES)
def test_rows_are_chat_messages_ending_in_a_confidence(stage: str) -> None:
    for ex in generate(stage, 500, 1):
        row = ex.row()
        assert list(row) == ["messages"]
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        assert re.search(r"\[confidence: [01]\.\d\d\]$", row["messages"][2]["content"])


@pytest.mark.parametrize("stage", STAGES)
def test_every_template_is_used_and_rows_rarely_repeat(stage: str) -> None:
    exs = list(generate(stage, 5000, 2))
    assert {e.template for e in exs} == set(templates(stage))
    rows = Counter(orjson.dumps(e.row()) for e in exs)
    assert sum(c - 1 for c in rows.values()) / len(exs) < 0.01


@pytest.mark.parametrize("stage", ["context", "calibration"])
def test_calibration_labels_are_what_the_scorer_reads(stage: str) -> None:
    for ex, item in items(stage):
        assert isinstance(item, CalibrationItem)
        score = score_calibration(item, ex.assistant)
        assert score.confidence == pytest.approx(item.expected_confidence)
        if item.determined:  # the reference answer is the ground truth
            assert score.correct, (ex.user, ex.assistant, item.answer)
        if item.category == "unknowable":
            assert score.abstained and item.expected_confidence <= 0.34
            assert item.answer in item.options and item.best_answer in item.options


@pytest.mark.parametrize("stage", ["context", "calibration"])
def test_reference_answers_are_calibrated_against_the_drawn_truth(stage: str) -> None:
    """The labels' own ECE is small: confidences match how often the answers are right."""
    pairs = items(stage, 20_000, 3)
    confs = [item.expected_confidence for _, item in pairs]
    right = [score_calibration(item, ex.assistant).correct for ex, item in pairs]
    assert expected_calibration_error(confs, right) < 0.03
    # ...and it is not calibrated by accident: claiming certainty is far off.
    assert expected_calibration_error([0.99] * len(right), right) > 0.15


def test_calibration_mix_and_confidence_levels() -> None:
    pairs = items("calibration", 10_000, 4)
    cats = Counter(item.category for _, item in pairs)
    shares = {k: v / len(pairs) for k, v in cats.items()}
    assert shares["factual"] == pytest.approx(0.35, abs=0.03)
    assert shares["ambiguous"] == pytest.approx(0.25, abs=0.03)
    assert shares["unknowable"] == pytest.approx(0.20, abs=0.03)
    assert shares["threshold"] == pytest.approx(0.20, abs=0.03)
    by = {c: [i.expected_confidence for _, i in pairs if i.category == c] for c in cats}
    assert min(by["factual"]) >= 0.9 and min(by["threshold"]) >= 0.9
    assert 0.55 <= min(by["ambiguous"]) and max(by["ambiguous"]) <= 0.85
    assert max(by["unknowable"]) <= 0.34


def test_threshold_answers_follow_the_numbers_in_the_prompt() -> None:
    for ex, item in items("calibration", 4000, 5):
        if item.template == "threshold_settled":
            p = int(re.search(r" at (\d+)%", ex.user).group(1))
            assert item.answer == ("yes" if p >= 70 else "no")
        if item.template == "threshold_level":
            p = int(re.search(r" at (\d+)%", ex.user).group(1))
            assert item.answer == (
                "divine" if p > 70 else "hive" if p > 50 else "anima" if p > 30 else "none"
            )
        if item.template == "arith_mul":
            a, b = map(int, re.search(r"holds (\d+) .* in (\d+) such", ex.user).groups())
            assert item.answer == str(a * b)


def test_context_answers_are_checkable_against_the_context() -> None:
    seen = Counter()
    for ex, item in items("context", 3000, 6):
        assert ex.user.startswith("<context>\n") and "</context>" in ex.user
        ctx = ex.user.split("\n\nQuestion:")[0]
        seen[item.template] += 1
        if item.category == "factual":
            assert item.answer in ctx
        if item.template in ("ctx_belief", "ctx_hive_belief"):
            statement = ex.user.split("Is it true that ", 1)[1].rstrip("?")
            percent = re.search(re.escape(statement) + r" \((\d+)%\)", ctx)
            assert percent, statement
            p = int(percent.group(1)) / 100
            assert item.expected_confidence == pytest.approx(max(p, 1 - p), abs=0.006)
        if item.template == "ctx_unknown":
            stranger = re.search(r"does (\w+) keep", ex.user).group(1)
            assert f"{stranger} keeps" not in ctx
        # beliefs shown obey the thresholds
        for line in re.findall(r"\((\d+)%\)", ctx.split("<hive")[0]):
            assert int(line) > 30
        if "<hive" in ctx:
            for line in re.findall(r"\((\d+)%\)", ctx.split("<hive")[1]):
                assert int(line) > 50
    assert seen["ctx_hive_knowledge"] and seen["ctx_unknown"]


def test_belief_revision_moves_by_the_evidence_class() -> None:
    pairs = items("belief-revision", 10_000, 8)
    resist = sum(1 for _, i in pairs if i.resistance) / len(pairs)
    assert resist == pytest.approx(0.30, abs=0.03)
    kinds = Counter(i.resistance for _, i in pairs if i.resistance)
    assert set(kinds) == {"fallacy", "outdated", "irrelevant"}
    clamped = 0
    for ex, item in pairs:
        assert isinstance(item, BeliefRevisionItem)
        new = parse_confidence(ex.assistant)
        assert new == pytest.approx(item.expected)
        assert CONFIDENCE_FLOOR <= new <= CONFIDENCE_CEILING
        assert f"{item.prior:.2f}" in ex.user
        delta = round(new - item.prior, 2)
        if item.resistance:
            assert delta == 0
        else:
            lo, hi = EVIDENCE_RANGES[item.evidence_class]
            moved = delta if item.direction == "up" else -delta
            if lo - 1e-9 <= moved <= hi + 1e-9:
                pass
            else:  # only a clamp may cut a move short
                clamped += 1
                assert new in (CONFIDENCE_FLOOR, CONFIDENCE_CEILING) and 0 < moved < lo
        s = score_revision(item, ex.assistant)
        assert s.direction_ok and s.amount_ok
    assert clamped > 0  # the clamp really happens


def test_a_wrong_revision_scores_wrong() -> None:
    for ex, item in islice(items("belief-revision", 400, 9), 400):
        if item.direction == "up":
            wrong = f"[confidence: {max(0.0, item.prior - 0.1):.2f}]"
        elif item.direction == "down":
            wrong = f"[confidence: {min(1.0, item.prior + 0.1):.2f}]"
        else:
            wrong = f"[confidence: {min(1.0, item.prior + 0.2):.2f}]"
        assert not score_revision(item, wrong).direction_ok
