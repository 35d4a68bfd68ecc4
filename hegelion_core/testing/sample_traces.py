"""Sample trace records for tests: twenty short ones to train a tiny model on, and
three varied ones (`sample_records`) that exercise every field a formatter reads.

Short, so rows tokenize and train quickly; twenty, so ``--valid-ratio 0.2`` gives 16
train and 4 valid rows: full batches at mlx-lm's default batch size of 4.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson

from hegelion_core.records import (
    Contradiction,
    DialecticTrace,
    JudgeVerdict,
    ResearchProposal,
    TraceRecord,
)

#: (instruction, thesis, antithesis, synthesis)
SAMPLE_TRACES: tuple[tuple[str, str, str, str], ...] = (
    (
        "Is free will real?",
        "We act on our own reasons.",
        "Our reasons have causes.",
        "Freedom is acting from reasons, caused or not.",
    ),
    (
        "Do markets work?",
        "Prices carry information.",
        "Prices can lie about harm.",
        "Markets work inside rules that make prices honest.",
    ),
    (
        "Where does knowledge come from?",
        "From experience.",
        "Logic holds before experience.",
        "Experience gives content and reason gives form.",
    ),
    (
        "Trust intuition or evidence?",
        "Intuition is fast.",
        "Intuition fails on numbers.",
        "Intuition raises questions; evidence answers them.",
    ),
    (
        "Is history driven by ideas?",
        "Ideas set what seems possible.",
        "Conditions decide which ideas spread.",
        "Ideas and conditions shape each other.",
    ),
    (
        "Can a good argument fail?",
        "Sound arguments convince.",
        "People weigh the speaker.",
        "Good arguments persuade when they earn trust.",
    ),
    (
        "Privacy or security?",
        "Security protects lives.",
        "Without privacy power grows.",
        "Security with limits keeps lives and freedom.",
    ),
    (
        "Fund need or curiosity?",
        "Fund urgent needs.",
        "Curiosity made the big advances.",
        "Fund both, since curiosity feeds what needs require.",
    ),
    (
        "Is change good?",
        "Change brings growth.",
        "Change destroys what worked.",
        "Good change keeps what worked and grows from it.",
    ),
    (
        "Should rules bend?",
        "Rules must be firm to be fair.",
        "Firm rules fail odd cases.",
        "Rules should be firm with a stated way to bend.",
    ),
    (
        "Is art useful?",
        "Art has no use and needs none.",
        "Art teaches and heals.",
        "Art is useful because it is not made for use.",
    ),
    (
        "Should we fear machines?",
        "Machines free us from toil.",
        "Machines can take control.",
        "Build machines we can check and stop.",
    ),
    (
        "Is tradition wise?",
        "Tradition stores tested habits.",
        "Tradition hides old wrongs.",
        "Keep traditions that still pass the test.",
    ),
    (
        "Are people selfish?",
        "People seek their own good.",
        "People give to strangers.",
        "Self-interest and care live in the same person.",
    ),
    (
        "Is math discovered?",
        "Math is found, like a continent.",
        "Math is built, like a game.",
        "We invent the rules and discover what follows.",
    ),
    (
        "Should cities grow?",
        "Cities create wealth.",
        "Cities crowd and pollute.",
        "Grow cities that stay green and affordable.",
    ),
    (
        "Is doubt a virtue?",
        "Doubt prevents error.",
        "Doubt can freeze action.",
        "Doubt well, then act on the best answer.",
    ),
    (
        "Do laws make people good?",
        "Laws shape habits.",
        "Good people need no laws.",
        "Laws guide habits that character then keeps.",
    ),
    (
        "Is speed better than care?",
        "Speed wins markets.",
        "Care prevents disasters.",
        "Move fast where mistakes are cheap, slowly elsewhere.",
    ),
    (
        "Can we know other minds?",
        "We only see behaviour.",
        "Empathy reaches inner life.",
        "We know other minds by inference and by sharing.",
    ),
)


Trace = tuple[str, str, str, str]


def write_sample_traces(path: Path, traces: Iterable[Trace] = SAMPLE_TRACES) -> Path:
    """Write ``traces`` (instruction, thesis, antithesis, synthesis) to ``path`` as
    ``hegelion generate`` writes trace records."""
    with path.open("wb") as fh:
        for instruction, thesis, antithesis, synthesis in traces:
            trace = DialecticTrace(thesis=thesis, antithesis=antithesis, synthesis=synthesis)
            record = TraceRecord.build(instruction, trace)
            fh.write(orjson.dumps(record.model_dump(mode="json")) + b"\n")
    return path


def sample_records() -> list[TraceRecord]:
    """A few varied, valid trace records: plain, with input, and fully annotated."""
    plain = TraceRecord.build(
        "Should a small team write tests before the code?",
        DialecticTrace(
            thesis="Yes: tests written first pin down behaviour before code exists.",
            antithesis="CONTRADICTION: Exploration\nEVIDENCE: Early prototypes change daily, "
            "so tests written first are rewritten constantly.",
            synthesis="Write tests first for settled behaviour, and after a spike for exploratory code.",
        ),
    )
    with_input = TraceRecord.build(
        "Summarise the argument.",
        DialecticTrace(
            thesis="The argument says remote work raises output.",
            antithesis="It ignores that the studies measured self-reported output.",
            synthesis="Remote work raises measured output for focused tasks; collaboration costs remain.",
            answer="Remote work helps focused work; its collaboration costs are real.",
        ),
        input="Remote work raises output, according to three surveys.",
        confidence=0.55,
    )
    rich = TraceRecord.build(
        "Is nuclear power a good way to cut emissions?",
        DialecticTrace(
            thesis="Nuclear power is low-carbon and runs around the clock.",
            antithesis="CONTRADICTION: Cost\nEVIDENCE: Recent Western plants ran years late and over budget.",
            synthesis="Keep existing plants running; build new ones where costs are controlled.\n"
            "RESEARCH_PROPOSAL: Compare build costs across regulatory regimes.\n"
            "TESTABLE_PREDICTION: Standardised designs cut costs per unit built.",
            contradictions=[Contradiction(description="Cost", evidence="Plants ran over budget.")],
            research_proposals=[
                ResearchProposal(
                    description="Compare build costs across regulatory regimes.",
                    testable_prediction="Standardised designs cut costs per unit built.",
                )
            ],
            judge=JudgeVerdict(score=8.0, critique_validity=True, reasoning="Balanced."),
        ),
        teacher="example",
        model="example-1",
        confidence=0.7,
    )
    return [plain, with_input, rich]
