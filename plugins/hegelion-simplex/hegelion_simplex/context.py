"""Stage 1, the context protocol: answers grounded in a ``<context>`` (and ``<hive>``) block.

Each example builds a small world (recent experiences, known facts, beliefs above
the Anima threshold of 30%, and often a hive with shared experiences, knowledge and
beliefs above 50%), renders it with core's `render_context` (so the thresholds and
layout have one home), and asks one question whose answer the context settles, or
pointedly does not. The response quotes the context it relies on, so each claim is
checkable against it, and ends with ``[confidence: 0.XX]``:

* facts and experiences: a look-up, high confidence;
* beliefs (own or the hive's): the likelier answer at the belief's own percentage;
  the ground truth is drawn from it, so the percentage is checkable;
* the Divine threshold of 70%: whether a belief counts as settled;
* a question about someone the context never mentions: abstain, guess at 1/k.

Beliefs under a block's threshold are placed in the world but filtered out by
`render_context`, so the model learns that they are not part of what it knows.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from hegelion_core import (
    ANIMA_THRESHOLD,
    DIVINE_THRESHOLD,
    HIVE_THRESHOLD,
    SIMPLEX_SYSTEM,
    Belief,
    HiveContext,
    SimplexContext,
    render_context,
)
from hegelion_simplex import pools
from hegelion_simplex.example import Example, belief, calibration_truth, odds_outcome, pct, respond

STAGE = "context"
SYSTEM = (
    f"{SIMPLEX_SYSTEM} Start with 'Answer: ...', or 'Answer: unknown (best guess: ...)' when the "
    "context does not settle the question, and cite the context you rely on."
)
LOOKUP, THRESHOLD = 0.97, 0.96


class World:
    """One example's context, with the pieces the questions refer to."""

    __slots__ = (
        "beliefs",
        "ctx",
        "experiences",
        "facts",
        "hive",
        "hive_beliefs",
        "hive_knowledge",
        "names",
        "places",
    )

    def __init__(self, rng: random.Random, *, with_hive: bool) -> None:
        self.names = rng.sample(pools.NAMES, 8)
        self.places = rng.sample(pools.PLACES, 10)
        objects = rng.sample(pools.OBJECTS, 8)
        known = self.names[:5] + self.names[6:]  # names[5] is the stranger of `unknown_person`
        used: set[str] = set()

        def fresh() -> str:  # no statement twice in one context: a question names one belief
            while (text := belief(rng, known)) in used:
                pass
            used.add(text)
            return text

        nf, ne = rng.randint(2, 3), rng.randint(2, 3)
        self.facts = [(self.names[i], objects[i], self.places[i]) for i in range(nf)]
        self.experiences = [
            (rng.choice(pools.WHEN), rng.choice(pools.VERBS_PAST), objects[4 + i], self.places[4 + i])
            for i in range(ne)
        ]
        self.beliefs = [(fresh(), rng.randint(32, 97) / 100) for _ in range(rng.randint(2, 3))]
        hidden = [(fresh(), rng.randint(5, 29) / 100)] if rng.random() < 0.5 else []
        facts = [f"{n} keeps the {o} in the {p}." for n, o, p in self.facts]
        exps = [f"{w.capitalize()} I {v[0]} the {o} at the {p}." for w, v, o, p in self.experiences]
        beliefs = [Belief(text=t, confidence=c) for t, c in self.beliefs + hidden]
        rng.shuffle(beliefs)
        self.hive = self.hive_beliefs = self.hive_knowledge = None
        hive_ctx = None
        if with_hive:
            self.hive = rng.choice(pools.HIVES)
            guard = self.names[6:8]
            self.hive_knowledge = [(guard[i], self.places[8 + i]) for i in range(rng.randint(1, 2))]
            self.hive_beliefs = [(fresh(), rng.randint(52, 97) / 100) for _ in range(rng.randint(1, 2))]
            low = [(fresh(), rng.randint(31, 49) / 100)] if rng.random() < 0.5 else []
            hive_ctx = HiveContext(
                name=self.hive,
                experiences=[
                    (
                        f"The {self.hive} {rng.choice(pools.VERBS_PAST)[0]} the "
                        f"{rng.choice(pools.OBJECTS)} at the {rng.choice(pools.PLACES)} "
                        f"{rng.choice(pools.WHEN)}."
                    )
                ],
                knowledge=[f"{n} guards the {p}." for n, p in self.hive_knowledge],
                beliefs=[Belief(text=t, confidence=c) for t, c in self.hive_beliefs + low],
            )
        self.ctx = SimplexContext(experiences=exps, facts=facts, beliefs=beliefs, hive=hive_ctx)


def _ex(world: World, template: str, question: str, assistant: str, truth: dict) -> Example:
    return Example(
        STAGE, template, SYSTEM, f"{render_context(world.ctx)}\n\nQuestion: {question}", assistant, truth
    )


