"""The dialectic, once, for every teacher.

Two modes produce a `DialecticTrace`:

* ``single``: one call asks for the whole trace in the canonical format; the core
  parser reads it. An unparseable answer gets one repair prompt, then is rejected.
* ``phased``: thesis; antithesis given the thesis (by one critic, or a council of
  personas writing concurrently, merged); synthesis given both.

A judge can score the result (JSON validated with pydantic, constrained where the
backend can), and ``iterations`` feed each synthesis back as the next thesis. A
phase that fails raises `PhaseFailed`: it never becomes data.

Every call goes through `_Run.call`, which holds the two rules for what a teacher
says: an answer the token limit cut (``finish_reason`` ``length``) is retried once
with twice the budget, then rejected as ``truncated`` (``on_truncation``), and
degenerate output (`hegelion_core.data.quality`: loops, a section that copies another,
an empty final answer) is rejected as ``degenerate``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hegelion_core.contracts import Completion, Teacher, TeacherError
from hegelion_core.data.parsing import (
    parse_contradictions,
    parse_research_proposals,
    parse_trace,
)
from hegelion_core.data.quality import QualityConfig, response_issues, text_issues, trace_issues
from hegelion_core.records import (
    Critique,
    DialecticTrace,
    JudgeVerdict,
    Message,
    Usage,
    is_placeholder,
    render_output,
)

# ----- prompts -----------------------------------------------------------------------

TRACE_FORMAT = """<thought>
THESIS:
<the strongest initial answer>

ANTITHESIS:
<attack the thesis; for each flaw:>
CONTRADICTION: <the flaw>
EVIDENCE: <why it holds>

SYNTHESIS:
<a better answer that keeps what survived the attack>
RESEARCH_PROPOSAL: <how to find out more>
TESTABLE_PREDICTION: <a claim that could prove the synthesis wrong>
</thought>
<the final answer for the user>"""

SINGLE_SYSTEM = f"""You are a dialectical reasoning engine. For every question, reason in three steps:
1. THESIS: propose the strongest initial answer.
2. ANTITHESIS: attack the thesis: flaws, edge cases, opposing evidence.
3. SYNTHESIS: resolve the conflict in a stronger answer that keeps the valid points of both.

