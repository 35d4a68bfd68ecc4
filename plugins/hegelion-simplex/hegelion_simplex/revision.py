"""Stage 3, belief revision: move a confidence by what the evidence is worth.

A prior belief with its confidence meets one piece of new evidence. Evidence comes
in three classes that move the confidence by 0.15-0.30 (strong), 0.05-0.15 (moderate)
and 0.01-0.05 (weak), up when it supports the belief and down when it contradicts
it, clamped to [0.05, 0.98]. About 30% of examples are resistance cases, a fallacy,
outdated evidence or irrelevant evidence, where the belief must not change. Each eval
item carries the allowed move (after clamping) so `hegelion eval` can score both
direction and amount.
"""

from __future__ import annotations

import random

from hegelion_core import CONFIDENCE_CEILING, CONFIDENCE_FLOOR, EVIDENCE_RANGES
from hegelion_simplex import pools
from hegelion_simplex.example import Example, belief, pct

STAGE = "belief-revision"
SYSTEM = (
    "You are a Simplex agent revising a belief. Strong evidence moves confidence by 0.15-0.30, "
    "moderate by 0.05-0.15, weak by 0.01-0.05: up when it supports the belief, down when it "
    "contradicts it, never outside 0.05-0.98. Fallacies, outdated and irrelevant evidence change "
    "nothing. End with [confidence: 0.XX], your updated confidence."
)
RESISTANCE_SHARE = 0.30
CLASS_SHARES = (("strong", 0.34), ("moderate", 0.33), ("weak", 0.33))

# Evidence templates per class; {s} is the belief, {verdict} "confirms"/"refutes" and friends.
EVIDENCE = {
    "strong": (
        ("strong_test", "A controlled test with {n} trials this season {verdict} that {s}."),
        (
            "strong_survey",
            "Direct measurements by {n} independent surveyors at the {place} {verdict} that {s}.",
        ),
        ("strong_records", "The {hive}' complete records for the last {k} years {verdict} that {s}."),
    ),
    "moderate": (
        ("moderate_report", "A careful report from {name}, who checked twice, {verdict_soft} that {s}."),
        ("moderate_sample", "Two of three recent observations at the {place} {verdict_plural} that {s}."),
        ("moderate_expert", "The {place} keeper, who knows the matter well, {verdict_soft} that {s}."),
    ),
    "weak": (
        ("weak_rumour", "A traveller at the {place} mentioned in passing {verdict_weak} {s}."),
        ("weak_sketch", "One blurry sketch found in the {place} {verdict_weak} {s}."),
        ("weak_hunch", "{name} has a vague hunch {verdict_weak} {s}."),
    ),
}
VERDICTS = {
    # (up, down) phrasings
    "verdict": ("confirmed", "contradicted the claim"),
    "verdict_soft": ("suggests", "casts doubt on the claim"),
    "verdict_plural": ("indicate", "cast doubt on the claim"),
    "verdict_weak": ("that", "that it is doubtful that"),
}
RESISTANCE = {
    "fallacy": (
        (
            "fallacy_bandwagon",
            "Everyone at the {place} says that {s}, so it must be {tf}.",
            "an appeal to popularity: how many people say it is no evidence",
        ),
        (
            "fallacy_ad_hominem",
            (
                "{name} argued the opposite, but {name} is rude and badly dressed, "
                "so the belief that {s} must be {tf}."
            ),
            "an attack on the person, not on the claim",
        ),
        (
            "fallacy_authority",
            "A famous {job} with no knowledge of the matter declared it {tf} that {s}.",
            "an appeal to an authority outside their field",
        ),
        (
            "fallacy_consequences",
            "If it were not {tf} that {s}, the town would be ruined; so it is {tf}.",
            "an appeal to consequences: wanting it does not make it so",
        ),
    ),
    "outdated": (
        (
            "outdated_survey",
            (
                "A survey from {old}, replaced by the {new} survey your belief already "
                "rests on, found it {tf} that {s}."
            ),
            "outdated: the newer survey it was replaced by is already counted",
        ),
        (
            "outdated_notice",
            "A notice from {old}, withdrawn in {new}, said it was {tf} that {s}.",
            "outdated: the notice was withdrawn",
        ),
    ),
    "irrelevant": (
        (
            "irrelevant_paint",
            "The {object} at the {place} was painted {colour} this morning.",
            "irrelevant: it says nothing about the belief",
        ),
        (
            "irrelevant_contest",
            "{name} won the chess contest at the {place} last night.",
            "irrelevant: it says nothing about the belief",
        ),
        (
            "irrelevant_weather",
            "The wind over the {place} turned to the {colour} banners' side at noon.",
            "irrelevant: it says nothing about the belief",
        ),
    ),
}


