"""One Ollama Go template per chat-template family, and which families a template may be.

Each family is written from its published chat template (see
``tests/fixtures/chat_templates/``). Families whose turns are ``open(role) + text +
close`` are `Headers` (their system-turn text and default system prompt are learned from
renderings); ``[INST]``-like and Gemma formats, where the system prompt goes inside a
user turn, are `Inst`; the rest (DeepSeek-R1 distills, Qwen3's thinking) are `Fixed` Go
templates. `candidates` picks the families a chat template may be by a marker each
family's template always holds; `modelfile.derive_chat_format` keeps the first candidate
whose Go template, rendered, reproduces the tokenizer's own renderings.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Msg = dict[str, str]
#: Renders a conversation as the tokenizer would: (messages, add_generation_prompt,
#: **apply_chat_template options) -> text.
Renderer = Callable[..., str]

_S, _U1, _A1, _U2 = "\u27e6SYS\u27e7", "\u27e6U1\u27e7", "\u27e6A1\u27e7", "\u27e6U2\u27e7"
_R1 = "\u27e6R1\u27e7"


@dataclass(frozen=True)
class Case:
    """One check: the tokenizer renders ``messages`` (with ``hf`` options), Ollama renders
    the same conversation with ``go`` added to the template's data."""

    system: str | None
    messages: list[Msg]
    gen: bool = True
    hf: dict[str, Any] = field(default_factory=dict)
    go: dict[str, Any] = field(default_factory=dict)


def go_literal(text: str, *, before_trim: bool = False) -> str:
    """Text placed literally in a Go template: quoted when it holds template braces, or
    when it ends in white space that a following ``{{-`` would trim (Gemma's newline)."""
    if "{{" in text or "}}" in text or (before_trim and text != text.rstrip(" \t\r\n")):
        return "{{ " + json.dumps(text) + " }}"
    return text


@dataclass(frozen=True)
class Headers:
    """Every turn is ``open(role) + content + close`` (ChatML, Llama 3, Phi-3/4, Tulu)."""

    family: str
    open: Callable[[str], str]
    close: str
    stops: tuple[str, ...]
    pre: str = ""  # learned: text inside the system turn before / after the system prompt
    post: str = ""
    always_system: bool = False  # a system turn even with an empty system prompt
    default_system: str | None = None
    system_close: str | None = None  # learned; None: `close` (SmolLM3's system turn has none)
    assistant_close: str | None = None  # None: `close` (Tulu ends an answer with eos + "\n")
    refuses_system: bool = False
    extra: tuple[Case, ...] = ()  # checks of the family's own besides `conversations()`

    def go(self) -> str:
        lit = go_literal
        o = self.open
        sys_if, sys_end = ("", "") if self.always_system else ("{{- if .System }}", "{{ end }}")
        sys_close = self.close if self.system_close is None else self.system_close
        a_close = self.close if self.assistant_close is None else self.assistant_close
        return (
            f"{sys_if}{lit(o('system'))}{lit(self.pre)}{{{{ .System }}}}"
            # with no {{ end }} after it, the turn's end meets {{- range and must be quoted
            f"{lit(self.post + sys_close, before_trim=self.always_system)}{sys_end}\n"
            "{{- range $i, $_ := .Messages }}\n"
            "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
            f'{{{{- if eq .Role "user" }}}}{lit(o("user"))}{{{{ .Content }}}}{lit(self.close)}'
            f"{{{{ if $last }}}}{lit(o('assistant'))}{{{{ end }}}}\n"
            f'{{{{- else if eq .Role "assistant" }}}}{lit(o("assistant"))}{{{{ .Content }}}}'
            f"{{{{ if not $last }}}}{lit(a_close)}{{{{ end }}}}\n"
            "{{- end }}\n"
            "{{- end }}"
        )

    def cases(self) -> list[Case]:
        return list(self.extra)


