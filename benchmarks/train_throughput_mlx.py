"""MLX training throughput: ``hegelion train --trainer mlx`` against mlx-lm's own LoRA.

    python benchmarks/train_throughput_mlx.py [--sizes tiny,small] [--repeats 3] [--epochs 3]

Measured on 2 busy x86_64 cores (mlx 0.32.4 CPU backend, mlx-lm 0.32.2; medians of 3
alternating runs, 3 timed epochs of 16 steps each; load average 2-8 from other jobs):

    model                       mlx-lm s/step   hegelion s/step   overhead   MLX peak MB
    tiny  (hidden 64, 2 blocks)      1.079            1.023          -5.2%     51.8 / 51.6
    small (hidden 256, 4 blocks)     6.563            5.828         -11.2%    280.8 / 280.4

Hegelion is no slower (the spread between runs, 10-40%, is larger than the difference).

Both sides train the same model on the same ``hegelion dataset --format mlx``
directory with the same settings: LoRA rank 8, scale 20 (Hegelion: r 8, alpha 160)
on every linear layer of every block, no dropout, Adam at a constant 1e-5, batch 4,
prompt masked, max length 2048. mlx-lm runs through `mlx_lm.lora.train_model`, the
function ``mlx_lm.lora`` calls after loading (so no output parsing); Hegelion runs
``hegelion train`` in-process. Each run is a fresh process, and runs alternate
(mlx-lm, Hegelion, mlx-lm, ...) so background load hits both alike.

The first epoch is warm-up (mx.compile traces each padded length; on mlx's CPU
backend it also builds kernels with the system C++ compiler, cached under
$TMPDIR/mlx). Timed: the following whole epochs, so both sides process the same
multiset of batches. Validation and saving are outside the timed window on both.

Printed per model: median seconds per step, tokens/s (Hegelion's count: targets
trained, ``offset <= t < length``; mlx-lm 0.32 also trains one pad target per row,
so its own tokens/s figure is higher by that much), peak MLX memory, peak RSS, and
Hegelion's overhead in time per step. Target: <= 5%. Needs hegelion-mlx, mlx-lm
(``mlx-lm[cpu]`` on Linux) and torch (to build the models).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH = 4
ROWS = 64  # 16 batches per epoch
SIZES = {
    "tiny": None,  # hegelion_core.testing.tiny_models: hidden 64, 2 blocks
    "small": {
        "hidden_size": 256,
        "intermediate_size": 688,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
    },
}
WORDS = [
    "reason",
    "evidence",
    "claim",
    "doubt",
    "freedom",
    "market",
    "price",
    "rule",
    "habit",
    "history",
    "idea",
    "cause",
    "answer",
    "question",
    "truth",
    "power",
    "change",
    "care",
    "speed",
    "law",
    "mind",
    "art",
    "trust",
    "value",
]


def make_model(size: str, dest: Path) -> Path:
    from hegelion_core.testing.tiny_models import build_tiny_model, build_tiny_tokenizer

    if SIZES[size] is None:
        return build_tiny_model(dest)
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        **SIZES[size],
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


def _text(i: int, n: int, k: int) -> str:
    return " ".join(WORDS[(i * 7 + j * k) % len(WORDS)] for j in range(n)) + "."


def make_data(dest: Path) -> Path:
    """ROWS traces of varied length through the real ``hegelion dataset --format mlx``."""
    import orjson

    from hegelion_core.records import DialecticTrace, TraceRecord

    traces = dest / "traces.jsonl"
    with traces.open("wb") as fh:
        for i in range(ROWS + 4):
            trace = DialecticTrace(
                thesis=_text(i, 8 + i % 17, 3),
                antithesis=_text(i, 10 + i % 13, 5),
                synthesis=_text(i, 12 + i % 11, 7),
            )
            record = TraceRecord.build(f"Question {i}: is {WORDS[i % len(WORDS)]} good?", trace)
            fh.write(orjson.dumps(record.model_dump(mode="json")) + b"\n")
    out = dest / "mlx"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from hegelion_core.cli import main; main()",
            "dataset",
            str(traces),
            str(out),
            "--format",
            "mlx",
            "--valid-ratio",
            str(4 / (ROWS + 4)),
            "--seed",
            "0",
        ],
        check=True,
        capture_output=True,
    )
    return out


def child_mlx_lm(model: str, data: str, steps: int, out: str) -> dict[str, float]:
    import types

    import mlx.core as mx
    from mlx_lm.lora import CONFIG_DEFAULTS, train_model
    from mlx_lm.tuner.callbacks import TrainingCallback
    from mlx_lm.tuner.datasets import load_dataset
    from mlx_lm.utils import load

    class Record(TrainingCallback):
        def __init__(self) -> None:
            self.reports: list[dict[str, float]] = []

        def on_train_loss_report(self, info: dict[str, float]) -> None:
            self.reports.append(info)

    args = types.SimpleNamespace(
        **{
            **CONFIG_DEFAULTS,
            "model": model,
            "data": data,
            "train": True,
            "iters": steps,
            "batch_size": BATCH,
            "num_layers": -1,
            "learning_rate": 1e-5,
            "mask_prompt": True,
            "steps_per_report": ROWS // BATCH,
            "steps_per_eval": 10**9,
            "save_every": 10**9,
            "adapter_path": out,
            "val_batches": 1,
            "optimizer": "adam",
            "lora_parameters": {"rank": 8, "scale": 20.0, "dropout": 0.0},
        }
    )
    model_, tokenizer = load(model)
    train_set, valid_set, _ = load_dataset(args, tokenizer)
    cb = Record()
    train_model(args, model_, train_set, valid_set, cb)
    timed = cb.reports[1:]  # the first report window is epoch 1: warm-up
    window_s = [(ROWS // BATCH) / r["iterations_per_second"] for r in timed]
    seconds = sum(window_s)
    return {
        "s_per_step": seconds / (len(timed) * (ROWS // BATCH)),
        "own_tokens_per_s": sum(r["tokens_per_second"] * s for r, s in zip(timed, window_s))
        / seconds,
        "pad_targets_per_step": BATCH,
        "peak_memory_mb": mx.get_peak_memory() / 1e6,
    }


def child_hegelion(model: str, data: str, steps: int, out: str) -> dict[str, float]:
    from click.testing import CliRunner

    from hegelion_core.cli import cli

    args = [
        "train",
        "--trainer",
        "mlx",
        "--model",
        model,
        "--data",
        data,
        "--output",
        out,
        "-c",
        f"training.max_steps={steps}",
        "-c",
        "training.learning_rate=1e-5",
        "-c",
        "training.lr_scheduler_type=constant",
        "-c",
        "training.warmup_ratio=0",
        "-c",
        "training.optim=adam",
        "-c",
        f"training.per_device_train_batch_size={BATCH}",
        "-c",
        "training.save_steps=1000000",
        "-c",
        "lora.r=8",
        "-c",
        "lora.lora_alpha=160",
        "-c",
        "lora.lora_dropout=0.0",
        "-c",
        "lora.target_modules=all-linear",
        "-o",
        "steps_per_eval=0",
        "-o",
        "val_batches=1",
        "-o",
        "progress=false",
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    per_epoch = ROWS // BATCH
    timed = [r for r in rows if "tokens_per_s" in r and r["step"] > per_epoch]
    prev = {r["step"]: r["tokens"] for r in rows if "tokens" in r}
    seconds = tokens = 0.0
    for r in timed:
        n = r["tokens"] - prev.get(r["step"] - 1, 0)
        tokens += n
        seconds += n / r["tokens_per_s"]
    manifest = json.loads((Path(out) / "manifest.json").read_text())
    return {
        "s_per_step": seconds / len(timed),
        "tokens_per_s": tokens / seconds,
        "peak_memory_mb": manifest["metrics"]["peak_memory_mb"],
    }


def run_child(kind: str, model: Path, data: Path, steps: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                kind,
                "--model",
                str(model),
                "--data",
                str(data),
                "--steps",
                str(steps),
                "--out",
                out,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument(
        "--sizes", default="tiny", help="tiny, small, or both (small: ~45 min on 2 cores)"
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs, after one warm-up epoch")
    p.add_argument("--child", choices=["mlx-lm", "hegelion"])
    p.add_argument("--model"), p.add_argument("--data"), p.add_argument("--out")
    p.add_argument("--steps", type=int)
    args = p.parse_args()
    if args.child:
        fn = child_mlx_lm if args.child == "mlx-lm" else child_hegelion
        figures = fn(args.model, args.data, args.steps, args.out)
        figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(figures))
        return

    import os

    steps = (1 + args.epochs) * (ROWS // BATCH)
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp))
        print(
            f"{ROWS} train rows, batch {BATCH}, {steps} steps ({args.epochs} timed epochs after 1 warm-up), "
            f"{args.repeats} alternating runs each; load average {os.getloadavg()[0]:.1f}"
        )
        for size in args.sizes.split(","):
            model = make_model(size, Path(tmp) / size)
            runs: dict[str, list[dict[str, float]]] = {"mlx-lm": [], "hegelion": []}
            started = time.monotonic()
            for _ in range(args.repeats):
                for kind in ("mlx-lm", "hegelion"):
                    runs[kind].append(run_child(kind, model, data, steps))
            med = {
                k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in runs.items()
            }
            mlx, heg = med["mlx-lm"], med["hegelion"]
            # Same batches, so Hegelion's trained-token count per step applies to both.
            tokens_per_step = heg["tokens_per_s"] * heg["s_per_step"]
            overhead = heg["s_per_step"] / mlx["s_per_step"] - 1
            print(
                f"\n[{size}] ({time.monotonic() - started:.0f} s; load average {os.getloadavg()[0]:.1f})"
            )
            print(
                f"  {'':10} {'s/step':>8} {'tokens/s':>9} {'own tok/s':>9} {'MLX peak MB':>11} {'RSS MB':>7}"
            )
            print(
                f"  {'mlx-lm':10} {mlx['s_per_step']:8.4f} {tokens_per_step / mlx['s_per_step']:9.0f} "
                f"{mlx['own_tokens_per_s']:9.0f} {mlx['peak_memory_mb']:11.1f} {mlx['peak_rss_mb']:7.0f}"
            )
            print(
                f"  {'hegelion':10} {heg['s_per_step']:8.4f} {heg['tokens_per_s']:9.0f} "
                f"{heg['tokens_per_s']:9.0f} {heg['peak_memory_mb']:11.1f} {heg['peak_rss_mb']:7.0f}"
            )
            print(f"  overhead (time per step): {overhead:+.1%}  (target <= +5%)")
            print(
                "  per run s/step: mlx-lm "
                + " ".join(f"{r['s_per_step']:.4f}" for r in runs["mlx-lm"])
                + " | hegelion "
                + " ".join(f"{r['s_per_step']:.4f}" for r in runs["hegelion"])
            )


if __name__ == "__main__":
    main()