def _fill(rng: random.Random, template: str, s: str, up: bool) -> str:
    old = rng.randint(1950, 1995)
    return template.format(
        s=s,
        n=rng.randint(12, 400),
        k=rng.randint(5, 40),
        place=rng.choice(pools.PLACES),
        hive=rng.choice(pools.HIVES),
        name=rng.choice(pools.NAMES),
        job=rng.choice(pools.OCCUPATIONS),
        object=rng.choice(pools.OBJECTS),
        colour=rng.choice(pools.COLOURS),
        old=old,
        new=old + rng.randint(8, 30),
        tf="true" if up else "false",
        verdict=VERDICTS["verdict"][0 if up else 1],
        verdict_soft=VERDICTS["verdict_soft"][0 if up else 1],
        verdict_weak=VERDICTS["verdict_weak"][0 if up else 1],
        verdict_plural=VERDICTS["verdict_plural"][0 if up else 1],
    )


def _prompt(s: str, prior: float, evidence: str) -> str:
    return (
        f"Belief: {s}.\nCurrent confidence: {prior:.2f} ({pct(prior)}).\n"
        f"New evidence: {evidence}\nRevise your confidence in this belief."
    )


def make(rng: random.Random) -> Example:
    s = belief(rng)
    up = rng.random() < 0.5
    if rng.random() < RESISTANCE_SHARE:
        kind = rng.choice(tuple(RESISTANCE))
        template, text, reason = rng.choice(RESISTANCE[kind])
        prior = rng.randint(round(CONFIDENCE_FLOOR * 100), round(CONFIDENCE_CEILING * 100)) / 100
        assistant = (
            f"Evidence: {reason}. It gives no reason to change.\n"
            f"Update: none; the belief stays at {prior:.2f}.\n\n[confidence: {prior:.2f}]"
        )
        return Example(
            STAGE,
            template,
            SYSTEM,
            _prompt(s, prior, _fill(rng, text, s, up)),
            assistant,
            {
                "suite": "belief-revision",
                "prior": prior,
                "direction": "none",
                "resistance": kind,
                "min_delta": 0.0,
                "max_delta": 0.0,
                "expected": prior,
            },
        )

    r = rng.random()
    cls = (
        "weak"
        if r > CLASS_SHARES[0][1] + CLASS_SHARES[1][1]
        else "moderate"
        if r > CLASS_SHARES[0][1]
        else "strong"
    )
    lo, hi = EVIDENCE_RANGES[cls]
    # Leave at least 0.01 of room in the direction of the move, so every item can move.
    if up:
        prior = rng.randint(round(CONFIDENCE_FLOOR * 100), round(CONFIDENCE_CEILING * 100) - 1) / 100
        room = round(CONFIDENCE_CEILING - prior, 2)
    else:
        prior = rng.randint(round(CONFIDENCE_FLOOR * 100) + 1, round(CONFIDENCE_CEILING * 100)) / 100
        room = round(prior - CONFIDENCE_FLOOR, 2)
    raw = round(rng.uniform(lo, hi), 2)
    step = min(raw, room)
    new = round(prior + step if up else prior - step, 2)
    template, text = rng.choice(EVIDENCE[cls])
    clamp = f" (clamped at {new:.2f})" if step < raw else ""
    assistant = (
        f"Evidence: {cls}, and it {'supports' if up else 'contradicts'} the belief.\n"
        f"Update: {prior:.2f} -> {new:.2f} ({'+' if up else '-'}{step:.2f}){clamp}.\n\n"
        f"[confidence: {new:.2f}]"
    )
    return Example(
        STAGE,
        template,
        SYSTEM,
        _prompt(s, prior, _fill(rng, text, s, up)),
        assistant,
        {
            "suite": "belief-revision",
            "prior": prior,
            "direction": "up" if up else "down",
            "evidence_class": cls,
            "min_delta": min(lo, room),
            "max_delta": min(hi, room),
            "expected": new,
        },
    )
