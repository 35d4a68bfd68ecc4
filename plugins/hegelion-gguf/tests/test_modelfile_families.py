"""Every common family's chat template -> an Ollama Modelfile that needs no --template.

Each fixture in ``fixtures/chat_templates/`` holds a family's published chat template
and special tokens. For each, a real tokenizer carrying it renders system, multi-turn,
generation-prompt and prefill conversations with ``apply_chat_template``; the Go template
the export writes is rendered as Ollama renders it (``hegelion_gguf.export.go_template``),
and the two must be the same tokens. Where a template does what a Go template cannot
(string surgery on earlier answers), the test says so and checks what is equal.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from chat_fixtures import NAMES, build_family_model, build_family_tokenizer, load_fixture
from export_helpers import hegelion

from hegelion_gguf.export.go_template import GoTemplateError, render_go_template
from hegelion_gguf.export.modelfile import (
    ChatFormat,
    ChatTemplateError,
    chat_format_from_tokenizer,
)
from hegelion_gguf.export.ollama_templates import go_data, with_system

SYS = "Think in three movements."
U1 = {"role": "user", "content": "What is a thesis?"}
A1 = {"role": "assistant", "content": "A claim that is put to the test."}
U2 = {"role": "user", "content": "And what is the antithesis?"}

#: name -> (system, messages, add_generation_prompt, apply_chat_template options)
CASES: dict[str, tuple[str | None, list[dict[str, str]], bool, dict[str, Any]]] = {
    "system": (SYS, [U1], True, {}),
    "no system": (None, [U1], True, {}),
    "multi-turn": (SYS, [U1, A1, U2], True, {}),
    "multi-turn, no system": (None, [U1, A1, U2], True, {}),
    "prefill": (None, [U1, A1], False, {"continue_final_message": True}),
}


def _adds_bos(tok: Any) -> bool:
    return tok.bos_token is not None and tok("a")["input_ids"][:1] == [tok.bos_token_id]


def hf_tokens(tok: Any, system: str | None, messages: list, gen: bool, **options: Any) -> list:
    """The tokens the model was trained on: the chat template's text, tokenized as
    ``apply_chat_template(tokenize=True)`` does (no special tokens added)."""
    text = tok.apply_chat_template(
        with_system(system, messages), tokenize=False, add_generation_prompt=gen, **options
    )
    return tok(text, add_special_tokens=False)["input_ids"]


def ollama_text(chat: ChatFormat, system: str | None, messages: list, **extra: Any) -> str:
    return render_go_template(chat.template, go_data(system, messages, extra))


def ollama_tokens(tok: Any, chat: ChatFormat, system: str | None, messages: list, **extra: Any):
    """What Ollama feeds llama.cpp: the BOS the GGUF adds (where the tokenizer adds one),
    then the Go template's text with special tokens parsed."""
    ids = tok(ollama_text(chat, system, messages, **extra), add_special_tokens=False)["input_ids"]
    return ([tok.bos_token_id] if _adds_bos(tok) else []) + ids


@pytest.fixture(scope="module", params=NAMES)
def family(request: pytest.FixtureRequest) -> tuple[str, Any, ChatFormat]:
    tok = build_family_tokenizer(request.param)
    return request.param, tok, chat_format_from_tokenizer(tok, request.param)


def test_every_family_is_recognised_with_its_end_of_turn_stops(family):
    name, tok, chat = family
    fx = load_fixture(name)
    assert chat.family == fx["family"]
    assert list(chat.stops) == fx["stops"]
    for token in fx["special_tokens"]:  # the fixture's specials are real vocabulary entries
        assert tok.convert_tokens_to_ids(token) != tok.unk_token_id
        assert tok(token, add_special_tokens=False)["input_ids"] == [
            tok.convert_tokens_to_ids(token)
        ]


