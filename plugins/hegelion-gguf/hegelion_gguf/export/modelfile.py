"""Ollama Modelfile whose TEMPLATE is the chat format the model was trained on.

Serving a model with a prompt format other than its training format quietly ruins it
(the Simplex scripts trained on plain ``Assistant:`` text and served ChatML). So the
TEMPLATE is never a guess: the tokenizer's own chat template is rendered on sample
conversations, and one of the known families (ChatML, Llama 3 headers, Mistral
``[INST]``) is accepted only when a Python mirror of the Go template it would write
reproduces those renderings exactly, default system prompt and system wrapping
included. Anything else is an error that says how to pass a template by hand.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from hegelion_core import HegelionError

Msg = dict[str, str]
#: Renders a conversation as the tokenizer would: (messages, add_generation_prompt) -> text.
Renderer = Callable[[list[Msg], bool], str]

_S, _U1, _A1, _U2 = "\u27e6SYS\u27e7", "\u27e6U1\u27e7", "\u27e6A1\u27e7", "\u27e6U2\u27e7"


class ChatTemplateError(HegelionError):
    """The tokenizer's chat template is missing or matches no format we can write for
    Ollama; the message says how to pass one."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(
            f"{source}: {problem}\n"
            "  hint: write the Ollama TEMPLATE (Go template syntax) for the format this model "
            "was trained on to a file and pass it: hegelion export gguf ... --template FILE "
            "(see https://github.com/ollama/ollama/blob/main/docs/template.md)"
        )


@dataclass(frozen=True)
class ChatFormat:
    """A recognised chat format: its Go template, stop strings and default system prompt."""

    family: str
    template: str
    stops: tuple[str, ...]
    default_system: str | None = None
    #: rendered conversations that agreed with the tokenizer's template (for the report)
    checked: int = 0


# ----- family specs --------------------------------------------------------------------


@dataclass(frozen=True)
class _Headers:
    """Families where every turn is ``open(role) + content + close`` (ChatML, Llama 3)."""

    family: str
    open: Callable[[str], str]
    close: str
    stops: tuple[str, ...]
    marker: str
    pre: str = ""  # learned: text inside the system turn before / after the system prompt
    post: str = ""
    always_system: bool = False  # a system turn even with an empty system prompt
    default_system: str | None = None

    def render(self, system: str | None, messages: Sequence[Msg]) -> str:
        out = ""
        if system or self.always_system:
            out += self.open("system") + self.pre + (system or "") + self.post + self.close
        for m in messages:
            out += self.open(m["role"]) + m["content"] + self.close
        return out + self.open("assistant")

    def go(self) -> str:
        o = self.open
        sys_if, sys_end = ("", "") if self.always_system else ("{{- if .System }}", "{{ end }}")
        return (
            f"{sys_if}{_lit(o('system'))}{_lit(self.pre)}{{{{ .System }}}}{_lit(self.post)}"
            f"{_lit(self.close)}{sys_end}\n"
            "{{- range $i, $_ := .Messages }}\n"
            "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
            f'{{{{- if eq .Role "user" }}}}{_lit(o("user"))}{{{{ .Content }}}}{_lit(self.close)}'
            f"{{{{ if $last }}}}{_lit(o('assistant'))}{{{{ end }}}}\n"
            f'{{{{- else if eq .Role "assistant" }}}}{_lit(o("assistant"))}{{{{ .Content }}}}'
            f"{{{{ if not $last }}}}{_lit(self.close)}{{{{ end }}}}\n"
            "{{- end }}\n"
            "{{- end }}"
        )


@dataclass(frozen=True)
class _Inst:
    """Mistral: ``[INST] user [/INST] assistant</s>``, the system prompt inside a user turn."""

    user_open: str
    user_close: str
    assistant_open: str
    eos: str
    system_at: Literal["first", "last", "none"]
    join: str = "\n\n"
    family: str = "mistral"
    stops: tuple[str, ...] = ("[INST]", "[/INST]")
    default_system: str | None = None
    marker: str = "[INST]"

    def render(self, system: str | None, messages: Sequence[Msg]) -> str:
        users = [i for i, m in enumerate(messages) if m["role"] == "user"]
        at = {"first": users[:1], "last": users[-1:], "none": []}[self.system_at]
        out = ""
        for i, m in enumerate(messages):
            if m["role"] == "user":
                sys = system + self.join if system and i in at else ""
                out += self.user_open + sys + m["content"] + self.user_close
            else:
                out += self.assistant_open + m["content"] + self.eos
        return out

    def go(self) -> str:
        # .Messages keeps system turns (Ollama's collate), so "first user" is tracked
        # with a variable rather than by index.
        if self.system_at == "none":
            sys = ""
        else:
            which = "$last" if self.system_at == "last" else "(not $seen)"
            sys = (
                f"{{{{ if and $.System {which} }}}}{{{{ $.System }}}}{_lit(self.join)}"
                "{{ end }}{{ $seen = true }}"
            )
        return (
            "{{- $seen := false }}\n"
            "{{- range $i, $_ := .Messages }}\n"
            "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
            f'{{{{- if eq .Role "user" }}}}{_lit(self.user_open)}{sys}{{{{ .Content }}}}'
            f"{_lit(self.user_close)}\n"
            f'{{{{- else if eq .Role "assistant" }}}}{_lit(self.assistant_open)}{{{{ .Content }}}}'
            f"{{{{ if not $last }}}}{_lit(self.eos)}{{{{ end }}}}\n"
            "{{- end }}\n"
            "{{- end }}"
        )


