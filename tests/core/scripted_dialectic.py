"""A reply function for the scripted OpenAI server that answers each phase of a phased
dialectic (thesis, antithesis, synthesis, judge, council critics) in its own words, so
end-to-end commands run offline through the ``openai`` teacher and pass the
degenerate-output screen, as a real teacher's distinct answers would."""

from __future__ import annotations

import itertools
import json

from hegelion_core.generation.dialectic import ANTITHESIS_SYSTEM, SYNTHESIS_SYSTEM, THESIS_SYSTEM
from hegelion_core.records import DialecticTrace, render_output
from hegelion_core.testing.openai_server import RecordedRequest, default_reply

_calls = itertools.count()


def phase_reply(request: RecordedRequest) -> str:
    messages = request.body.get("messages") or []
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    n = next(_calls)  # every answer differs from the ones before it
    if system == THESIS_SYSTEM:
        return (
            f"Answer {n}: profile the allocator first, then free buffers that outlive request {n}."
        )
    if system == ANTITHESIS_SYSTEM:
        return (
            f"CONTRADICTION: Case {n} assumes one leak.\n"
            f"EVIDENCE: Caches and thread pools also grow without bound under load {n}."
        )
    if system.startswith(ANTITHESIS_SYSTEM):  # a council critic: its persona's own attack
        persona = system[len(ANTITHESIS_SYSTEM) :].strip()
        return f"CONTRADICTION: {persona}\nEVIDENCE: seen in review {n}."
    if system == SYNTHESIS_SYSTEM:
        return (
            f"ACTION: add a heap snapshot test around step {n} and bound the cache.\n"
            "RESEARCH_PROPOSAL: compare snapshots across a thousand images.\n"
            "TESTABLE_PREDICTION: resident memory stays flat after warm-up."
        )
    if "score" in system and "judge" in system.lower():
        return json.dumps(
            {
                "score": 8,
                "critique_validity": True,
                "reasoning": f"Sound, pass {n}.",
                "strengths": ["names a test"],
                "improvements": ["measure first"],
            }
        )
    if request.body.get("response_format") or request.body.get("tools"):
        return default_reply(request)
    return render_output(
        DialecticTrace(  # single mode: one call, the whole trace
            thesis=f"The first answer to item {n} is the usual one.",
            antithesis=f"CONTRADICTION: Item {n} has exceptions.\nEVIDENCE: Edge cases exist.",
            synthesis=f"Keep the usual answer for item {n} where it holds, and name the exceptions.",
        )
    )
