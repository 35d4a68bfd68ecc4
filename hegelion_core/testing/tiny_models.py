"""Tiny, randomly initialised models and tokenizers for tests.

Hegelion's tests (and plugin authors' tests) must run offline, fast and
deterministically, so they cannot download a model from the hub. This module
builds one from nothing: a byte-level BPE tokenizer trained on a fixed corpus and
a 2-layer Llama/Qwen2 with random weights from a fixed seed, saved in the usual
`save_pretrained` layout so any loader (transformers, TRL, PEFT, mlx-lm, a GGUF
converter) reads it like a real checkpoint.

Heavy libraries (tokenizers, transformers, torch) are imported inside the
functions, so `import hegelion_core.testing` stays cheap and torch-free; the
tokenizer path needs no torch at all (it also runs where only mlx-lm is installed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

__all__ = [
    "CHATML_TEMPLATE",
    "DEFAULT_CORPUS",
    "EOS_TOKEN",
    "PAD_TOKEN",
    "SPECIAL_TOKENS",
    "build_tiny_model",
    "build_tiny_tokenizer",
]

PAD_TOKEN = "<|pad|>"
EOS_TOKEN = "<|im_end|>"
# Order fixes the ids: pad=0, endoftext=1, im_start=2, im_end=3.
SPECIAL_TOKENS: tuple[str, ...] = ("<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>")

# ChatML. The assistant turn, its closing <|im_end|> included, sits inside
# {% generation %} so `return_assistant_tokens_mask` (TRL's assistant_only_loss)
# marks exactly what the model must learn to say, including when to stop. The
# newline after <|im_end|> is outside, so TRL's "stop token is trained" check passes.
CHATML_TEMPLATE: str = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- generation -%}"
    "{{- message['content'] + '<|im_end|>' -}}"
    "{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- endif -%}"
)

# Qwen2's pre-tokenizer split (transformers.models.qwen2.tokenization_qwen2).
_QWEN2_SPLIT = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Fixed training text for the tokenizer, so every build gives the same merges.
DEFAULT_CORPUS: tuple[str, ...] = (
    "You are a dialectical reasoning engine. Think in three movements before you answer.",
    "<thought> THESIS: The first position states a claim plainly and gives its best reasons.",
    "ANTITHESIS: The second position attacks the claim, finds the contradiction, and names "
    "the evidence that the thesis ignores. </thought>",
    "SYNTHESIS: The third position keeps what survives from both and resolves the tension "
    "into a better, more precise answer.",
    "<thought>\nTHESIS: Free markets allocate resources efficiently because prices carry "
    "information that no planner could collect.\n\nANTITHESIS: Markets fail when costs fall "
    "on people outside the trade; pollution and monopoly show that prices can lie.\n\n"
    "SYNTHESIS: Markets work best inside rules that make prices tell the truth, such as "
    "taxes on harm and limits on market power.\n</thought>",
    "The answer is that efficiency and fairness are not enemies when the rules are good.",
    "<thought>\nTHESIS: Knowledge comes from experience, since every idea begins as a sense "
    "impression.\n\nANTITHESIS: Mathematics and logic hold true before any experience, so "
    "reason must supply some knowledge on its own.\n\nSYNTHESIS: Experience gives the "
    "content and reason gives the form; knowledge needs both working together.\n</thought>",
    "What is the strongest objection to this view? Consider the counterexample and the "
    "research proposal that would test it.",
    "CONTRADICTION: The thesis assumes what it tries to prove. EVIDENCE: The historical "
    "record shows the opposite in several cases.",
    "RESEARCH PROPOSAL: Measure the effect in two groups over a year. TESTABLE PREDICTION: "
    "The treated group will change more than the control group.",
    "Is free will compatible with determinism? Should we trust intuition or evidence? "
    "Why do good arguments sometimes fail to persuade?",
    "Hegel described history as the movement of ideas through conflict toward "
    "reconciliation, where each stage negates and preserves the one before it.",
    "A careful thinker states the thesis, takes the antithesis seriously, and writes a "
    "synthesis that is honest about what remains uncertain.",
    "system user assistant question answer reason because therefore however although "
    "whereas unless since thus hence first second third finally",
    "0 1 2 3 4 5 6 7 8 9 10 100 2024 3.14 -- ; : , . ! ? ( ) [ ] { } \" ' / \\ * + = < > _ #",
)


def build_tiny_tokenizer(
    corpus: Iterable[str] | None = None,
    vocab_size: int = 512,
    *,
    arch: Literal["llama", "qwen2"] = "llama",
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with ChatML specials and `CHATML_TEMPLATE`.

    Byte-level means every string encodes (no unknown tokens), so any test text
    round-trips. Needs `tokenizers` and `transformers`, not torch.

    `arch="qwen2"` uses Qwen2's normalizer and split regex: transformers 5's
    `AutoTokenizer` loads any qwen2 checkpoint with `Qwen2Tokenizer`, which
    rebuilds that pipeline and ignores the saved one, so only this choice makes
    the saved tokenizer and the reloaded one agree token for token.
    """
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    texts = list(DEFAULT_CORPUS if corpus is None else corpus)
    tok = Tokenizer(models.BPE())
    if arch == "llama":  # GPT-2 pre-tokenization
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    elif arch == "qwen2":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        raise ValueError(f"unknown arch {arch!r}; expected 'llama' or 'qwen2'")
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)

    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        additional_special_tokens=["<|endoftext|>", "<|im_start|>"],
        model_max_length=1024,
        padding_side="right",
    )
    wrapped.chat_template = CHATML_TEMPLATE
    return wrapped


def build_tiny_model(
    path: str | os.PathLike[str],
    *,
    arch: Literal["llama", "qwen2"] = "llama",
    seed: int = 0,
    corpus: Iterable[str] | None = None,
) -> Path:
    """Save a random 2-layer `arch` model and its tokenizer to `path`; return the path.

    Same `seed` and `corpus` give the same weights and vocabulary. The global torch
    RNG is left as it was, so building a model never perturbs the caller's test.
    """
    if arch not in ("llama", "qwen2"):
        raise ValueError(f"unknown arch {arch!r}; expected 'llama' or 'qwen2'")
    import torch

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(corpus, arch=arch)

    shape: dict[str, Any] = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    if arch == "llama":
        from transformers import LlamaConfig as Config
        from transformers import LlamaForCausalLM as Model
    else:
        from transformers import Qwen2Config as Config
        from transformers import Qwen2ForCausalLM as Model

    config = Config(**shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Model(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
