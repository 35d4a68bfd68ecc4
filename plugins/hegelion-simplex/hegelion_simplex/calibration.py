"""Stage 2, confidence calibration: every confidence is backed by a checkable answer.

Four categories, each with its own templates:

* **factual** (high): look-ups, arithmetic and comparisons the prompt determines;
* **ambiguous** (medium): the prompt states odds (a bag of marbles, a forecast, a
  witness's record); the answer is the likelier outcome and the confidence is its
  probability. The ground truth is an outcome drawn from those odds by the seed, so a
  model stating them is right exactly that often;
* **unknowable** (low): nothing in the prompt decides among k options; the right
  response abstains (``Answer: unknown (best guess: X)``) at confidence 1/k, and the
  drawn outcome scores the guess;
* **threshold**: comparisons of stated percentages with the Anima 30%, Hive 50% and
  Divine 70% thresholds (from ``hegelion_core.data.formatters.simplex``).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from hegelion_core import ANIMA_THRESHOLD, DIVINE_THRESHOLD, HIVE_THRESHOLD
from hegelion_simplex import pools
from hegelion_simplex.example import Example, belief, calibration_truth, odds_outcome, pct, respond

STAGE = "calibration"
SYSTEM = (
    "You are a Simplex agent. Start with 'Answer: ...'. When the prompt does not decide the "
    "answer, write 'Answer: unknown (best guess: ...)'. Then give your reason, and end with "
    "[confidence: 0.XX], the probability that your answer is right."
)

LOOKUP, ARITHMETIC, COMPARE, THRESHOLD = 0.97, 0.95, 0.96, 0.96


def _ex(template: str, user: str, assistant: str, truth: dict) -> Example:
    return Example(STAGE, template, SYSTEM, user, assistant, truth)


# ----- factual ------------------------------------------------------------------------


def fact_place(rng: random.Random) -> Example:
    k = rng.randint(3, 5)
    names, objects, places = (
        rng.sample(pools.NAMES, k),
        rng.sample(pools.OBJECTS, k),
        rng.sample(pools.PLACES, k),
    )
    facts = " ".join(f"{n} keeps the {o} in the {p}." for n, o, p in zip(names, objects, places))
    i = rng.randrange(k)
    user = f"Known facts: {facts}\nQuestion: Where does {names[i]} keep the {objects[i]}?"
    why = f"The facts say {names[i]} keeps the {objects[i]} in the {places[i]}."
    return _ex(
        "fact_place",
        user,
        respond(f"the {places[i]}", why, LOOKUP),
        calibration_truth("factual", places[i], LOOKUP, determined=True),
    )


def fact_time(rng: random.Random) -> Example:
    k = rng.randint(3, 5)
    names, places = rng.sample(pools.NAMES, k), rng.sample(pools.PLACES, k)
    hours = [rng.randint(5, 22) for _ in range(k)]
    facts = " ".join(f"{n}'s watch at the {p} starts at {h}:00." for n, p, h in zip(names, places, hours))
    i = rng.randrange(k)
    user = f"Known facts: {facts}\nQuestion: When does {names[i]}'s watch at the {places[i]} start?"
    why = f"The facts give {hours[i]}:00 for {names[i]}'s watch at the {places[i]}."
    return _ex(
        "fact_time",
        user,
        respond(f"{hours[i]}:00", why, LOOKUP),
        calibration_truth("factual", f"{hours[i]}:00", LOOKUP, determined=True, aliases=[str(hours[i])]),
    )


def arith_mul(rng: random.Random) -> Example:
    a, b, things = rng.randint(3, 40), rng.randint(2, 12), rng.choice(pools.ITEMS_PLURAL)
    user = f"A crate at the {rng.choice(pools.PLACES)} holds {a} {things}. How many {things} are in {b} such crates?"
    why = f"{b} crates of {a} {things} each make {b} x {a} = {a * b}."
    return _ex(
        "arith_mul",
        user,
        respond(str(a * b), why, ARITHMETIC),
        calibration_truth("factual", str(a * b), ARITHMETIC, determined=True),
    )


def arith_add(rng: random.Random) -> Example:
    name, a, b = rng.choice(pools.NAMES), rng.randint(2, 300), rng.randint(2, 300)
    user = f"{name} had {a} coins at the {rng.choice(pools.PLACES)} and was paid {b} more. How many coins does {name} have now?"
    why = f"{a} + {b} = {a + b}."
    return _ex(
        "arith_add",
        user,
        respond(str(a + b), why, ARITHMETIC),
        calibration_truth("factual", str(a + b), ARITHMETIC, determined=True),
    )


def arith_sub(rng: random.Random) -> Example:
    a = rng.randint(50, 900)
    b = rng.randint(1, a - 1)
    user = f"The cistern by the {rng.choice(pools.PLACES)} held {a} litres, and {b} litres were drawn off. How many litres remain?"
    why = f"{a} - {b} = {a - b}."
    return _ex(
        "arith_sub",
        user,
        respond(str(a - b), why, ARITHMETIC),
        calibration_truth("factual", str(a - b), ARITHMETIC, determined=True),
    )


def compare_weight(rng: random.Random) -> Example:
    o1, o2 = rng.sample(pools.OBJECTS, 2)
    w1, w2 = rng.sample(range(2, 120), 2)
    heavier = o1 if w1 > w2 else o2
    user = f"The {o1} weighs {w1} kg and the {o2} weighs {w2} kg. Which is heavier?"
    why = f"{max(w1, w2)} kg is more than {min(w1, w2)} kg."
    return _ex(
        "compare_weight",
        user,
        respond(f"the {heavier}", why, COMPARE),
        calibration_truth("factual", heavier, COMPARE, determined=True),
    )


def compare_age(rng: random.Random) -> Example:
    n1, n2 = rng.sample(pools.NAMES, 2)
    y1, y2 = rng.sample(range(8, 90), 2)
    older = n1 if y1 > y2 else n2
    user = f"{n1} is {y1} years old and {n2} is {y2}. Who is older?"
    why = f"{older} is {max(y1, y2)}, the other {min(y1, y2)}."
    return _ex(
        "compare_age",
        user,
        respond(older, why, COMPARE),
        calibration_truth("factual", older, COMPARE, determined=True),
    )


# ----- ambiguous: stated odds, a drawn outcome -----------------------------------------


def _medium_split(rng: random.Random, low: int = 4, high: int = 20) -> tuple[int, int]:
    """(k, n) with k/n between 0.55 and 0.85: the likelier side and the total."""
    while True:
        n = rng.randint(low, high)
        k = rng.randint(n // 2 + 1, n)
        if 0.55 <= k / n <= 0.85:
            return k, n


def urn(rng: random.Random) -> Example:
    k, n = _medium_split(rng)
    c1, c2 = rng.sample(pools.COLOURS, 2)
    counts = [(c1, k), (c2, n - k)]
    rng.shuffle(counts)
    bag = " and ".join(f"{m} {c}" for c, m in counts)
    conf = round(k / n, 2)
    user = f"A bag at the {rng.choice(pools.PLACES)} holds {bag} marbles. One is drawn at random. What colour is it?"
    why = f"{k} of the {n} marbles are {c1}, so {c1} is the likelier colour, with a chance of {k}/{n}."
    return _ex(
        "urn",
        user,
        respond(c1, why, conf),
        calibration_truth(
            "ambiguous", odds_outcome(rng, k / n, c1, c2), conf, determined=False, best=c1, options=[c1, c2]
        ),
    )


def ferry_record(rng: random.Random) -> Example:
    k, n = _medium_split(rng, 6, 30)
    yes = rng.random() < 0.5  # the record favours sailing or not
    sailed = k if yes else n - k
    place = rng.choice(pools.PLACES)
    best = "yes" if yes else "no"
    conf = round(k / n, 2)
    user = (
        f"{rng.choice(pools.NAMES)} kept the log: on the last {n} days with weather like this "
        f"{rng.choice(pools.DAYS)}'s, the ferry from the {place} sailed on {sailed}. Will it sail today?"
    )
    why = f"It sailed on {sailed} of {n} such days, so '{best}' has a chance of {k}/{n}."
    return _ex(
        "ferry_record",
        user,
        respond(best, why, conf),
        calibration_truth(
            "ambiguous",
            odds_outcome(rng, k / n, best, "no" if yes else "yes"),
            conf,
            determined=False,
            best=best,
            options=["yes", "no"],
        ),
    )


def witness(rng: random.Random) -> Example:
    name, place = rng.choice(pools.NAMES), rng.choice(pools.PLACES)
    p = rng.randint(55, 85) / 100
    user = (
        f"{name} is right about the {place} market {pct(p)} of the time. On {rng.choice(pools.DAYS)} "
        f"{name} says the market is open. Is it open?"
    )
    why = f"{name}'s report is right {pct(p)} of the time, so 'yes' has that chance."
    return _ex(
        "witness",
        user,
        respond("yes", why, p),
        calibration_truth(
            "ambiguous",
            odds_outcome(rng, p, "yes", "no"),
            p,
            determined=False,
            best="yes",
            options=["yes", "no"],
        ),
    )


def forecast(rng: random.Random) -> Example:
    p = rng.choice((rng.randint(15, 45), rng.randint(55, 85))) / 100
    place = rng.choice(pools.PLACES)
    best = "yes" if p > 0.5 else "no"
    conf = round(max(p, 1 - p), 2)
    user = (
        f"{rng.choice(pools.NAMES)}'s forecast gives a {pct(p)} chance of rain at the {place} on "
        f"{rng.choice(pools.DAYS)}. Will it rain there?"
    )
    why = f"A {pct(p)} chance of rain makes '{best}' the likelier answer, at {pct(conf)}."
    return _ex(
        "forecast",
        user,
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


# ----- unknowable: nothing decides; abstain, guess at 1/k ------------------------------


def _unknowable(rng: random.Random, template: str, user: str, options: list[str], reason: str) -> Example:
    k = len(options)
    conf = round(1 / k, 2)
    guess = rng.choice(options)
    why = f"{reason} Any one of the {k} options is right about 1 time in {k}."
    return _ex(
        template,
        user,
        respond("unknown", why, conf, guess=guess),
        calibration_truth(
            "unknowable", rng.choice(options), conf, determined=False, best=guess, options=options
        ),
    )


def die(rng: random.Random) -> Example:
    k = rng.randint(4, 10)
    name, place = rng.choice(pools.NAMES), rng.choice(pools.PLACES)
    user = (
        f"{name} will roll a fair {k}-sided die at the {place} on {rng.choice(pools.DAYS)}. "
        f"Which number will come up?"
    )
    return _unknowable(
        rng,
        "die",
        user,
        [str(i) for i in range(1, k + 1)],
        "A fair die has not been rolled yet, so nothing decides the number.",
    )


def sealed_card(rng: random.Random) -> Example:
    k = rng.randint(4, 7)
    cards = rng.sample(pools.COLOURS, k)
    name = rng.choice(pools.NAMES)
    user = (
        f"{name} drew one card at random from {k} cards ({', '.join(cards)}) and showed it to "
        f"no one. Which card did {name} draw?"
    )
    return _unknowable(rng, "sealed_card", user, cards, "No one saw the card.")


def missing_fact(rng: random.Random) -> Example:
    k = rng.randint(3, 4)
    names = rng.sample(pools.NAMES, k + 1)
    objects = rng.sample(pools.OBJECTS, k + 4)
    places = rng.sample(pools.PLACES, k + 1)
    facts = " ".join(f"{n} keeps the {o} in the {p}." for n, o, p in zip(names, objects, places))
    options = objects[k : k + 4]
    user = (
        f"Known facts: {facts}\nQuestion: Which of these does {names[k]} keep in the "
        f"{places[k]}: {', '.join(options)}?"
    )
    return _unknowable(rng, "missing_fact", user, options, f"The facts say nothing about {names[k]}.")


def lottery(rng: random.Random) -> Example:
    k = rng.randint(4, 8)
    names = rng.sample(pools.NAMES, k)
    place = rng.choice(pools.PLACES)
    user = (
        f"Next week one of {', '.join(names)} will be chosen by lot to keep the {place}. Who will be chosen?"
    )
    return _unknowable(rng, "lottery", user, names, "The lot has not been drawn.")


# ----- thresholds ---------------------------------------------------------------------

_LEVELS = (("anima", ANIMA_THRESHOLD), ("hive", HIVE_THRESHOLD), ("divine", DIVINE_THRESHOLD))


def _percent(rng: random.Random) -> int:
    """A confidence in percent that never sits exactly on a threshold."""
    edges = {round(t * 100) for _, t in _LEVELS}
    while True:
        p = rng.randint(5, 97)
        if p not in edges:
            return p


def threshold_level(rng: random.Random) -> Example:
    p = _percent(rng)
    cleared = [name for name, t in _LEVELS if p / 100 > t]
    answer = cleared[-1] if cleared else "none"
    user = (
        f"Your belief that {belief(rng)} is held at {p}%. The thresholds are Anima 30%, Hive 50% "
        f"and Divine 70%. Which is the highest threshold it clears?"
    )
    why = {
        "none": f"{p}% is below the Anima threshold of 30%.",
        "anima": f"{p}% is above the Anima threshold of 30% but not the Hive threshold of 50%.",
        "hive": f"{p}% is above the Hive threshold of 50% but not the Divine threshold of 70%.",
        "divine": f"{p}% is above the Divine threshold of 70%.",
    }[answer]
    return _ex(
        "threshold_level",
        user,
        respond(answer, why, THRESHOLD),
        calibration_truth(
            "threshold", answer, THRESHOLD, determined=True, options=["none", "anima", "hive", "divine"]
        ),
    )


def threshold_settled(rng: random.Random) -> Example:
    p = _percent(rng)
    answer = "yes" if p / 100 >= DIVINE_THRESHOLD else "no"
    user = (
        f"You hold the belief that {belief(rng)} at {p}%. Beliefs at or above the Divine "
        f"threshold of 70% count as settled. Is this one settled?"
    )
    why = f"{p}% is {'at or above' if answer == 'yes' else 'below'} 70%."
    return _ex(
        "threshold_settled",
        user,
        respond(answer, why, THRESHOLD),
        calibration_truth("threshold", answer, THRESHOLD, determined=True, options=["yes", "no"]),
    )


def threshold_hive(rng: random.Random) -> Example:
    p = _percent(rng)
    hive = rng.choice(pools.HIVES)
    answer = "yes" if p / 100 > HIVE_THRESHOLD else "no"
    user = (
        f"The {hive} share a belief only when it is above the Hive threshold of 50%. You hold "
        f"that {belief(rng)} at {p}%. Will the {hive} share it?"
    )
    why = f"{p}% is {'above' if answer == 'yes' else 'not above'} 50%."
    return _ex(
        "threshold_hive",
        user,
        respond(answer, why, THRESHOLD),
        calibration_truth("threshold", answer, THRESHOLD, determined=True, options=["yes", "no"]),
    )


def threshold_pair(rng: random.Random) -> Example:
    p, q = _percent(rng), _percent(rng)
    a, b = p / 100 >= DIVINE_THRESHOLD, q / 100 >= DIVINE_THRESHOLD
    answer = "both" if a and b else "A" if a else "B" if b else "neither"
    user = (
        f"Belief A, that {belief(rng)}, is held at {p}%. Belief B, that {belief(rng)}, is held "
        f"at {q}%. Which of them reach the Divine threshold of 70%: A, B, both or neither?"
    )
    why = f"A is at {p}% and B at {q}%, against 70%."
    return _ex(
        "threshold_pair",
        user,
        respond(answer, why, THRESHOLD),
        calibration_truth(
            "threshold", answer, THRESHOLD, determined=True, options=["A", "B", "both", "neither"]
        ),
    )


def threshold_margin(rng: random.Random) -> Example:
    p = rng.randint(31, 97)
    user = f"You hold the belief that {belief(rng)} at {p}%. By how many points does it exceed the Anima threshold of 30%?"
    why = f"{p} - 30 = {p - 30}."
    return _ex(
        "threshold_margin",
        user,
        respond(str(p - 30), why, THRESHOLD),
        calibration_truth("threshold", str(p - 30), THRESHOLD, determined=True),
    )


Maker = Callable[[random.Random], Example]
#: (category, share, templates): the mix of the stage.
MIX: tuple[tuple[str, float, tuple[Maker, ...]], ...] = (
    ("factual", 0.35, (fact_place, fact_time, arith_mul, arith_add, arith_sub, compare_weight, compare_age)),
    ("ambiguous", 0.25, (urn, ferry_record, witness, forecast)),
    ("unknowable", 0.20, (die, sealed_card, missing_fact, lottery)),
    (
        "threshold",
        0.20,
        (threshold_level, threshold_settled, threshold_hive, threshold_pair, threshold_margin),
    ),
)