@dataclass(frozen=True)
class Inst:
    """``[INST] user [/INST] assistant</s>`` and Gemma's turns: the system prompt goes
    inside a user turn (the first or the last), or nowhere."""

    user_open: str
    user_close: str
    assistant_open: str
    eos: str
    system_at: Literal["first", "last", "none"]
    join: str = "\n\n"
    family: str = "mistral"
    stops: tuple[str, ...] = ("[INST]", "[/INST]")
    default_system: str | None = None

    @property
    def refuses_system(self) -> bool:
        return self.system_at == "none"

    def go(self) -> str:
        lit = go_literal
        # .Messages keeps system turns (Ollama's collate), so "first user" is tracked
        # with a variable rather than by index.
        if self.system_at == "none":
            sys = ""
        else:
            which = "$last" if self.system_at == "last" else "(not $seen)"
            sys = (
                f"{{{{ if and $.System {which} }}}}{{{{ $.System }}}}{lit(self.join)}"
                "{{ end }}{{ $seen = true }}"
            )
        return (
            "{{- $seen := false }}\n"
            "{{- range $i, $_ := .Messages }}\n"
            "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
            f'{{{{- if eq .Role "user" }}}}{lit(self.user_open)}{sys}{{{{ .Content }}}}'
            f"{lit(self.user_close, before_trim=True)}\n"
            f'{{{{- else if eq .Role "assistant" }}}}{lit(self.assistant_open)}{{{{ .Content }}}}'
            f"{{{{ if not $last }}}}{lit(self.eos)}{{{{ end }}}}\n"
            "{{- end }}\n"
            "{{- end }}"
        )

    def cases(self) -> list[Case]:
        return []


@dataclass(frozen=True)
class Fixed:
    """A family whose Go template is written out whole."""

    family: str
    template: str
    stops: tuple[str, ...]
    extra: tuple[Case, ...] = ()
    default_system: str | None = None
    refuses_system: bool = False

    def go(self) -> str:
        return self.template

    def cases(self) -> list[Case]:
        return list(self.extra)


Family = Headers | Inst | Fixed


# ----- the families ---------------------------------------------------------------------

CHATML = Headers(
    "chatml",
    lambda r: f"<|im_start|>{r}\n",
    "<|im_end|>\n",
    ("<|im_start|>", "<|im_end|>"),
)
LLAMA3 = Headers(
    "llama3",
    lambda r: f"<|start_header_id|>{r}<|end_header_id|>\n\n",
    "<|eot_id|>",
    ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
)
#: microsoft/phi-4: ChatML's tokens with <|im_sep|> after the role and no newlines.
PHI4 = Headers(
    "phi4",
    lambda r: f"<|im_start|>{r}<|im_sep|>",
    "<|im_end|>",
    ("<|im_start|>", "<|im_end|>", "<|im_sep|>"),
)
_PHI3_STOPS = ("<|end|>", "<|user|>", "<|assistant|>", "<|system|>")
#: Phi-3 / 3.5 (``<|user|>\n...<|end|>\n``) and Phi-4-mini (no newlines).
PHI3 = (
    Headers("phi3", lambda r: f"<|{r}|>\n", "<|end|>\n", _PHI3_STOPS),
    Headers("phi3", lambda r: f"<|{r}|>", "<|end|>", _PHI3_STOPS),
)

#: Qwen3: ChatML plus <think>. ``enable_thinking=False`` is Ollama's ``think: false``
#: (``$.IsThinkSet`` and not ``$.Think``): an empty think block opens the answer. Reasoning
#: (``reasoning_content``, Ollama's ``.Thinking``) is kept only in assistant turns after
#: the last user turn, as the Qwen3 template keeps it; earlier turns lose it.
QWEN3 = Fixed(
    "qwen3",
    "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}\n"
    "{{- $lastUser := -1 }}\n"
    '{{- range $i, $m := .Messages }}{{ if eq $m.Role "user" }}{{ $lastUser = $i }}{{ end }}'
    "{{ end }}\n"
    "{{- range $i, $_ := .Messages }}\n"
    "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
    '{{- if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
    "{{ if $last }}<|im_start|>assistant\n"
    "{{ if and $.IsThinkSet (not $.Think) }}<think>\n\n</think>\n\n{{ end }}{{ end }}\n"
    '{{- else if eq .Role "assistant" }}<|im_start|>assistant\n'
    "{{ if and (gt $i $lastUser) (or $last .Thinking) }}<think>\n{{ .Thinking }}\n</think>\n\n"
    "{{ end }}{{ .Content }}{{ if not $last }}<|im_end|>\n{{ end }}\n"
    "{{- end }}\n"
    "{{- end }}",
    ("<|im_start|>", "<|im_end|>", "<|endoftext|>"),
    extra=(
        Case(
            _S,
            [{"role": "user", "content": _U1}],
            hf={"enable_thinking": False},
            go={"IsThinkSet": True, "Think": False},
        ),
        Case(
            None,
            [{"role": "user", "content": _U1}],
            hf={"enable_thinking": True},
            go={"IsThinkSet": True, "Think": True},
        ),
        Case(  # reasoning of an earlier turn is dropped
            _S,
            [
                {"role": "user", "content": _U1},
                {"role": "assistant", "content": _A1, "reasoning_content": _R1},
                {"role": "user", "content": _U2},
            ],
        ),
        Case(  # the turn being written keeps its reasoning (an Ollama prefill)
            None,
            [
                {"role": "user", "content": _U1},
                {"role": "assistant", "content": _A1, "reasoning_content": _R1},
            ],
            gen=False,
            hf={"continue_final_message": True},
        ),
    ),
)