@pytest.mark.parametrize("case", list(CASES))
def test_go_template_gives_the_chat_templates_tokens(family, case):
    name, tok, chat = family
    system, messages, gen, options = CASES[case]
    if chat.family == "gemma2" and system:
        # Gemma 2's template raises on a system turn; the Modelfile drops the prompt, so
        # Ollama serves what the model was trained on: the conversation without it.
        with pytest.raises(Exception, match="System role not supported"):
            hf_tokens(tok, system, messages, gen, **options)
        want = hf_tokens(tok, None, messages, gen, **options)
    else:
        want = hf_tokens(tok, system, messages, gen, **options)
    if _adds_bos(tok) and want[:1] != [tok.bos_token_id]:
        # The template writes no BOS but the tokenizer adds one (Tulu 3 on Llama 3.1): the
        # BOS comes from the tokenizer, for llama.cpp as for `tokenizer(text)`, not from
        # any template, so it is not the Modelfile's to match.
        want = [tok.bos_token_id, *want]
    # Ollama's system prompt: the request's, else the Modelfile's SYSTEM (the default)
    served = system if system is not None else chat.default_system
    got = ollama_tokens(tok, chat, served, messages)
    assert got == want, f"{name}/{case}:\n{tok.decode(got)!r}\n!=\n{tok.decode(want)!r}"


def test_gemma3_folds_the_system_prompt_into_the_first_user_turn():
    tok = build_family_tokenizer("gemma3")
    chat = chat_format_from_tokenizer(tok, "gemma3")
    text = ollama_text(chat, SYS, [U1, A1, U2])
    assert text == (
        f"<start_of_turn>user\n{SYS}\n\n{U1['content']}<end_of_turn>\n"
        f"<start_of_turn>model\n{A1['content']}<end_of_turn>\n"
        f"<start_of_turn>user\n{U2['content']}<end_of_turn>\n<start_of_turn>model\n"
    )


# ----- Qwen3's thinking ------------------------------------------------------------------


@pytest.fixture(scope="module")
def qwen3() -> tuple[Any, ChatFormat]:
    tok = build_family_tokenizer("qwen3")
    return tok, chat_format_from_tokenizer(tok, "qwen3")


def test_qwen3_enable_thinking_false_is_ollamas_think_false(qwen3):
    tok, chat = qwen3
    off = hf_tokens(tok, SYS, [U1], True, enable_thinking=False)
    assert tok.decode(off).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert ollama_tokens(tok, chat, SYS, [U1], IsThinkSet=True, Think=False) == off
    on = hf_tokens(tok, SYS, [U1], True, enable_thinking=True)
    assert ollama_tokens(tok, chat, SYS, [U1], IsThinkSet=True, Think=True) == on
    assert ollama_tokens(tok, chat, SYS, [U1]) == on  # think not set: the template's default


def test_qwen3_keeps_reasoning_only_after_the_last_user_turn(qwen3):
    tok, chat = qwen3
    answered = {**A1, "reasoning_content": "A thesis is asserted first."}
    # an earlier turn's reasoning is dropped by both
    history = [U1, answered, U2]
    assert ollama_tokens(tok, chat, SYS, history) == hf_tokens(tok, SYS, history, True)
    assert "asserted first" not in ollama_text(chat, SYS, history)
    # the turn being written (an Ollama prefill) keeps it, in Qwen3's <think> block
    current = [U1, answered]
    want = hf_tokens(tok, None, current, False, continue_final_message=True)
    assert ollama_tokens(tok, chat, None, current) == want
    assert "<think>\nA thesis is asserted first.\n</think>\n\n" in tok.decode(want)


@pytest.mark.parametrize(
    "name,content,cut",
    [
        ("qwen3", "<think>\nWeigh it.\n</think>\n\nA claim.", "<think>\nWeigh it.\n</think>\n\n"),
        (
            "deepseek-r1-distill",
            "<think>\nWeigh it.\n</think>A claim.",
            "<think>\nWeigh it.\n</think>",
        ),
    ],
)
def test_reasoning_inside_an_earlier_answer_is_what_go_cannot_cut(name, content, cut):
    """Qwen3 and the R1 distills cut an earlier answer's text to what follows its
    ``</think>``; Go templates have no string functions, so Ollama's template keeps the
    text as the client sends it (Ollama itself returns thinking apart from the answer,
    so its own history carries none). Everything else is the same."""
    tok = build_family_tokenizer(name)
    chat = chat_format_from_tokenizer(tok, name)
    history = [U1, {"role": "assistant", "content": content}, U2]
    hf = tok.decode(hf_tokens(tok, SYS, history, True))
    go = tok.decode(ollama_tokens(tok, chat, SYS, history))
    assert cut in go and cut not in hf
    assert go.replace(cut, "", 1) == hf


