"""The Modelfile TEMPLATE comes from the tokenizer's own chat template, checked by
rendering: ChatML, Llama 3 and Mistral are recognised with their system handling and
default system prompt; anything else is refused with the --template fix."""

from __future__ import annotations

import pytest

from hegelion_gguf.export.modelfile import (
    CHATML,
    ChatTemplateError,
    ModelfileSpec,
    chat_format_from_tokenizer,
    custom_chat_format,
    render_modelfile,
)

LLAMA31 = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']"
    "|trim %}{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}"
    "{%- endif %}{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\nToday Date: 26 Jul 2024\\n\\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
    "message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
LLAMA3 = (
    "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)
MISTRAL_V3 = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}"
    "{%- endif %}{%- for message in loop_messages %}{%- if message['role'] == 'user' %}"
    "{%- if loop.last and system_message is defined %}"
    "{{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}"
    "{%- else %}{{- '[INST] ' + message['content'] + '[/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token }}"
    "{%- endif %}{%- endfor %}"
)
MISTRAL_V1 = (  # no system role at all: the template raises on one
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ raise_exception('no system role') }}{% endif %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}"
    "{{ message['content'] + eos_token }}{% endif %}{% endfor %}"
)
PLAIN = (
    "{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)
CHATML_NEAR_MISS = (  # ChatML markers, but no newline after the role
    "{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant {% endif %}"
)


@pytest.fixture
def tokenizer():
    from hegelion_core.testing.tiny_models import build_tiny_tokenizer

    return build_tiny_tokenizer()


def test_chatml_of_the_tiny_tokenizer(tokenizer):
    chat = chat_format_from_tokenizer(tokenizer, "tiny")
    assert chat.family == "chatml" and chat.default_system is None and chat.checked == 4
    assert chat.template == CHATML.go()
    assert chat.stops == ("<|im_start|>", "<|im_end|>")
    text = render_modelfile(ModelfileSpec("./m.gguf", chat, system="Think twice."))
    assert text.splitlines()[0] == "FROM ./m.gguf"
    assert "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}" in text
    assert 'SYSTEM """Think twice."""' in text
    assert text.endswith("PARAMETER num_ctx 4096\nPARAMETER temperature 0.7\n")


def test_llama31_learns_the_fixed_system_preamble(tokenizer):
    tokenizer.chat_template = LLAMA31
    chat = chat_format_from_tokenizer(tokenizer, "l31")
    assert chat.family == "llama3" and chat.default_system is None
    # always a system turn, the date lines before the user's system prompt
    assert chat.template.startswith(
        "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
        "Today Date: 26 Jul 2024\n\n{{ .System }}<|eot_id|>"
    )
    assert "<|eot_id|>" in chat.stops and "<|im_end|>" in chat.stops  # the eos too


def test_llama3_plain(tokenizer):
    tokenizer.chat_template = LLAMA3
    chat = chat_format_from_tokenizer(tokenizer, "l3")
    assert chat.family == "llama3"
    assert chat.template.startswith("{{- if .System }}<|start_header_id|>system")


@pytest.mark.parametrize(
    "template,system_at,user_close,assistant_open",
    [
        (MISTRAL_V3, "last", "[/INST]", " "),
        (MISTRAL_V1, "none", " [/INST]", ""),
    ],
)
def test_mistral_variants(tokenizer, template, system_at, user_close, assistant_open):
    tokenizer.chat_template = template
    chat = chat_format_from_tokenizer(tokenizer, "mistral")
    assert chat.family == "mistral"
    assert f"{{{{ .Content }}}}{user_close}\n" in chat.template
    assert (
        f'{{{{- else if eq .Role "assistant" }}}}{assistant_open}{{{{ .Content }}}}'
        in chat.template
    )
    assert ("$.System" in chat.template) == (system_at != "none")
    if system_at == "last":
        assert "{{ if and $.System $last }}" in chat.template


@pytest.mark.parametrize(
    "template,problem",
    [
        (PLAIN, "none of the formats"),
        (CHATML_NEAR_MISS, "looks like chatml but differs from it"),
        (None, "has no chat template"),
    ],
)
def test_unrecognised_templates_are_refused(tokenizer, template, problem):
    tokenizer.chat_template = template
    with pytest.raises(ChatTemplateError) as err:
        chat_format_from_tokenizer(tokenizer, "model/tokenizer")
    assert str(err.value).startswith("model/tokenizer: ")
    assert problem in str(err.value) and "--template FILE" in str(err.value)


def test_custom_template_file(tmp_path):
    path = tmp_path / "t.tmpl"
    path.write_text("{{ .Prompt }}\n")
    chat = custom_chat_format(path, "</s>", ["###"])
    assert chat.family == "custom" and chat.template == "{{ .Prompt }}"
    assert chat.stops == ("###", "</s>")
    text = render_modelfile(ModelfileSpec("./m.gguf", chat, adapter="./a.gguf"))
    assert text.splitlines()[:3] == [
        "FROM ./m.gguf",
        "ADAPTER ./a.gguf",
        'TEMPLATE """{{ .Prompt }}"""',
    ]
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(Exception, match="empty"):
        custom_chat_format(tmp_path / "empty", None)