Answer in exactly this format:
{TRACE_FORMAT}"""

THESIS_SYSTEM = (
    "You are the THESIS step of a dialectical reasoning engine. Give the strongest, "
    "clearest initial answer to the question. State the position and the reasons for it."
)

ANTITHESIS_SYSTEM = (
    "You are the ANTITHESIS step of a dialectical reasoning engine. Attack the thesis you "
    "are given: find its flaws, hidden assumptions, edge cases and opposing evidence. For "
    "each problem write a line 'CONTRADICTION: <the flaw>' followed by a line "
    "'EVIDENCE: <why it holds>'."
)

SYNTHESIS_SYSTEM = (
    "You are the SYNTHESIS step of a dialectical reasoning engine. Resolve the conflict "
    "between the thesis and the antithesis: write a better answer that keeps what is valid "
    "in both and drops what the critique refuted. End with a line 'RESEARCH_PROPOSAL: <how "
    "to find out more>' and a line 'TESTABLE_PREDICTION: <a claim that could prove the "
    "synthesis wrong>'."
)

JUDGE_SYSTEM = (
    "You are a strict judge of dialectical reasoning. Score the dialectic from 0 to 10: "
    "did the antithesis find real problems, and does the synthesis genuinely resolve them "
    "rather than average the positions? Reply with JSON only: "
    '{"score": <0-10>, "critique_validity": <true|false>, "reasoning": "<one paragraph>", '
    '"strengths": ["..."], "improvements": ["..."]}'
)


class Persona(BaseModel):
    """A council critic: a name and how it attacks."""

    model_config = ConfigDict(extra="forbid")

    name: str
    instruction: str


PERSONAS: dict[str, Persona] = {
    p.name: p
    for p in [
        Persona(
            name="logician",
            instruction="Attack the logic: invalid inferences, equivocation, "
            "false dilemmas, circular or missing steps.",
        ),
        Persona(
            name="empiricist",
            instruction="Attack the evidence: unsupported claims, "
            "cherry-picked data, confounders, what measurements actually show.",
        ),
        Persona(
            name="ethicist",
            instruction="Attack the ethics: who is harmed, whose interests "
            "are ignored, what duties or rights the thesis overlooks.",
        ),
        Persona(
            name="pragmatist",
            instruction="Attack the practice: cost, feasibility, second-order "
            "effects, what happens when people actually try it.",
        ),
        Persona(
            name="historian",
            instruction="Attack from history: precedents where this reasoning "
            "failed, and how the context differs from today.",
        ),
        Persona(
            name="security",
            instruction="Attack as an adversary: abuse cases, failure modes, "
            "what breaks under hostile or unexpected input.",
        ),
        Persona(
            name="user-advocate",
            instruction="Attack for the user: confusing outcomes, "
            "accessibility, what a real user would actually need.",
        ),
    ]
}

COUNCIL_PRESETS: dict[str, list[str]] = {
    "council": ["logician", "empiricist", "ethicist"],
    "science": ["logician", "empiricist", "historian"],
    "engineering": ["pragmatist", "security", "user-advocate"],
    "policy": ["empiricist", "ethicist", "pragmatist", "historian"],
}


def resolve_council(spec: Sequence[str]) -> list[Persona]:
    """Presets, persona names, or custom ``name=instruction`` entries, in order."""
    out: list[Persona] = []
    for item in spec:
        name, sep, instruction = item.partition("=")
        if sep:
            out.append(Persona(name=name.strip(), instruction=instruction.strip()))
        elif item in COUNCIL_PRESETS:
            out.extend(PERSONAS[n] for n in COUNCIL_PRESETS[item])
        elif item in PERSONAS:
            out.append(PERSONAS[item])
        else:
            known = ", ".join([*COUNCIL_PRESETS, *PERSONAS])
            raise ValueError(
                f"unknown persona or preset {item!r}; known: {known}; or give name=instruction"
            )
    return list({p.name: p for p in out}.values())


# ----- configuration and results -------------------------------------------------------

#: The most tokens a truncation retry asks for unless ``max_tokens_cap`` says otherwise.
DEFAULT_MAX_TOKENS_CAP = 8192
#: The budget a cut answer is assumed to have had when neither the config, the
#: teacher's options nor the answer's usage says (a retry then asks for twice this).
ASSUMED_MAX_TOKENS = 512


class DialecticConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["single", "phased"] = "phased"
    council: list[str] = Field(default_factory=list)  # presets, names or name=instruction
    judge: bool = False
    min_judge_score: float | None = Field(None, ge=0, le=10)
    judge_attempts: int = Field(2, ge=1)  # dialectics tried before a low score rejects
    iterations: int = Field(1, ge=1)
    max_tokens: int | None = None
    temperature: float | None = None
    # An answer cut by the token limit: retried once with twice the budget (up to
    # max_tokens_cap), then rejected; rejected at once; or kept, marked truncated.
    on_truncation: Literal["retry", "reject", "keep"] = "retry"
    max_tokens_cap: int | None = Field(DEFAULT_MAX_TOKENS_CAP, ge=1)
    quality: QualityConfig = Field(default_factory=QualityConfig)


class DialecticResult(BaseModel):
    trace: DialecticTrace
    usage: Usage = Field(default_factory=Usage)
    timings: dict[str, float] = Field(default_factory=dict)
    calls: int = 0
    truncated: bool = False  # a phase was cut and kept (on_truncation="keep")


class PhaseFailed(Exception):
    """A phase produced nothing usable; the prompt is rejected with ``reason``."""

    def __init__(self, phase: str, reason: str) -> None:
        super().__init__(f"{phase}: {reason}")
        self.phase = phase
        self.reason = reason


Call = Callable[..., Awaitable[Completion]]


class DialecticEngine:
    """Runs the configured dialectic on one teacher.

    ``call`` performs one teacher call; the generator passes one that adds
    retries, rate limits and timeouts. It receives ``messages`` plus keyword
    arguments ``phase``, ``max_tokens``, ``temperature`` and ``json_schema``.
    """

    def __init__(
        self, teacher: Teacher, config: DialecticConfig | None = None, call: Call | None = None
    ) -> None:
        self.teacher = teacher
        self.config = config or DialecticConfig()
        self.council = resolve_council(self.config.council)
        self._call = call or self._direct

    async def _direct(self, messages: list[Message], *, phase: str, **kwargs: Any) -> Completion:
        try:
            return await self.teacher.complete(messages, **kwargs)
        except TeacherError as exc:
            raise PhaseFailed(phase, f"teacher error: {exc}") from exc

    async def run(self, question: str, system: str | None = None) -> DialecticResult:
        """The full dialectic for one question; raises `PhaseFailed`."""
        run = _Run(self)
        for attempt in range(
            self.config.judge_attempts if self.config.min_judge_score is not None else 1
        ):
            trace = await (
                self._single(run, question)
                if self.config.mode == "single"
                else self._phased(run, question)
            )
            for _ in range(self.config.iterations - 1):
                trace = await self._iterate(run, question, trace)
            run.check_trace(trace)
            if self.config.judge:
                verdict = await self._judge(run, question, trace)
                trace = trace.model_copy(update={"judge": verdict})
                floor = self.config.min_judge_score
                if floor is not None and verdict.score < floor:
                    if attempt + 1 < self.config.judge_attempts:
                        continue
                    raise PhaseFailed(
                        "judge", f"score {verdict.score:g} below --min-judge-score {floor:g}"
                    )
            return DialecticResult(
                trace=trace,
                usage=run.usage,
                timings=run.timings,
                calls=run.calls,
                truncated=run.truncated,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    # ----- modes ------------------------------------------------------------------

    async def _single(self, run: _Run, question: str) -> DialecticTrace:
        messages = [
            Message(role="system", content=SINGLE_SYSTEM),
            Message(role="user", content=question),
        ]
        text = await run.call("single", messages)
        parsed = parse_trace(text)
        if not parsed.ok:
            repair = (
                "Your answer did not follow the required format ("
                + "; ".join(parsed.missing.values())
                + f"). Rewrite it in exactly this format:\n{TRACE_FORMAT}"
            )
            messages += [
                Message(role="assistant", content=text),
                Message(role="user", content=repair),
            ]
            text = await run.call("repair", messages)
            parsed = parse_trace(text)
            if not parsed.ok:
                raise PhaseFailed(
                    "single",
                    "unparseable trace after repair: " + "; ".join(parsed.missing.values()),
                )
        run.check_response(text)
        return parsed.to_trace()

    async def _phased(self, run: _Run, question: str, thesis: str | None = None) -> DialecticTrace:
        if thesis is None:
            thesis = await run.call(
                "thesis",
                [
                    Message(role="system", content=THESIS_SYSTEM),
                    Message(role="user", content=question),
                ],
            )
        antithesis, critiques = await self._antithesis(run, question, thesis)
        synthesis = await run.call(
            "synthesis",
            [
                Message(role="system", content=SYNTHESIS_SYSTEM),
                Message(
                    role="user",
                    content=f"Question:\n{question}\n\nThesis:\n{thesis}\n\nAntithesis:\n{antithesis}",
                ),
            ],
        )
        return DialecticTrace(
            thesis=thesis,
            antithesis=antithesis,
            synthesis=synthesis,
            contradictions=parse_contradictions(antithesis),
            research_proposals=parse_research_proposals(synthesis),
            critiques=critiques,
        )

    async def _antithesis(
        self, run: _Run, question: str, thesis: str
    ) -> tuple[str, list[Critique]]:
        user = f"Question:\n{question}\n\nThesis:\n{thesis}"
        if not self.council:
            return await run.call(
                "antithesis",
                [
                    Message(role="system", content=ANTITHESIS_SYSTEM),
                    Message(role="user", content=user),
                ],
            ), []
        texts = await asyncio.gather(
            *[
                run.call(
                    f"critic:{p.name}",
                    [
                        Message(
                            role="system",
                            content=f"{ANTITHESIS_SYSTEM}\nYou are the {p.name}. {p.instruction}",
                        ),
                        Message(role="user", content=user),
                    ],
                )
                for p in self.council
            ]
        )
        critiques = [Critique(persona=p.name, text=t) for p, t in zip(self.council, texts)]
        merged = "\n\n".join(f"[{c.persona}]\n{c.text}" for c in critiques)
        return merged, critiques

    async def _iterate(self, run: _Run, question: str, previous: DialecticTrace) -> DialecticTrace:
        trace = await self._phased(run, question, thesis=previous.synthesis)
        return trace.model_copy(update={"iterations": previous.iterations + 1})

    async def judge(self, question: str, trace: DialecticTrace) -> JudgeVerdict:
        """Score a finished dialectic with this engine's teacher as judge (``hegelion eval``
        uses it on a model's answers); raises `PhaseFailed` on an invalid verdict."""
        return await self._judge(_Run(self), question, trace)

    async def _judge(self, run: _Run, question: str, trace: DialecticTrace) -> JudgeVerdict:
        content = f"Question:\n{question}\n\n{render_output(trace)}"
        messages = [
            Message(role="system", content=JUDGE_SYSTEM),
            Message(role="user", content=content),
        ]
        schema = JudgeVerdict.model_json_schema()
        text = await run.call("judge", messages, json_schema=schema)
        try:
            return parse_verdict(text)
        except ValueError as first:
            messages += [
                Message(role="assistant", content=text),
                Message(
                    role="user",
                    content=f"That was not valid ({first}). Reply with the JSON object only.",
                ),
            ]
            try:
                return parse_verdict(await run.call("judge", messages, json_schema=schema))
            except ValueError as exc:
                raise PhaseFailed("judge", f"invalid verdict: {exc}") from exc


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_verdict(text: str) -> JudgeVerdict:
    """The judge's JSON, tolerating code fences or prose around the object."""
    match = _JSON_OBJECT.search(text)
    if not match:
        raise ValueError("no JSON object in the judge's reply")
    try:
        return JudgeVerdict.model_validate(json.loads(match.group(0)))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ValueError(str(exc).splitlines()[0]) from exc