def _lit(text: str) -> str:
    """Text placed literally in a Go template (quoted when it holds template braces)."""
    if "{{" in text or "}}" in text:
        return "{{ " + json.dumps(text) + " }}"
    return text


CHATML = _Headers(
    "chatml",
    lambda r: f"<|im_start|>{r}\n",
    "<|im_end|>\n",
    ("<|im_start|>", "<|im_end|>"),
    marker="<|im_start|>",
)
LLAMA3 = _Headers(
    "llama3",
    lambda r: f"<|start_header_id|>{r}<|end_header_id|>\n\n",
    "<|eot_id|>",
    ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    marker="<|start_header_id|>",
)


# ----- recognition ---------------------------------------------------------------------


def _conversations() -> list[tuple[str | None, list[Msg]]]:
    u1, a1, u2 = (
        {"role": "user", "content": _U1},
        {"role": "assistant", "content": _A1},
        {"role": "user", "content": _U2},
    )
    return [(_S, [u1]), (None, [u1]), (_S, [u1, a1, u2]), (None, [u1, a1, u2])]


def _with_system(system: str | None, messages: list[Msg]) -> list[Msg]:
    return ([{"role": "system", "content": system}] if system else []) + messages


def _learn_headers(spec: _Headers, render: Renderer) -> _Headers:
    """Fill in the system turn's fixed text and default prompt from sample renderings."""
    u1 = [{"role": "user", "content": _U1}]
    with_sys = render(_with_system(_S, u1), True)
    start = with_sys.find(spec.open("system"))
    if start >= 0 and _S in with_sys:
        body_start = start + len(spec.open("system"))
        s_at = with_sys.index(_S)
        end = with_sys.find(spec.close, s_at)
        if body_start <= s_at and end >= 0:
            spec = replace(spec, pre=with_sys[body_start:s_at], post=with_sys[s_at + len(_S) : end])
    bare = render(u1, True)
    if bare.startswith(spec.open("system")):
        body = bare[len(spec.open("system")) : bare.find(spec.close)]
        if body.startswith(spec.pre) and body.endswith(spec.post):
            inner = (
                body[len(spec.pre) : len(body) - len(spec.post)]
                if spec.post
                else body[len(spec.pre) :]
            )
            spec = replace(spec, always_system=not inner, default_system=inner or None)
    return spec


def _candidates(template: str, render: Renderer, eos: str) -> list[Any]:
    if CHATML.marker in template:
        return [_learn_headers(CHATML, render)]
    if LLAMA3.marker in template:
        return [_learn_headers(LLAMA3, render)]
    if _Inst.marker in template:
        return [
            _Inst(uo, uc, ao, eos, at)
            for at in ("last", "first", "none")
            for uo, uc in (("[INST] ", " [/INST]"), ("[INST] ", "[/INST]"), ("[INST]", "[/INST]"))
            for ao in ("", " ")
        ]
    return []


def _mirror(spec: Any, system: str | None, messages: list[Msg]) -> str:
    default = getattr(spec, "default_system", None)
    return spec.render(system if system is not None else default, messages)


