"""Test tokenizers and tiny models carrying each family's published chat template.

The templates and special tokens come from ``fixtures/chat_templates/NAME.json`` (one per
family, each saying where its text came from). The tokenizer is a real byte-level BPE
trained here (GPT-2 pre-tokenization, as `build_tiny_tokenizer(arch="llama")`, so the
GGUF converter reads it) whose vocabulary holds the family's special tokens; a family
whose tokenizer adds a BOS (Gemma, Llama, the DeepSeek distills) adds it here too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "chat_templates"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def build_family_tokenizer(name: str) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from hegelion_core.testing.tiny_models import DEFAULT_CORPUS

    fx = load_fixture(name)
    specials = list(dict.fromkeys(["<|pad|>", *fx["special_tokens"]]))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        DEFAULT_CORPUS,
        trainers.BpeTrainer(
            vocab_size=512,
            min_frequency=1,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    bos = fx["bos_token"]
    if fx["add_bos_token"]:
        bos_id = tok.token_to_id(bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=fx["eos_token"],
        pad_token="<|pad|>",
        additional_special_tokens=[t for t in specials if t not in (bos, fx["eos_token"])],
        model_max_length=1024,
    )
    wrapped.chat_template = fx["chat_template"]
    return wrapped


def build_family_model(path: Path, name: str) -> Path:
    """A random 2-layer Llama with the family's tokenizer saved to ``path``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_family_tokenizer(name)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
