"""Tokenizer metadata for GGUF: what llama.cpp needs to tokenize exactly like Hugging Face.

Two kinds, chosen as llama.cpp's converter chooses them for llama-family models:

* SentencePiece (`tokenizer.model` present): `tokenizer.ggml.model = "llama"`, with
  pieces, scores and token types (byte-fallback pieces typed BYTE).
* Byte-level BPE (`tokenizer.json`): `tokenizer.ggml.model = "gpt2"` with the merges
  and a pre-tokenizer name (`tokenizer.ggml.pre`) that selects llama.cpp's split regex.
  The name is found as llama.cpp does it, from the hash of the tokenization of a fixed
  check string; a tokenizer trained here (unknown hash) is recognised by the structure
  of its pre-tokenizer instead, and anything else is refused rather than guessed,
  because a wrong pre-tokenizer silently changes every prompt.

Special token ids, add_bos/add_eos and the chat template come from
`gguf.SpecialVocab`; add_bos/add_eos are then set from what the Hugging Face tokenizer
actually does, which is the behaviour the model was trained with.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any, Literal

from hegelion_gguf.export.errors import MissingTokenizer, TokenizerError, UnknownPreTokenizer

__all__ = [
    "CHKTXT",
    "KNOWN_PRE_HASHES",
    "VocabSummary",
    "detect_pre_tokenizer",
    "pre_tokenizer_hash",
    "write_vocab",
]

# llama.cpp's check string (convert_hf_to_gguf.py, get_vocab_base_pre): its
# tokenization exercises whitespace runs, digits, emoji, CJK, contractions.
CHKTXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis "
    "concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
    "កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български "
    "''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? "
    "'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)

# sha256(str(AutoTokenizer.encode(CHKTXT))) -> tokenizer.ggml.pre, from llama.cpp's
# get_vocab_base_pre for the families Hegelion exports.
KNOWN_PRE_HASHES: dict[str, str] = {
    # meta-llama/Meta-Llama-3-8B (Llama 3, 3.1, 3.2 share the tokenizer)
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",
    # abacusai/Smaug-Llama-3-70B-Instruct
    "c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d": "smaug-bpe",
    # HuggingFaceTB/SmolLM-135M (SmolLM and SmolLM2)
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",
    # Qwen/Qwen1.5-7B (Qwen1.5, Qwen2, Qwen2.5)
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",
    # Qwen/Qwen3-Embedding-0.6B
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",
    # deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B
    "b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5": "deepseek-r1-qwen",
    # mistralai/Mistral-Nemo-Base-2407
    "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e": "tekken",
    # openai-community/gpt2
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",
}

# Split regexes of the pre-tokenizers recognised by structure (tokenizers' JSON).
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# SentencePiece token types (llama.cpp's SentencePieceTokenTypes == gguf.TokenType).
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6


@dataclass(frozen=True)
class VocabSummary:
    """What was written, for logs and the verification report."""

    model: Literal["gpt2", "llama"]
    pre: str
    pre_source: Literal["hash", "structure", "sentencepiece"]
    n_tokens: int
    add_bos: bool
    add_eos: bool
    chat_template: bool


def write_vocab(writer: Any, model_dir: Path, vocab_size: int) -> VocabSummary:
    """Add the tokenizer of `model_dir` to `writer` (a `gguf.GGUFWriter`)."""
    spm_file = model_dir / "tokenizer.model"
    json_file = model_dir / "tokenizer.json"
    if spm_file.is_file():
        summary = _write_sentencepiece(writer, model_dir, vocab_size)
    elif json_file.is_file():
        spec = _read_json(json_file)
        if _is_sentencepiece_bpe(spec):
            summary = _write_sentencepiece_bpe(writer, model_dir, vocab_size, spec)
        else:
            summary = _write_bpe(writer, model_dir, vocab_size)
    else:
        raise MissingTokenizer(model_dir, ["tokenizer.json", "tokenizer.model"])
    return summary


def _load_hf_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    except (OSError, ValueError, TypeError) as exc:
        raise MissingTokenizer(model_dir, ["tokenizer.json", "tokenizer.model"]) from exc


def pre_tokenizer_hash(tokenizer: Any) -> str:
    """llama.cpp's fingerprint of a BPE pre-tokenizer (and vocabulary)."""
    return sha256(str(tokenizer.encode(CHKTXT)).encode()).hexdigest()