def test_smollm3_writes_its_metadata_system_turn_and_default_prompt():
    tok = build_family_tokenizer("smollm3")
    chat = chat_format_from_tokenizer(tok, "smollm3")
    assert chat.default_system and chat.default_system.startswith(
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role"
    )
    # its system turn has no <|im_end|>: the user turn follows the instructions directly
    text = ollama_text(chat, SYS, [U1])
    assert text.startswith("<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025")
    assert (
        f"Reasoning Mode: /think\n\n## Custom Instructions\n\n{SYS}\n\n<|im_start|>user\n" in text
    )


def test_olmo2_writes_the_bos_its_template_writes():
    tok = build_family_tokenizer("olmo2")
    chat = chat_format_from_tokenizer(tok, "olmo2")
    assert not _adds_bos(tok)  # so llama.cpp will not add it either
    assert chat.template.startswith("<|endoftext|>{{- if .System }}<|system|>\n")
    assert ollama_text(chat, None, [U1]).startswith("<|endoftext|><|user|>\n")


# ----- what is refused --------------------------------------------------------------------


def test_a_family_marker_with_another_layout_is_refused():
    tok = build_family_tokenizer("gemma3")
    tok.chat_template = load_fixture("gemma3")["chat_template"].replace(
        "<start_of_turn>model\n", "<start_of_turn>assistant\n"
    )
    with pytest.raises(ChatTemplateError, match="looks like gemma3 but differs"):
        chat_format_from_tokenizer(tok, "near-gemma")


def test_unknown_go_constructs_are_errors_not_guesses():
    with pytest.raises(GoTemplateError):
        render_go_template(
            "{{ range .Messages }}{{ .Content | upper }}{{ end }}", {"Messages": [{}]}
        )
    with pytest.raises(GoTemplateError):
        render_go_template("{{ if .System }}unclosed", {"System": "x"})


# ----- `hegelion export gguf` on tiny models with these templates --------------------------

EXPORTED = ["deepseek-r1-distill", "qwen3", "gemma3", "phi4", "olmo2"]


def _modelfile(path: Path) -> tuple[str, str | None, list[str]]:
    text = path.read_text(encoding="utf-8")
    template = re.search(r'^TEMPLATE """(.*?)"""', text, re.DOTALL | re.MULTILINE)
    system = re.search(r'^SYSTEM """(.*?)"""', text, re.DOTALL | re.MULTILINE)
    stops = re.findall(r'^PARAMETER stop "(.*)"$', text, re.MULTILINE)
    assert template, text
    return template.group(1), system.group(1) if system else None, stops