def _deepseek_r1(opening: str) -> Fixed:
    """DeepSeek-R1-Distill (Qwen and Llama share one template): the system prompt bare at
    the start, ``<｜User｜>`` / ``<｜Assistant｜>`` turns, the answer opened with
    ``opening`` (``<think>\\n`` since the distills' template update, nothing before).
    The template also cuts an earlier answer to what follows its ``</think>``; a Go
    template has no string functions (and Ollama passes thinking separately), so the
    answer's text is used as it comes."""
    return Fixed(
        "deepseek-r1",
        "{{- if .System }}{{ .System }}{{ end }}\n"
        "{{- range $i, $_ := .Messages }}\n"
        "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
        '{{- if eq .Role "user" }}<\uff5cUser\uff5c>{{ .Content }}'
        f"{{{{ if $last }}}}<\uff5cAssistant\uff5c>{go_literal(opening)}{{{{ end }}}}\n"
        '{{- else if eq .Role "assistant" }}<\uff5cAssistant\uff5c>{{ .Content }}'
        "{{ if not $last }}<\uff5cend\u2581of\u2581sentence\uff5c>{{ end }}\n"
        "{{- end }}\n"
        "{{- end }}",
        (
            "<\uff5cbegin\u2581of\u2581sentence\uff5c>",
            "<\uff5cend\u2581of\u2581sentence\uff5c>",
            "<\uff5cUser\uff5c>",
            "<\uff5cAssistant\uff5c>",
        ),
        extra=(
            Case(
                None,
                [{"role": "user", "content": _U1}, {"role": "assistant", "content": _A1}],
                gen=False,
                hf={"continue_final_message": True},
            ),
        ),
    )


DEEPSEEK_R1 = (_deepseek_r1("<think>\n"), _deepseek_r1(""))

_GEMMA_STOPS = ("<start_of_turn>", "<end_of_turn>")


def _gemma(system_at: Literal["first", "none"], family: str) -> Inst:
    return Inst(
        "<start_of_turn>user\n",
        "<end_of_turn>\n<start_of_turn>model\n",
        "",
        "<end_of_turn>\n",
        system_at,
        join="\n\n",
        family=family,
        stops=_GEMMA_STOPS,
    )


#: Gemma 3 puts the system prompt and a blank line at the start of the first user turn;
#: Gemma (1 and 2) has no system role at all (its template raises on one).
GEMMA = (_gemma("first", "gemma3"), _gemma("none", "gemma2"))


def tulu(eos: str) -> Headers:
    """OLMo 2 and Tulu 3: ``<|user|>\\n...\\n``, answers closed by eos and a newline."""
    return Headers(
        "tulu",
        lambda r: f"<|{r}|>\n",
        "\n",
        ("<|user|>", "<|assistant|>", "<|system|>"),
        assistant_close=f"{eos}\n",
    )


def mistral(eos: str) -> list[Inst]:
    return [
        Inst(uo, uc, ao, eos, at)
        for at in ("last", "first", "none")
        for uo, uc in (("[INST] ", " [/INST]"), ("[INST] ", "[/INST]"), ("[INST]", "[/INST]"))
        for ao in ("", " ")
    ]


# ----- recognition ----------------------------------------------------------------------