def detect_pre_tokenizer(
    tokenizer: Any, where: Path | None = None
) -> tuple[str, Literal["hash", "structure"]]:
    """(tokenizer.ggml.pre, "hash" | "structure") for a Hugging Face fast tokenizer."""
    chkhsh = pre_tokenizer_hash(tokenizer)
    if chkhsh in KNOWN_PRE_HASHES:
        return KNOWN_PRE_HASHES[chkhsh], "hash"
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    name = _pre_from_structure(spec)
    if name is not None:
        return name, "structure"
    raise UnknownPreTokenizer(
        f"{where or 'tokenizer'}: BPE pre-tokenizer not recognised (chkhsh {chkhsh}; "
        f"normalizer {json.dumps(spec.get('normalizer'))}, pre_tokenizer "
        f"{json.dumps(spec.get('pre_tokenizer'))}). llama.cpp would tokenize prompts "
        "differently from the model's own tokenizer, so the export stops here.\n"
        "  hint: point LLAMA_CPP_DIR at a recent llama.cpp checkout (its converter knows "
        f"more tokenizers), or use one of the known ones: "
        f"{', '.join(sorted(set(KNOWN_PRE_HASHES.values())))}"
    )


def _pre_from_structure(spec: dict[str, Any]) -> str | None:
    """Name a pre-tokenizer llama.cpp implements, from tokenizers' JSON, or None."""
    normalizer = spec.get("normalizer")
    pre = spec.get("pre_tokenizer") or {}
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        return None
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]

    def byte_level(step: dict[str, Any], use_regex: bool) -> bool:
        return (
            step.get("type") == "ByteLevel"
            and bool(step.get("use_regex", True)) == use_regex
            and not step.get("add_prefix_space", False)
        )

    def split(step: dict[str, Any], pattern: str) -> bool:
        regex = (step.get("pattern") or {}).get("Regex")
        return (
            step.get("type") == "Split"
            and regex == pattern
            and step.get("behavior") == "Isolated"
            and not step.get("invert", False)
        )

    if normalizer is None and kinds == ["ByteLevel"] and byte_level(steps[0], True):
        return "gpt-2"
    if (
        normalizer is None
        and kinds == ["Digits", "ByteLevel"]
        and steps[0].get("individual_digits")
        and byte_level(steps[1], True)
    ):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and byte_level(steps[1], False):
        if split(steps[0], _QWEN2_SPLIT) and normalizer in (None, {"type": "NFC"}):
            return "qwen2"
        if split(steps[0], _LLAMA3_SPLIT) and normalizer is None and model.get("ignore_merges"):
            return "llama-bpe"
    return None