def fact(rng: random.Random, w: World) -> Example:
    n, o, p = rng.choice(w.facts)
    why = f"My known facts say: {n} keeps the {o} in the {p}."
    return _ex(
        w,
        "ctx_fact",
        f"Where does {n} keep the {o}?",
        respond(f"the {p}", why, LOOKUP),
        calibration_truth("factual", p, LOOKUP, determined=True),
    )


def experience(rng: random.Random, w: World) -> Example:
    when, verb, o, p = rng.choice(w.experiences)
    why = f"My recent experiences say: {when} I {verb[0]} the {o} at the {p}."
    return _ex(
        w,
        "ctx_experience",
        f"Where did you {verb[1]} the {o} {when}?",
        respond(f"the {p}", why, LOOKUP),
        calibration_truth("factual", p, LOOKUP, determined=True),
    )


def _belief_answer(w: World, template: str, text: str, p: float, owner: str, rng: random.Random) -> Example:
    best = "yes" if p >= 0.5 else "no"
    conf = round(max(p, 1 - p), 2)
    settled = (
        "at or above the Divine threshold of 70%, so I treat it as settled"
        if p >= DIVINE_THRESHOLD
        else "below the Divine threshold of 70%, so it is not settled"
    )
    why = f"{owner} this at {pct(p)}, {settled}."
    return _ex(
        w,
        template,
        f"Is it true that {text}?",
        respond(best, why, conf),
        calibration_truth(
            "ambiguous",
            odds_outcome(rng, p, "yes", "no"),
            conf,
            determined=False,
            best=best,
            options=["yes", "no"],
        ),
    )


def own_belief(rng: random.Random, w: World) -> Example:
    text, p = rng.choice(w.beliefs)
    return _belief_answer(w, "ctx_belief", text, p, "I hold", rng)


def hive_belief(rng: random.Random, w: World) -> Example:
    if w.hive is None or w.hive_beliefs is None:  # both set together, or neither
        return own_belief(rng, w)
    text, p = rng.choice(w.hive_beliefs)
    return _belief_answer(w, "ctx_hive_belief", text, p, f"The {w.hive} hold", rng)


def hive_knowledge(rng: random.Random, w: World) -> Example:
    if w.hive is None or w.hive_knowledge is None:  # both set together, or neither
        return fact(rng, w)
    n, p = rng.choice(w.hive_knowledge)
    why = f"The {w.hive}' shared knowledge says: {n} guards the {p}."
    return _ex(
        w,
        "ctx_hive_knowledge",
        f"According to the {w.hive}, who guards the {p}?",
        respond(n, why, LOOKUP),
        calibration_truth("factual", n, LOOKUP, determined=True),
    )


def settled(rng: random.Random, w: World) -> Example:
    pool = [(t, p, "I hold") for t, p in w.beliefs]
    if w.hive is not None and w.hive_beliefs is not None:  # both set together, or neither
        pool += [(t, p, f"The {w.hive} hold") for t, p in w.hive_beliefs]
    text, p, owner = rng.choice(pool)
    answer = "yes" if p >= DIVINE_THRESHOLD else "no"
    why = f"{owner} it at {pct(p)}, {'at or above' if answer == 'yes' else 'below'} the Divine threshold of 70%."
    return _ex(
        w,
        "ctx_settled",
        f"Is the belief that {text} settled?",
        respond(answer, why, THRESHOLD),
        calibration_truth("threshold", answer, THRESHOLD, determined=True, options=["yes", "no"]),
    )


def unknown_person(rng: random.Random, w: World) -> Example:
    stranger = w.names[5]  # never used in the context
    options = rng.sample(pools.OBJECTS, 4)
    place = w.places[9]
    k = len(options)
    conf = round(1 / k, 2)
    guess = rng.choice(options)
    why = (
        f"My context does not say what {stranger} keeps at the {place}, so any of the {k} is "
        f"right about 1 time in {k}."
    )
    return _ex(
        w,
        "ctx_unknown",
        f"Which of these does {stranger} keep at the {place}: {', '.join(options)}?",
        respond("unknown", why, conf, guess=guess),
        calibration_truth(
            "unknowable", rng.choice(options), conf, determined=False, best=guess, options=options
        ),
    )


Maker = Callable[[random.Random, World], Example]
MIX: tuple[tuple[float, Maker], ...] = (
    (0.18, fact),
    (0.14, experience),
    (0.10, hive_knowledge),
    (0.18, own_belief),
    (0.12, hive_belief),
    (0.16, settled),
    (0.12, unknown_person),
)
HIVE_SHARE = 0.6

assert ANIMA_THRESHOLD < 0.32 and HIVE_THRESHOLD < 0.52  # the generated beliefs sit above them


def make(rng: random.Random) -> Example:
    world = World(rng, with_hive=rng.random() < HIVE_SHARE)
    r, acc = rng.random(), 0.0
    for share, maker in MIX:
        acc += share
        if r < acc:
            return maker(rng, world)
    return MIX[-1][1](rng, world)