def derive_chat_format(
    chat_template: str | None,
    render: Renderer,
    *,
    eos: str | None,
    bos: str | None,
    source: str,
) -> ChatFormat:
    """Recognise the chat format from the tokenizer's template; raise `ChatTemplateError`.

    ``render`` renders messages with that template (``apply_chat_template(...,
    tokenize=False)``); a leading ``bos`` is ignored because llama.cpp adds it itself.
    """
    if not chat_template:
        raise ChatTemplateError(
            source,
            "the tokenizer has no chat template, so the format the model was trained "
            "on is unknown (a model trained on plain 'User:/Assistant:' text needs that "
            "format served, not ChatML)",
        )

    def hf(system: str | None, messages: list[Msg]) -> str | None:
        try:
            text = render(_with_system(system, messages), True)
        except Exception:  # noqa: BLE001  (a template that refuses e.g. a system turn)
            return None
        return text[len(bos) :] if bos and text.startswith(bos) else text

    def safe_render(messages: list[Msg], gen: bool) -> str:
        text = render(messages, gen)
        return text[len(bos) :] if bos and text.startswith(bos) else text

    candidates = _candidates(chat_template, safe_render, eos or "")
    if not candidates:
        raise ChatTemplateError(
            source,
            "the chat template is none of the formats hegelion writes an Ollama "
            "template for (ChatML <|im_start|>, Llama 3 <|start_header_id|>, Mistral [INST])",
        )
    conversations = _conversations()
    expected = [hf(system, messages) for system, messages in conversations]
    first_diff = ""
    for spec in candidates:
        ok = 0
        for (system, messages), want in zip(conversations, expected, strict=True):
            if want is None and system and getattr(spec, "system_at", None) == "none":
                ok += 1  # the template rejects system turns and so does this spec
                continue
            got = _mirror(spec, system, messages)
            if got != want:
                if not first_diff:
                    first_diff = f"tokenizer renders {want!r}, the {spec.family} template {got!r}"
                break
            ok += 1
        else:
            stops = tuple(dict.fromkeys([*spec.stops, *([eos] if eos else [])]))
            return ChatFormat(
                spec.family, spec.go(), stops, getattr(spec, "default_system", None), ok
            )
    raise ChatTemplateError(
        source,
        f"the chat template looks like {candidates[0].family} but differs from it: {first_diff}",
    )


def chat_format_from_tokenizer(tokenizer: Any, source: str) -> ChatFormat:
    """`derive_chat_format` for a transformers tokenizer."""

    def render(messages: list[Msg], gen: bool) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)

    # A BOS written by the template is dropped only where the tokenizer adds one itself
    # (llama.cpp then adds it too); SmolLM2's "BOS" is <|im_start|>, part of every turn.
    bos = tokenizer.bos_token
    adds_bos = bos is not None and tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]
    return derive_chat_format(
        getattr(tokenizer, "chat_template", None),
        render,
        eos=tokenizer.eos_token,
        bos=bos if adds_bos else None,
        source=source,
    )


def custom_chat_format(
    template_file: Path, eos: str | None, stops: Sequence[str] = ()
) -> ChatFormat:
    """A user's own Go template (``--template FILE``), used as given."""
    try:
        text = Path(template_file).read_text(encoding="utf-8")
    except OSError as exc:
        raise HegelionError(f"{template_file}: cannot read the template ({exc.strerror})") from None
    if not text.strip():
        raise HegelionError(f"{template_file}: the template file is empty")
    return ChatFormat(
        "custom", text.strip("\n"), tuple(dict.fromkeys([*stops, *([eos] if eos else [])]))
    )


# ----- the Modelfile -------------------------------------------------------------------


@dataclass
class ModelfileSpec:
    gguf: str  # relative to the Modelfile's directory, e.g. ./model.q4_k_m.gguf
    chat: ChatFormat
    adapter: str | None = None
    system: str | None = None
    num_ctx: int = 4096
    temperature: float = 0.7
    extra_stops: list[str] = field(default_factory=list)


def _quote(text: str, what: str) -> str:
    if '"""' in text:
        raise HegelionError(f'the {what} contains \'"""\', which a Modelfile cannot quote')
    return f'"""{text}"""'


def render_modelfile(spec: ModelfileSpec) -> str:
    lines = [f"FROM {spec.gguf}"]
    if spec.adapter:
        lines.append(f"ADAPTER {spec.adapter}")
    lines.append(f"TEMPLATE {_quote(spec.chat.template, 'template')}")
    system = spec.system if spec.system is not None else spec.chat.default_system
    if system:
        lines.append(f"SYSTEM {_quote(system, 'system prompt')}")
    for stop in dict.fromkeys([*spec.chat.stops, *spec.extra_stops]):
        lines.append(f"PARAMETER stop {json.dumps(stop)}")
    lines.append(f"PARAMETER num_ctx {spec.num_ctx}")
    lines.append(f"PARAMETER temperature {spec.temperature:g}")
    return "\n".join(lines) + "\n"


def ollama_command(name: str, modelfile: Path) -> str:
    return f"ollama create {name} -f {modelfile}"
