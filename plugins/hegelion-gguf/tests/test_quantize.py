"""K-quant quantization through llama-cpp-python's `llama_model_quantize`.

The tiny export models have hidden 256 / intermediate 512 so that every weight row is
a multiple of 256 and the K-quant types are really used (narrower rows make llama.cpp
fall back to Q5_0/Q8_0 silently). Quantized files are judged by top-1 agreement of
llama.cpp's next-token choice with the HF model's over every position of a text, and
by the mean cosine similarity of the logits.

Random tiny models have nearly flat next-token distributions: at many positions the
HF model's two best tokens are within 0.1 logit, and any perturbation flips them. So
agreement is also measured on the "decisive" positions (top-2 margin >= 0.1), where
a flip is the quantization's fault. Measured over 96 positions, all / decisive:

    llama-bpe    q8_0 1.00/1.00  q6_k 1.00/1.00  q5_k_m 0.98/1.00  q4_k_m 1.00/1.00
    qwen2-bpe    q8_0 0.98/1.00  q6_k 0.98/1.00  q5_k_m 0.91/1.00  q4_k_m 0.90/1.00
    mistral-spm  q8_0 0.95/1.00  q6_k 0.94/1.00  q5_k_m 0.83/1.00  q4_k_m 0.74/0.91

mean logit cosine: q8_0 0.9998+, q6_k 0.9987+, q5_k_m 0.994+, q4_k_m 0.987+.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hegelion_core.testing.tiny_models import DEFAULT_CORPUS
from hegelion_gguf.export import QTYPES, QuantizeError, quantize_gguf

# qtype -> GGML types its weight matrices must use (llama.cpp mixes types per tensor:
# q4_k_m keeps some attn_v/ffn_down in Q6_K).
EXPECTED_TYPES = {
    "q8_0": {"Q8_0"},
    "q6_k": {"Q6_K"},
    "q5_k_m": {"Q5_K", "Q6_K"},
    "q4_k_m": {"Q4_K", "Q6_K"},
}
MIN_TOP1_AGREEMENT = {"q8_0": 0.9, "q6_k": 0.9, "q5_k_m": 0.8, "q4_k_m": 0.7}
MIN_DECISIVE_AGREEMENT = {"q8_0": 0.95, "q6_k": 0.95, "q5_k_m": 0.95, "q4_k_m": 0.85}
MIN_MEAN_COSINE = {"q8_0": 0.999, "q6_k": 0.995, "q5_k_m": 0.99, "q4_k_m": 0.98}


@pytest.fixture(scope="session")
def quantized(export_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("quantized")
    cache: dict[tuple[str, str], Path] = {}

    def get(name: str, qtype: str) -> Path:
        if (name, qtype) not in cache:
            src = export_models.gguf(name, "f16")
            cache[(name, qtype)] = quantize_gguf(src, root / f"{name}-{qtype}.gguf", qtype)
        return cache[(name, qtype)]

    return get


def matrix_types(path: Path) -> dict[str, str]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    return {t.name: t.tensor_type.name for t in reader.tensors if len(t.shape) == 2}


@pytest.mark.parametrize("qtype", ["q8_0", "q6_k", "q5_k_m", "q4_k_m"])
@pytest.mark.parametrize("name", ["llama-bpe", "qwen2-bpe", "mistral-spm"])
def test_quantized_model_agrees_with_hf(export_models, quantized, logits, name, qtype):
    from transformers import AutoTokenizer

    model_dir = export_models.model(name)
    path = quantized(name, qtype)
    types = matrix_types(path)
    block_types = {t for n, t in types.items() if n.startswith("blk.")}
    assert block_types <= EXPECTED_TYPES[qtype], types
    assert EXPECTED_TYPES[qtype] & block_types  # really K-quantized, no silent fallback

    ids = AutoTokenizer.from_pretrained(str(model_dir))(" ".join(DEFAULT_CORPUS[:3])).input_ids
    ids = ids[:96]
    got = logits.llama_cpp(path, ids, f32_cache=False)
    want = logits.hf(model_dir, ids)
    same = got.argmax(-1) == want.argmax(-1)
    top2 = np.sort(want, axis=-1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) >= 0.1
    assert decisive.mean() >= 0.25  # enough decisive positions to mean something
    agreement, decisive_agreement = float(same.mean()), float(same[decisive].mean())
    cosine = (got * want).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(want, axis=-1)
    assert agreement >= MIN_TOP1_AGREEMENT[qtype], f"{name} {qtype}: top-1 {agreement:.3f}"
    assert decisive_agreement >= MIN_DECISIVE_AGREEMENT[qtype], (
        f"{name} {qtype}: top-1 on decisive positions {decisive_agreement:.3f}"
    )
    assert cosine.mean() >= MIN_MEAN_COSINE[qtype], f"{name} {qtype}: cosine {cosine.mean():.4f}"


def test_smaller_types_make_smaller_files(quantized, export_models):
    f16 = export_models.gguf("llama-bpe", "f16").stat().st_size
    sizes = [quantized("llama-bpe", q).stat().st_size for q in ("q8_0", "q6_k", "q5_k_m", "q4_k_m")]
    assert f16 > sizes[0] > sizes[1] > sizes[2] > sizes[3]


def test_unknown_type_lists_the_known_ones(export_models, tmp_path):
    with pytest.raises(QuantizeError) as err:
        quantize_gguf(export_models.gguf("llama-bpe"), tmp_path / "x.gguf", "q3_z")  # type: ignore[arg-type]
    assert "'q3_z'" in str(err.value)
    for name in ("q4_k_m", "q5_k_m", "q6_k", "q8_0"):
        assert name in str(err.value) and name in QTYPES
    assert not (tmp_path / "x.gguf").exists()


def test_not_a_gguf_file(tmp_path):
    src = tmp_path / "model.safetensors"
    src.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(QuantizeError, match="not a GGUF file"):
        quantize_gguf(src, tmp_path / "out.gguf", "q4_k_m")
    with pytest.raises(QuantizeError, match="not found"):
        quantize_gguf(tmp_path / "missing.gguf", tmp_path / "out.gguf", "q4_k_m")
    assert not (tmp_path / "out.gguf").exists()


def test_llama_cpp_failure_leaves_no_output_and_keeps_the_old_one(tmp_path, export_models):
    """A GGUF llama.cpp cannot quantize (a vocabulary-only file, no tensors) fails cleanly."""
    import gguf

    vocab_only = tmp_path / "vocab.gguf"
    writer = gguf.GGUFWriter(vocab_only, "llama")
    writer.add_block_count(2)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    dst = tmp_path / "out.gguf"
    dst.write_bytes(b"the previous quantization")
    with pytest.raises(QuantizeError, match="could not quantize"):
        quantize_gguf(vocab_only, dst, "q4_k_m")
    assert dst.read_bytes() == b"the previous quantization"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.gguf")] == []


def test_refuses_to_overwrite_its_input(export_models, tmp_path):
    src = tmp_path / "m.gguf"
    src.write_bytes(export_models.gguf("llama-bpe").read_bytes())
    with pytest.raises(QuantizeError, match="overwrite its own input"):
        quantize_gguf(src, src, "q8_0")