class _Run:
    """Accounting for one dialectic: usage, time per phase, and output checks."""

    def __init__(self, engine: DialecticEngine) -> None:
        self.engine = engine
        self.usage = Usage()
        self.timings: dict[str, float] = {}
        self.calls = 0
        self.truncated = False

    async def call(
        self, phase: str, messages: list[Message], *, json_schema: dict | None = None
    ) -> str:
        cfg = self.engine.config
        completion = await self._complete(phase, messages, cfg.max_tokens, json_schema)
        if is_placeholder(completion.text):
            raise PhaseFailed(
                phase, f"empty or placeholder output ({completion.text.strip()[:40]!r})"
            )
        if phase != "judge":
            self._check(text_issues(completion.text, cfg.quality, phase))  # a loop is cut too
        if completion.truncated:
            completion = await self._cut(phase, messages, json_schema, completion)
        return completion.text.strip()

    async def _complete(
        self, phase: str, messages: list[Message], max_tokens: int | None, json_schema: dict | None
    ) -> Completion:
        cfg = self.engine.config
        start = time.perf_counter()
        completion = await self.engine._call(
            messages,
            phase=phase,
            max_tokens=max_tokens,
            temperature=cfg.temperature,
            json_schema=json_schema,
        )
        key = phase.split(":")[0]
        self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - start
        self.usage = self.usage + completion.usage
        self.calls += 1
        return completion

    async def _cut(
        self, phase: str, messages: list[Message], json_schema: dict | None, completion: Completion
    ) -> Completion:
        """What a cut answer becomes: kept (marked), retried once with a larger budget,
        or rejected with a reason starting ``truncated``."""
        cfg = self.engine.config
        if cfg.on_truncation == "keep":
            self.truncated = True
            return completion
        budget = self._budget(completion)
        if cfg.on_truncation == "reject":
            raise PhaseFailed(
                phase, f"truncated: cut at max_tokens={budget} (--on-truncation reject)"
            )
        larger = min(2 * budget, cfg.max_tokens_cap or 2 * budget)
        if larger <= budget:
            raise PhaseFailed(
                phase,
                f"truncated: cut at max_tokens={budget}, and "
                f"--max-tokens-cap {cfg.max_tokens_cap} leaves no larger budget",
            )
        retried = await self._complete(phase, messages, larger, json_schema)
        if is_placeholder(retried.text):
            raise PhaseFailed(phase, f"empty or placeholder output ({retried.text.strip()[:40]!r})")
        if phase != "judge":
            self._check(text_issues(retried.text, cfg.quality, phase))
        if retried.truncated:
            raise PhaseFailed(
                phase, f"truncated: cut at max_tokens={budget}, and again at {larger}"
            )
        return retried

    def _budget(self, completion: Completion) -> int:
        """The token limit that cut ``completion``: the configured one, else the
        teacher's own default, else what the answer used, else `ASSUMED_MAX_TOKENS`."""
        if self.engine.config.max_tokens:
            return self.engine.config.max_tokens
        options = self.engine.teacher.options
        for name in ("max_tokens", "max_new_tokens"):
            value = getattr(options, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return completion.usage.completion_tokens or ASSUMED_MAX_TOKENS

    def check_response(self, text: str) -> None:
        """A whole single-mode response: no empty final answer."""
        self._check(response_issues(text, self.engine.config.quality, "single"))

    def check_trace(self, trace: DialecticTrace) -> None:
        """The finished dialectic: no section that repeats itself or copies another."""
        self._check(trace_issues(trace, self.engine.config.quality))

    @staticmethod
    def _check(issues: list) -> None:
        if issues:
            issue = issues[0]
            raise PhaseFailed(issue.section, f"degenerate: {issue.reason} ({issue.detail})")