def _does_token_look_special(token: str) -> bool:
    # llama.cpp marks these CONTROL even when the tokenizer does not call them special.
    return (
        token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
        or (token.startswith("<|") and token.endswith("|>"))
        or (token.startswith("<｜") and token.endswith("｜>"))
        or (token.startswith("<unused") and token.endswith(">"))
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise TokenizerError(
            f"{path}: not valid JSON ({exc})\n  hint: re-save the tokenizer with "
            "AutoTokenizer.from_pretrained(BASE).save_pretrained(MODEL_DIR)"
        ) from None
    if not isinstance(data, dict):
        raise TokenizerError(f"{path}: expected a JSON object")
    return data


def _write_bpe(writer: Any, model_dir: Path, vocab_size: int) -> VocabSummary:
    import gguf

    spec = _read_json(model_dir / "tokenizer.json")
    kind = (spec.get("model") or {}).get("type")
    if kind != "BPE":
        raise TokenizerError(
            f"{model_dir / 'tokenizer.json'}: model type {kind!r} without a tokenizer.model; "
            "only byte-level BPE (tokenizer.json) and SentencePiece (tokenizer.model) "
            "tokenizers can be exported"
        )
    tokenizer = _load_hf_tokenizer(model_dir)
    pre, source = detect_pre_tokenizer(tokenizer, model_dir / "tokenizer.json")

    vocab: dict[str, int] = tokenizer.get_vocab()
    _check_fits(model_dir, max(vocab.values()) + 1, vocab_size)
    n_vocab = vocab_size
    reverse = {i: tok for tok, i in vocab.items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    for i in range(n_vocab):
        tok = reverse.get(i)
        if tok is None:
            tokens.append(f"[PAD{i}]")
            types.append(_UNUSED)
            continue
        if tok in added:
            # llama.cpp assumes CONTROL/USER_DEFINED tokens are pre-normalised.
            if i in decoder and not decoder[i].normalized:
                tok = tokenizer.decode(tokenizer.encode(tok, add_special_tokens=False))
            special = i in decoder and decoder[i].special
            types.append(_CONTROL if special or _does_token_look_special(tok) else _USER_DEFINED)
        else:
            types.append(_NORMAL)
        tokens.append(tok)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=n_vocab)
    add_bos, add_eos = _set_add_special(special, tokenizer)
    special.add_to_gguf(writer, quiet=True)
    return VocabSummary(
        "gpt2", pre, source, n_vocab, add_bos, add_eos, special.chat_template is not None
    )


def _write_sentencepiece(writer: Any, model_dir: Path, vocab_size: int) -> VocabSummary:
    import gguf
    from sentencepiece import SentencePieceProcessor

    path = model_dir / "tokenizer.model"
    sp = SentencePieceProcessor()
    try:
        sp.LoadFromFile(str(path))
    except (OSError, RuntimeError) as exc:
        raise MissingTokenizer(model_dir, ["a readable tokenizer.model"]) from exc
    added = _added_tokens(model_dir)
    _check_fits(model_dir, max([sp.vocab_size()] + [tid + 1 for tid, _, _ in added]), vocab_size)
    n_vocab = vocab_size
    tokens: list[bytes] = [f"[PAD{i}]".encode() for i in range(n_vocab)]
    scores: list[float] = [-10000.0] * n_vocab
    types: list[int] = [_UNUSED] * n_vocab
    for i in range(sp.vocab_size()):
        tokens[i] = sp.IdToPiece(i).encode("utf-8")
        scores[i] = sp.GetScore(i)
        if sp.IsUnknown(i):
            types[i] = _UNKNOWN
        elif sp.IsControl(i):
            types[i] = _CONTROL
        elif sp.IsUnused(i):
            types[i] = _UNUSED
        elif sp.IsByte(i):
            types[i] = _BYTE
        else:
            types[i] = _NORMAL

    # Tokens added on top of the SentencePiece model (chat markers and the like):
    # transformers 5 lists them in tokenizer.json, older ones in tokenizer_config.json.
    for tid, content, is_special in added:
        if is_special or _does_token_look_special(content):
            types[tid] = _CONTROL
        else:
            content = content.replace("\u2581", " ")  # llama.cpp pre-normalises these
            types[tid] = _USER_DEFINED
        scores[tid] = -1000.0
        tokens[tid] = content.encode("utf-8")

    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    add_prefix = _add_space_prefix(model_dir)
    if add_prefix is not None:
        writer.add_add_space_prefix(add_prefix)
    special = gguf.SpecialVocab(model_dir, n_vocab=n_vocab)
    tokenizer = _load_hf_tokenizer(model_dir)
    add_bos, add_eos = _set_add_special(special, tokenizer)
    special.add_to_gguf(writer, quiet=True)
    return VocabSummary(
        "llama",
        "default",
        "sentencepiece",
        n_vocab,
        add_bos,
        add_eos,
        special.chat_template is not None,
    )


def _check_fits(model_dir: Path, n_tokens: int, vocab_size: int) -> None:
    """Every token id needs an embedding row; llama.cpp would fail on load otherwise."""
    if n_tokens > vocab_size:
        raise TokenizerError(
            f"{model_dir}: the tokenizer has ids up to {n_tokens - 1} but config.json "
            f"vocab_size is {vocab_size}\n  hint: tokens were added after the model was "
            "saved; call model.resize_token_embeddings(len(tokenizer)) and save both again"
        )


def _is_sentencepiece_bpe(spec: dict[str, Any]) -> bool:
    """A Llama-2-style tokenizer.json: SentencePiece BPE converted by transformers.

    Byte fallback instead of byte-level symbols, and spaces as U+2581 (a Metaspace
    pre-tokenizer, or a Prepend/Replace normalizer in older files).
    """
    model = spec.get("model") or {}
    if model.get("type") != "BPE" or not model.get("byte_fallback"):
        return False
    pre = spec.get("pre_tokenizer") or {}
    normalizer = json.dumps(spec.get("normalizer"), ensure_ascii=False)
    return pre.get("type") == "Metaspace" or (not pre and "\u2581" in normalizer)


def _write_sentencepiece_bpe(
    writer: Any, model_dir: Path, vocab_size: int, spec: dict[str, Any]
) -> VocabSummary:
    """Write a tokenizer.json-only SentencePiece BPE as llama.cpp's `llama` vocabulary.

    llama.cpp's SentencePiece tokenizer merges the adjacent pair whose result has the
    highest score; HF's BPE merges by rank. Scoring each token by minus the rank of
    the merge that makes it gives both the same order (llama.cpp's own converter
    writes a flat -1000 here, which loses the order).
    """
    import gguf

    model = spec["model"]
    base_vocab: dict[str, int] = model.get("vocab") or {}
    merges = model.get("merges") or []
    rank: dict[str, int] = {}
    for i, merge in enumerate(merges):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        rank.setdefault(left + right, i)
    added = _added_tokens(model_dir)
    ids = list(base_vocab.values()) + [tid for tid, _, _ in added]
    _check_fits(model_dir, max(ids) + 1, vocab_size)
    tokens: list[bytes] = [f"[PAD{i}]".encode() for i in range(vocab_size)]
    scores: list[float] = [-10000.0] * vocab_size
    types: list[int] = [_UNUSED] * vocab_size
    unk = model.get("unk_token")
    for piece, tid in base_vocab.items():
        tokens[tid] = piece.encode("utf-8")
        if re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", piece):
            types[tid], scores[tid] = _BYTE, 0.0
        elif piece == unk:
            types[tid], scores[tid] = _UNKNOWN, 0.0
        else:
            types[tid], scores[tid] = _NORMAL, -float(rank.get(piece, len(merges)))
    for tid, content, is_special in added:
        if is_special or _does_token_look_special(content):
            types[tid] = _CONTROL
        else:
            content = content.replace("\u2581", " ")
            types[tid] = _USER_DEFINED
        scores[tid] = -1000.0
        tokens[tid] = content.encode("utf-8")

    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    add_prefix = _add_space_prefix(model_dir)
    if add_prefix is not None:
        writer.add_add_space_prefix(add_prefix)
    special = gguf.SpecialVocab(model_dir, n_vocab=vocab_size)
    add_bos, add_eos = _set_add_special(special, _load_hf_tokenizer(model_dir))
    special.add_to_gguf(writer, quiet=True)
    return VocabSummary(
        "llama",
        "default",
        "sentencepiece",
        vocab_size,
        add_bos,
        add_eos,
        special.chat_template is not None,
    )


def _added_tokens(model_dir: Path) -> list[tuple[int, str, bool]]:
    found: dict[int, tuple[str, bool]] = {}
    tok_json = model_dir / "tokenizer.json"
    if tok_json.is_file():
        for entry in _read_json(tok_json).get("added_tokens", []):
            found[int(entry["id"])] = (entry["content"], bool(entry.get("special")))
    config = model_dir / "tokenizer_config.json"
    if config.is_file():
        decoder = _read_json(config).get("added_tokens_decoder", {})
        for tid, entry in decoder.items():
            found.setdefault(int(tid), (entry["content"], bool(entry.get("special"))))
    return [(tid, content, special) for tid, (content, special) in sorted(found.items())]


def _add_space_prefix(model_dir: Path) -> bool | None:
    """Whether SentencePiece's dummy prefix space is added, when the files say so."""
    config = model_dir / "tokenizer_config.json"
    if config.is_file():
        value = _read_json(config).get("add_prefix_space")
        if isinstance(value, bool):
            return value
    tok_json = model_dir / "tokenizer.json"
    if tok_json.is_file():
        pre = _read_json(tok_json).get("pre_tokenizer") or {}
        if pre.get("type") == "Metaspace" and pre.get("prepend_scheme") == "never":
            return False
    return None


def _set_add_special(special: Any, tokenizer: Any) -> tuple[bool, bool]:
    """Record whether the HF tokenizer really adds BOS/EOS around a plain text."""
    with_special = tokenizer.encode("a b", add_special_tokens=True)
    without = tokenizer.encode("a b", add_special_tokens=False)
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    add_bos = bos is not None and len(with_special) > len(without) and with_special[0] == bos
    add_eos = (
        eos is not None
        and len(with_special) > len(without)
        and with_special[-1] == eos
        and without[-1:] != [eos]
    )
    special.add_special_token["bos"] = add_bos
    special.add_special_token["eos"] = add_eos
    return add_bos, add_eos
