"""Ollama Modelfile whose TEMPLATE is the chat format the model was trained on.

Serving a model with a prompt format other than its training format quietly ruins it
(the Simplex scripts trained on plain ``Assistant:`` text and served ChatML). So the
TEMPLATE is never a guess: the tokenizer's own chat template is rendered on sample
conversations, and one of the known families (`ollama_templates`: ChatML, Qwen3,
SmolLM3, Llama 3, DeepSeek-R1, Gemma, Phi-3/4, OLMo 2/Tulu, Mistral) is accepted only
when the Go template it would write, rendered as Ollama renders it (`go_template`),
reproduces those renderings exactly, default system prompt and system wrapping
included. Anything else is an error that says how to pass a template by hand.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hegelion_core import HegelionError
from hegelion_gguf.export import ollama_templates
from hegelion_gguf.export.go_template import GoTemplateError, render_go_template
from hegelion_gguf.export.ollama_templates import (  # noqa: F401  (CHATML, LLAMA3: re-exported)
    CHATML,
    LLAMA3,
    Case,
    Msg,
    Renderer,
    conversations,
    go_data,
    go_literal,
    with_system,
)


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


# ----- recognition ---------------------------------------------------------------------


def derive_chat_format(
    chat_template: str | None,
    render: Renderer,
    *,
    eos: str | None,
    bos: str | None,
    source: str,
    written_bos: str | None = None,
) -> ChatFormat:
    """Recognise the chat format from the tokenizer's template; raise `ChatTemplateError`.

    ``render`` renders messages with that template (``apply_chat_template(messages,
    tokenize=False, add_generation_prompt=gen, **options)``); a leading ``bos`` is ignored
    because llama.cpp adds it itself. ``written_bos`` is a BOS the tokenizer does not add
    but the template writes (OLMo 2's ``{{ bos_token }}``): the Modelfile's template
    writes it too. A family is accepted only when its Go template, rendered as Ollama
    renders it, gives the tokenizer's text for every check.
    """
    if not chat_template:
        raise ChatTemplateError(
            source,
            "the tokenizer has no chat template, so the format the model was trained "
            "on is unknown (a model trained on plain 'User:/Assistant:' text needs that "
            "format served, not ChatML)",
        )

    lead = ""  # text every rendering starts with that the Go template writes as is
    if written_bos and "bos_token" in chat_template:
        try:
            probe = render([{"role": "user", "content": "x"}], True)
        except Exception:  # noqa: BLE001  (the candidates' checks report what fails)
            probe = ""
        lead = written_bos if probe.startswith(written_bos) else ""

    def safe_render(messages: list[Msg], gen: bool, **options: Any) -> str:
        text = render(messages, gen, **options)
        if bos and text.startswith(bos):
            return text[len(bos) :]
        return text[len(lead) :] if lead and text.startswith(lead) else text

    def hf(case: Case) -> str | None:
        try:
            return safe_render(with_system(case.system, case.messages), case.gen, **case.hf)
        except Exception:  # noqa: BLE001  (a template that refuses e.g. a system turn)
            return None

    candidates = ollama_templates.candidates(chat_template, safe_render, eos or "")
    if not candidates:
        raise ChatTemplateError(
            source,
            "the chat template is none of the formats hegelion writes an Ollama "
            f"template for ({ollama_templates.KNOWN})",
        )
    first_diff = ""
    for spec in candidates:
        ok = 0
        for case in [*conversations(), *spec.cases()]:
            want = hf(case)
            if want is None and case.system and spec.refuses_system:
                ok += 1  # the template rejects system turns and so does this family
                continue
            system = case.system if case.system is not None else spec.default_system
            try:
                got: str | None = render_go_template(
                    spec.go(), go_data(system, case.messages, case.go)
                )
            except GoTemplateError as exc:  # a bug in a family's template, not the user's
                raise HegelionError(f"internal: the {spec.family} Go template: {exc}") from None
            if got != want:
                if not first_diff:
                    first_diff = f"tokenizer renders {want!r}, the {spec.family} template {got!r}"
                break
            ok += 1
        else:
            stops = tuple(dict.fromkeys([*spec.stops, *([eos] if eos else [])]))
            template = (go_literal(lead) if lead else "") + spec.go()
            return ChatFormat(spec.family, template, stops, spec.default_system, ok)
    raise ChatTemplateError(
        source,
        f"the chat template looks like {candidates[0].family} but differs from it: {first_diff}",
    )


def chat_format_from_tokenizer(tokenizer: Any, source: str) -> ChatFormat:
    """`derive_chat_format` for a transformers tokenizer."""

    def render(messages: list[Msg], gen: bool, **options: Any) -> str:
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=gen, **options
        )

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
        written_bos=None if adds_bos else bos,
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
        # raw UTF-8: Ollama's Modelfile parser reads "..." without escapes, so a \uXXXX
        # would stay six characters and DeepSeek's <｜end▁of▁sentence｜> would never stop
        lines.append(f"PARAMETER stop {json.dumps(stop, ensure_ascii=False)}")
    lines.append(f"PARAMETER num_ctx {spec.num_ctx}")
    lines.append(f"PARAMETER temperature {spec.temperature:g}")
    return "\n".join(lines) + "\n"


def ollama_command(name: str, modelfile: Path) -> str:
    return f"ollama create {name} -f {modelfile}"
