"""Tiny models and tokenizers shaped for GGUF export, built for real (transformers,
tokenizers, sentencepiece). A module of its own, not conftest: a name imported from
`conftest` is whichever plugin's conftest pytest loaded last when plugins run together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# --- Export (GGUF conversion) fixtures --------------------------------------------
# Tiny models shaped for GGUF: hidden 256 and intermediate 512 make every weight row a
# multiple of 256, so K-quants (256-value blocks) really apply instead of llama.cpp's
# silent Q5_0/Q8_0 fallback for narrower rows. Built once per session.

EXPORT_DIMS: dict[str, Any] = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "max_position_embeddings": 512,
    "initializer_range": 0.02,
}

# name -> (architecture, tokenizer kind, tied embeddings)
EXPORT_MODELS: dict[str, tuple[str, str, bool]] = {
    "llama-bpe": ("llama", "bpe", True),
    "llama-spm": ("llama", "spm", True),
    "mistral-spm": ("mistral", "spm", False),
    "qwen2-bpe": ("qwen2", "bpe", True),
    "qwen3-bpe": ("qwen3", "bpe", False),
}

SPM_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{{ eos_token }}"
    "{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"
)


def build_spm_tokenizer(out: Path) -> Any:
    """A SentencePiece BPE model with byte fallback, trained here, wrapped as LlamaTokenizer.

    Settings follow Llama 2's tokenizer.model (identity normalisation, dummy prefix,
    whitespace kept), so llama.cpp's SentencePiece tokenizer reproduces it; byte
    fallback means no text is ever unknown (llama.cpp can abort on unknown bytes).
    """
    import io

    import sentencepiece as spm
    from transformers import LlamaTokenizer

    from hegelion_core.testing.tiny_models import DEFAULT_CORPUS

    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(DEFAULT_CORPUS),
        model_writer=buf,
        vocab_size=512,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        hard_vocab_limit=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        split_digits=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        allow_whitespace_only_pieces=True,
        num_threads=1,
        minloglevel=2,
    )
    (out / "tokenizer.model").write_bytes(buf.getvalue())
    tokenizer = LlamaTokenizer.from_pretrained(str(out), add_bos_token=True)
    tokenizer.chat_template = SPM_CHAT_TEMPLATE
    return tokenizer


def build_export_model(
    path: Path,
    arch: str,
    tokenizer_kind: str,
    *,
    tied: bool,
    seed: int = 0,
    dims: dict[str, Any] | None = None,
) -> Path:
    """Save a random `arch` model + tokenizer to `path`.

    1-D parameters (norm weights, attention biases, q/k norms) are perturbed away from
    their constant initial values, so a norm or bias mapped to the wrong tensor changes
    the logits and the numeric checks catch it.
    """
    import torch
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
        Qwen3Config,
        Qwen3ForCausalLM,
    )

    from hegelion_core.testing.tiny_models import build_tiny_tokenizer

    classes = {
        "llama": (LlamaConfig, LlamaForCausalLM),
        "mistral": (MistralConfig, MistralForCausalLM),
        "qwen2": (Qwen2Config, Qwen2ForCausalLM),
        "qwen3": (Qwen3Config, Qwen3ForCausalLM),
    }
    config_cls, model_cls = classes[arch]
    if tokenizer_kind == "spm":
        tokenizer = build_spm_tokenizer(path)
        ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    else:
        tokenizer = build_tiny_tokenizer(arch="qwen2" if arch.startswith("qwen") else "llama")
        ids = {
            "bos_token_id": None,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
    config = config_cls(
        **{
            "vocab_size": len(tokenizer),
            "tie_word_embeddings": tied,
            **EXPORT_DIMS,
            **ids,
            **(dims or {}),
        }
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
        with torch.no_grad():
            for param in model.parameters():
                if param.ndim == 1:
                    param.add_(0.1 * torch.randn_like(param))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# Pre-tokenizers of the real families, rebuilt on a tiny vocabulary: the structure of
# Llama 3's (its split regex, ignore_merges, BOS added by the post-processor) and of
# SmolLM's (digits split one by one, then GPT-2's byte-level split).
LLAMA3_SPECIALS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
)
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
    "<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def build_styled_bpe_tokenizer(style: str) -> Any:
    """A byte-level BPE tokenizer with the pre-tokenizer of `style` ("llama3" | "smollm")."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from hegelion_core.testing.tiny_models import DEFAULT_CORPUS
    from hegelion_gguf.export.vocab import _LLAMA3_SPLIT

    if style == "llama3":
        tok = Tokenizer(models.BPE(ignore_merges=True))
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(_LLAMA3_SPLIT), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        specials = list(LLAMA3_SPECIALS)
    elif style == "smollm":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            ]
        )
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    else:
        raise ValueError(style)
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
    if style == "llama3":
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A",
            pair="<|begin_of_text|> $A <|begin_of_text|> $B",
            special_tokens=[("<|begin_of_text|>", bos)],
        )
        wrapped = PreTrainedTokenizerFast(
            tokenizer_object=tok,
            bos_token="<|begin_of_text|>",
            eos_token="<|eot_id|>",
            additional_special_tokens=specials[1:4],
        )
        wrapped.chat_template = LLAMA3_TEMPLATE
    else:
        wrapped = PreTrainedTokenizerFast(
            tokenizer_object=tok,
            eos_token="<|im_end|>",
            bos_token="<|im_start|>",
            additional_special_tokens=["<|endoftext|>"],
        )
        from hegelion_core.testing.tiny_models import CHATML_TEMPLATE

        wrapped.chat_template = CHATML_TEMPLATE
    return wrapped


def build_styled_model(path: Path, style: str, *, rope: dict[str, Any] | None = None) -> Path:
    """A tiny Llama with a `style` tokenizer (and optional rope_parameters) saved to `path`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_styled_bpe_tokenizer(style)
    extra: dict[str, Any] = {"rope_parameters": rope} if rope else {}
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **EXPORT_DIMS,
        **extra,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        model = LlamaForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