def conversations() -> list[Case]:
    """The renderings every family must reproduce: with and without a system prompt, one
    turn and three."""
    u1 = {"role": "user", "content": _U1}
    a1 = {"role": "assistant", "content": _A1}
    u2 = {"role": "user", "content": _U2}
    return [Case(_S, [u1]), Case(None, [u1]), Case(_S, [u1, a1, u2]), Case(None, [u1, a1, u2])]


def with_system(system: str | None, messages: Sequence[Msg]) -> list[Msg]:
    return ([{"role": "system", "content": system}] if system else []) + list(messages)


def _system_block(spec: Headers, text: str) -> str | None:
    """The system turn that opens a rendering (without its opener), up to the first user turn."""
    if not text.startswith(spec.open("system")):
        return None
    end = text.find(spec.open("user"))
    return text[len(spec.open("system")) : end] if end >= 0 else None


def learn_headers(spec: Headers, render: Renderer) -> Headers:
    """Fill in the system turn's fixed text, its end and the default prompt from renderings."""
    u1 = [{"role": "user", "content": _U1}]
    try:
        with_sys, bare_text = render(with_system(_S, u1), True), render(u1, True)
    except Exception:  # noqa: BLE001  (e.g. a template that refuses a system turn: the
        return spec  # checks then report what differs, with the template's own text)
    block = _system_block(spec, with_sys)
    if block is not None and _S in block:
        before, _, after = block.partition(_S)
        sys_close = spec.close if after.endswith(spec.close) else ""
        post = after[: len(after) - len(sys_close)]
        spec = replace(spec, pre=before, post=post, system_close=sys_close)
    bare = _system_block(spec, bare_text)
    if bare is not None:
        sys_close = spec.close if spec.system_close is None else spec.system_close
        body = bare[: len(bare) - len(sys_close)] if bare.endswith(sys_close) else bare
        if body.startswith(spec.pre) and body.endswith(spec.post):
            inner = body[len(spec.pre) : len(body) - len(spec.post)]
            spec = replace(spec, always_system=not inner, default_system=inner or None)
    return spec


def candidates(template: str, render: Renderer, eos: str) -> list[Family]:
    """The families ``template`` may be, by each family's marker, most specific first."""
    if "<\uff5cUser\uff5c>" in template and "<\uff5cAssistant\uff5c>" in template:
        return list(DEEPSEEK_R1)
    if "<|im_sep|>" in template:
        return [learn_headers(PHI4, render)]
    if "<|im_start|>" in template:
        if "Reasoning Mode" in template:  # SmolLM3's metadata block
            return [replace(learn_headers(CHATML, render), family="smollm3")]
        if "<think>" in template:
            # plain ChatML only if the template ignores enable_thinking, as that does
            plain = Case(_S, [{"role": "user", "content": _U1}], hf={"enable_thinking": False})
            return [QWEN3, replace(learn_headers(CHATML, render), extra=(plain,))]
        return [learn_headers(CHATML, render)]
    if "<|start_header_id|>" in template:
        return [learn_headers(LLAMA3, render)]
    if "<start_of_turn>" in template:
        return list(GEMMA)
    if "<|assistant|>" in template and "<|end|>" in template:
        return [learn_headers(spec, render) for spec in PHI3]
    if "<|user|>" in template and "<|assistant|>" in template:
        return [learn_headers(tulu(eos), render)]
    if "[INST]" in template:
        return list(mistral(eos))
    return []


KNOWN = (
    "ChatML <|im_start|> (Qwen2/2.5, SmolLM2), Qwen3, SmolLM3, Phi-4 <|im_sep|>, "
    "Phi-3 <|end|>, Llama 3 <|start_header_id|>, DeepSeek-R1 <\uff5cUser\uff5c>, "
    "Gemma <start_of_turn>, OLMo 2/Tulu <|user|>, Mistral [INST]"
)


def go_data(system: str | None, messages: Sequence[Msg], extra: dict[str, Any]) -> dict[str, Any]:
    """The data Ollama executes a template with: the system prompt as ``.System`` and as
    the first of ``.Messages`` (Ollama's collate keeps it there), thinking as ``.Thinking``."""
    turns = [
        {"Role": m["role"], "Content": m["content"], "Thinking": m.get("reasoning_content", "")}
        for m in with_system(system, messages)
    ]
    return {"System": system or "", "Messages": turns, **extra}