@pytest.mark.parametrize("name", EXPORTED)
def test_export_writes_a_modelfile_without_template_flag(name, tmp_path):
    import json

    from llama_cpp import Llama

    model = build_family_model(tmp_path / "model", name)
    out = tmp_path / "out"
    result = hegelion(
        "export", "gguf", "--model", model, "--quantization", "f16", "--name", "t", "--out", out
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["passed"], result.output
    template, system, stops = _modelfile(out / "Modelfile")
    fx = load_fixture(name)
    assert stops == fx["stops"]  # as written: Ollama's parser reads no escapes

    # The rendering test on the exported files: the Modelfile's TEMPLATE, tokenized by the
    # GGUF's own vocabulary as llama.cpp does for Ollama (BOS as the GGUF says), against
    # the tokens of the HF tokenizer's chat template.
    tok = build_family_tokenizer(name)
    vocab = Llama(model_path=str(out / "t.f16.gguf"), vocab_only=True, verbose=False)
    chat = ChatFormat(fx["family"], template, tuple(stops), system)
    try:
        for case, (sys_prompt, messages, gen, options) in CASES.items():
            want = hf_tokens(tok, sys_prompt, messages, gen, **options)
            text = ollama_text(chat, sys_prompt if sys_prompt is not None else system, messages)
            got = vocab.tokenize(text.encode("utf-8"), add_bos=True, special=True)
            assert got == want, f"{name}/{case}: {text!r}"
    finally:
        vocab.close()


def test_a_thinking_template_that_is_not_qwen3s_is_refused():
    """A ChatML template whose thinking switch differs from Qwen3's: neither Qwen3's Go
    template nor plain ChatML (which ignores ``think``) reproduces it."""
    tok = build_family_tokenizer("qwen3")
    tok.chat_template = load_fixture("qwen3")["chat_template"].replace(
        "{{- '<think>\\n\\n</think>\\n\\n' }}", "{{- '<think>\\n</think>\\n' }}"
    )
    assert tok.chat_template != load_fixture("qwen3")["chat_template"]
    with pytest.raises(ChatTemplateError, match="looks like qwen3 but differs"):
        chat_format_from_tokenizer(tok, "near-qwen3")


def test_a_bos_the_template_does_not_write_is_left_alone():
    """SmolLM2's BOS is <|im_start|>, not added by its tokenizer: the ChatML template
    (which names no bos_token) is taken as it renders, nothing cut from its start."""
    from gguf_builders import build_styled_bpe_tokenizer

    tok = build_styled_bpe_tokenizer("smollm")
    assert tok.bos_token == "<|im_start|>" and not _adds_bos(tok)
    chat = chat_format_from_tokenizer(tok, "smollm")
    assert chat.family == "chatml" and chat.template.startswith("{{- if .System }}")
    assert ollama_tokens(tok, chat, SYS, [U1]) == hf_tokens(tok, SYS, [U1], True)


#: a variable set inside range is the outer one (Go 1.11+), as Qwen3's template needs
LAST_INDEX = (
    "{{ $n := -1 }}{{ range $i, $m := .L }}{{ if gt $i $n }}{{ $n = $i }}{{ end }}{{ end }}{{ $n }}"
)


@pytest.mark.parametrize(
    "template,data,want",
    [
        ("a \n\t{{- .X -}}\n b", {"X": "x"}, "axb"),  # {{- -}} trim Go's four spaces only
        ("a\u00a0{{- .X }}", {"X": "x"}, "a\u00a0x"),
        (
            LAST_INDEX,
            {"L": ["p", "q", "r"]},
            "2",
        ),
        ('{{ or .A "b" }}{{ and .A "c" }}{{ if not .A }}!{{ end }}', {"A": ""}, "b!"),
        ('{{ len (slice .L 1) }}{{ if eq .S "x" "y" }}+{{ end }}', {"L": [1, 2], "S": "y"}, "1+"),
    ],
)
def test_go_renderer_semantics(template, data, want):
    assert render_go_template(template, data) == want


ALWAYS_SYSTEM_CHATML = (
    "{% if messages[0]['role'] == 'system' %}{% set sys = messages[0]['content'] %}"
    "{% set rest = messages[1:] %}{% else %}{% set sys = '' %}{% set rest = messages %}{% endif %}"
    "<|im_start|>system\n{{ sys }}<|im_end|>\n{% for m in rest %}<|im_start|>{{ m['role'] }}\n"
    "{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_a_system_turn_written_even_when_empty_keeps_its_newline():
    """The Go template's always-written system turn ends in a newline right before
    ``{{- range``, which would trim it: it is quoted so it stays."""
    tok = build_family_tokenizer("qwen2.5")
    tok.chat_template = ALWAYS_SYSTEM_CHATML
    chat = chat_format_from_tokenizer(tok, "always-system")
    assert chat.family == "chatml" and chat.default_system is None
    assert chat.template.startswith('<|im_start|>system\n{{ .System }}{{ "<|im_end|>\\n" }}\n')
    for system in (SYS, None):
        want = hf_tokens(tok, system, [U1, A1, U2], True)
        assert ollama_tokens(tok, chat, system, [U1, A1, U2]) == want


def test_a_chatml_template_that_refuses_system_turns_is_an_error_not_a_traceback():
    tok = build_family_tokenizer("qwen2.5")
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system') }}"
        "{% endif %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    with pytest.raises(ChatTemplateError, match="looks like chatml but differs"):
        chat_format_from_tokenizer(tok, "no-system-chatml")
