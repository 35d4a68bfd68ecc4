"""GPU checks for the unsloth trainer: run on a machine with an NVIDIA GPU, never in CI.

Not a pytest module (its name does not match ``test_*.py``, and ``tests/conftest.py``
ignores this folder): CI has no GPU, and ``import unsloth`` refuses to run without one.

What it does, all offline (no hub):
  1. builds a small random Qwen2 (ChatML tokenizer, about 90M parameters by default) locally;
  2. makes chat and DPO datasets with ``hegelion dataset``, and a prompt file for GRPO;
  3. trains with the real ``hegelion train --trainer unsloth`` CLI: SFT QLoRA with
     ``--merge``, SFT QLoRA interrupted and ``--resume``d, GRPO with the format reward
     from the SFT adapter (``init_adapter``), DPO QLoRA, SFT 16-bit LoRA; and checks that
     Unsloth's patched GRPOConfig keeps the values the mapping pins;
  4. reloads the adapter (PEFT on the base) and the merged model with plain
     transformers/peft in a fresh process, and checks the merge matches the adapter;
  5. trains the same SFT with TRL in bf16 (``--trainer trl`` if installed, else plain
     TRL + PEFT with the same arguments) and prints tokens/s and peak GPU memory side
     by side.

    python plugins/hegelion-unsloth/tests/gpu/run_gpu_checks.py --out /tmp/gpu-report
    python plugins/hegelion-unsloth/tests/gpu/run_gpu_checks.py --prepare-only --out /tmp/x  # no GPU needed

Exit status 0 when every check passed; the report is ``OUT/report.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SIZES: dict[str, dict[str, int]] = {
    # hidden 64 is too small for meaningful throughput; "small" keeps a run to seconds.
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    ),
    "small": dict(
        hidden_size=1024,
        intermediate_size=2816,
        num_hidden_layers=8,
        num_attention_heads=16,
        num_key_value_heads=4,
    ),
}

TOPICS = [
    (
        "Is free will compatible with determinism?",
        "Acting on our own reasons is freedom enough.",
        "If every act is fixed in advance, so are the reasons.",
        "Freedom is acting from reasons, even caused ones.",
    ),
    (
        "Do markets allocate resources well?",
        "Prices carry information no planner could collect.",
        "Pollution and monopoly show that prices can lie.",
        "Markets work best inside rules that keep prices honest.",
    ),
    (
        "Where does knowledge come from?",
        "All knowledge begins in the senses.",
        "Logic and mathematics hold before any experience.",
        "Experience gives the content and reason the form.",
    ),
    (
        "Should we trust intuition or evidence?",
        "Intuition is fast and often right about people.",
        "Intuition fails on numbers, where evidence is needed.",
        "Let intuition raise questions and evidence answer them.",
    ),
]


def check(report: dict[str, Any], name: str, ok: bool, detail: Any = "") -> None:
    report["checks"].append({"check": name, "ok": bool(ok), "detail": detail})
    print(
        f"[{'PASS' if ok else 'FAIL'}] {name}" + (f": {detail}" if detail != "" else ""), flush=True
    )


# ----- inputs -------------------------------------------------------------------------


def build_model(out: Path, size: str) -> Path:
    """A random Qwen2 in bf16 safetensors, with Hegelion's ChatML tokenizer; no download."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from hegelion_core.testing.tiny_models import build_tiny_tokenizer

    tok = build_tiny_tokenizer(arch="qwen2")
    config = Qwen2Config(
        vocab_size=len(tok),
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        torch_dtype="bfloat16",
        **SIZES[size],
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_data(out: Path, rows: int) -> dict[str, Path]:
    """Traces -> `hegelion dataset` chat and conversational DPO files (the real CLI)."""
    import orjson

    from hegelion_core.records import DialecticTrace, TraceRecord

    out.mkdir(parents=True, exist_ok=True)
    traces = out / "traces.jsonl"
    with traces.open("wb") as fh:
        for i in range(rows):
            q, t, a, s = TOPICS[i % len(TOPICS)]
            record = TraceRecord.build(
                f"{q} (case {i})", DialecticTrace(thesis=t, antithesis=a, synthesis=s)
            )
            fh.write(orjson.dumps(record.model_dump(mode="json")) + b"\n")
    files = {"chat": out / "chat.jsonl", "dpo": out / "dpo.jsonl", "prompts": out / "prompts.txt"}
    hegelion("dataset", str(traces), str(files["chat"]), "--format", "chat")
    hegelion("dataset", str(traces), str(files["dpo"]), "--format", "dpo", "--conversational")
    files["prompts"].write_text("".join(f"{t[0]} (case {i})\n" for i, t in enumerate(TOPICS * 4)))
    return files


def hegelion(*args: str, check_rc: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "hegelion_core", *args], capture_output=True, text=True
    )
    if check_rc and result.returncode != 0:
        raise SystemExit(
            f"hegelion {' '.join(args)} failed:\n{result.stdout}\n{result.stderr[-4000:]}"
        )
    return result


# ----- runs -----------------------------------------------------------------------------


def train(trainer: str, model: Path, data: Path, out: Path, *extra: str) -> dict[str, Any]:
    """One `hegelion train` in its own process; its manifest, or the error."""
    start = time.perf_counter()
    result = hegelion(
        "train",
        "--trainer",
        trainer,
        "--model",
        str(model),
        "--data",
        str(data),
        "--output",
        str(out),
        *extra,
        check_rc=False,
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        return {"ok": False, "wall_s": wall, "error": (result.stdout + result.stderr)[-3000:]}
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        "ok": True,
        "wall_s": wall,
        "metrics": manifest.get("metrics", {}),
        "versions": manifest.get("versions", {}),
        "stdout": result.stdout[-1500:],
    }


def common_args(steps: int) -> list[str]:
    return [
        "-c",
        f"training.max_steps={steps}",
        "-c",
        "training.per_device_train_batch_size=8",
        "-c",
        "training.max_seq_length=512",
        "-c",
        "training.learning_rate=2e-4",
        "-c",
        "training.logging_steps=1",
        "-c",
        "training.save_steps=1000",
        "-c",
        "training.warmup_ratio=0",
    ]


def grpo_args(steps: int) -> list[str]:
    """A few GRPO steps: two prompts of four completions each per step, format reward."""
    return [
        "--method",
        "grpo",
        *common_args(steps),
        "-c",
        "training.learning_rate=2e-5",
        "-c",
        "grpo.num_generations=4",
        "-c",
        "grpo.max_completion_length=64",
    ]


def metric_rows(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines if x.strip()]


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def grpo_config_check(out: Path) -> dict[str, Any]:
    """In a fresh process with unsloth imported: the GRPOConfig that `_run` builds
    (``trl.GRPOConfig``, Unsloth's after its patch) from each loss type's plan, read back."""
    code = f"""
import json
from pathlib import Path
import unsloth  # noqa: F401  patches trl's GRPOConfig and GRPOTrainer
import trl
from hegelion_core.training.config import load_train_config
from hegelion_unsloth.mapping import UnslothOptions, build_plan
seen = {{}}
for loss in ("dapo", "dr_grpo", "grpo", "bnpo"):
    cfg = load_train_config(None, {{"model": "m", "method": "grpo", "grpo.loss_type": loss}})
    plan = build_plan(cfg, UnslothOptions(), Path({str(out)!r}), bf16_supported=True)
    c = trl.GRPOConfig(**plan.args)
    seen[loss] = {{"class": type(c).__name__, "loss_type": c.loss_type, "beta": c.beta,
                  "epsilon_high": c.epsilon_high, "scale_rewards": c.scale_rewards,
                  "mask_truncated_completions": c.mask_truncated_completions,
                  "temperature": c.temperature, "num_generations": c.num_generations}}
print(json.dumps(seen))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode != 0:
        return {"error": result.stderr[-3000:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def baseline_trl(model: Path, data: Path, out: Path, steps: int) -> dict[str, Any]:
    """Plain TRL + PEFT in bf16 with the same mapped arguments, in a process without unsloth."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, __file__, "--_baseline", str(model), str(data), str(out), str(steps)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return {"ok": False, "wall_s": time.perf_counter() - start, "error": result.stderr[-3000:]}
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return {"ok": True, "wall_s": time.perf_counter() - start, "metrics": figures}


def _baseline_main(model: str, data: str, out: str, steps: int) -> None:
    import datasets
    import peft
    import torch
    import trl
    from hegelion_unsloth.data import read_rows
    from hegelion_unsloth.mapping import UnslothOptions, trainer_args
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from hegelion_core.training.config import load_train_config

    assert "unsloth" not in sys.modules
    cfg = load_train_config(
        None,
        {
            "model": model,
            "training.max_steps": steps,
            "training.per_device_train_batch_size": 8,
            "training.max_seq_length": 512,
            "training.learning_rate": 2e-4,
            "training.logging_steps": 1,
            "training.save_steps": 1000,
            "training.warmup_ratio": 0.0,
        },
    )
    args = trainer_args(cfg, UnslothOptions(), Path(out), "bfloat16")
    seen: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, a: Any, state: Any, c: Any, **k: Any) -> None:
            seen["t0"] = time.perf_counter()

        def on_train_end(self, a: Any, state: Any, c: Any, **k: Any) -> None:
            seen["s"] = time.perf_counter() - seen["t0"]
            seen["tokens"] = float(state.num_input_tokens_seen)

    torch.cuda.reset_peak_memory_stats()
    trainer = trl.SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model, dtype=torch.bfloat16, device_map={"": 0}),
        args=trl.SFTConfig(**args),
        peft_config=peft.LoraConfig(**cfg.lora.to_peft()),
        train_dataset=datasets.Dataset.from_list(read_rows(Path(data), "chat")),
        processing_class=AutoTokenizer.from_pretrained(model),
        callbacks=[Clock()],
    )
    result = trainer.train()
    print(
        json.dumps(
            {
                "train_loss": result.training_loss,
                "steps": trainer.state.global_step,
                "tokens": seen["tokens"],
                "tokens_per_s": seen["tokens"] / seen["s"],
                "peak_gpu_mem_gb": torch.cuda.max_memory_reserved() / 2**30,
            }
        )
    )


def reload_check(base: Path, adapter: Path, merged: Path) -> dict[str, float]:
    """In a fresh process: base, base+adapter (PEFT) and merged logits on one prompt."""
    code = f"""
import json, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained({str(adapter)!r})
ids = tok.apply_chat_template([{{"role": "user", "content": "Where does knowledge come from?"}}],
                              add_generation_prompt=True, return_tensors="pt").to("cuda")
ids = ids["input_ids"] if hasattr(ids, "keys") else ids
def logits(m):
    with torch.no_grad():
        return m.eval()(ids).logits.float()
base = AutoModelForCausalLM.from_pretrained({str(base)!r}, dtype=torch.bfloat16).cuda()
b = logits(base)
a = logits(PeftModel.from_pretrained(base, {str(adapter)!r}))
m = logits(AutoModelForCausalLM.from_pretrained({str(merged)!r}, dtype=torch.bfloat16).cuda())
print(json.dumps({{"adapter_vs_base": (a - b).abs().max().item(), "merged_vs_adapter": (m - a).abs().max().item(),
                  "merged_vs_base": (m - b).abs().max().item()}}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode != 0:
        return {"error": result.stderr[-3000:]}  # type: ignore[dict-item]
    return json.loads(result.stdout.strip().splitlines()[-1])


def metrics_steps(run_dir: Path) -> list[int]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x)["step"] for x in lines if x.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("gpu-checks"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument(
        "--prepare-only", action="store_true", help="build the model and data, then stop (no GPU)"
    )
    parser.add_argument("--_baseline", nargs=4, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts._baseline:
        _baseline_main(*opts._baseline[:3], int(opts._baseline[3]))
        return 0

    out = opts.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"checks": [], "runs": {}}
    model = build_model(out / "model", opts.size)
    files = build_data(out / "data", opts.rows)
    print(f"model {model} ({opts.size}), data {files}", flush=True)
    if opts.prepare_only:
        return 0

    import torch

    if not torch.cuda.is_available():
        print(
            "no CUDA device: run this on an NVIDIA GPU machine (see the plugin's README)",
            file=sys.stderr,
        )
        return 2
    report["gpu"] = torch.cuda.get_device_name(0)
    runs = report["runs"]
    steps = opts.steps

    # 1. SFT, QLoRA 4-bit (the default), with --merge.
    sft = out / "runs" / "sft-qlora"
    runs["unsloth sft qlora"] = train(
        "unsloth", model, files["chat"], sft, "--merge", *common_args(steps)
    )
    ok = runs["unsloth sft qlora"]["ok"]
    check(report, "SFT QLoRA trains", ok, runs["unsloth sft qlora"].get("error", ""))
    if ok:
        m = runs["unsloth sft qlora"]["metrics"]
        check(report, "SFT ran the asked steps", m.get("steps") == steps, m.get("steps"))
        check(
            report,
            "adapter in PEFT layout",
            (sft / "adapter" / "adapter_config.json").is_file()
            and (sft / "adapter" / "adapter_model.safetensors").is_file(),
        )
        config = json.loads((sft / "adapter" / "adapter_config.json").read_text())
        check(
            report,
            "Hegelion's r and alpha reached the adapter",
            (config.get("r"), config.get("lora_alpha")) == (16, 32),
            (config.get("r"), config.get("lora_alpha")),
        )
        check(report, "merged 16-bit weights written", any((sft / "merged").glob("*.safetensors")))
        check(report, "metrics.jsonl has every step", metrics_steps(sft)[-1] == steps)
        reload = reload_check(model, sft / "adapter", sft / "merged")
        report["reload"] = reload
        check(report, "adapter changes the model", reload.get("adapter_vs_base", 0) > 0, reload)
        check(
            report,
            "merged model matches base+adapter better than base",
            reload.get("merged_vs_adapter", 1e9) < reload.get("adapter_vs_base", 0),
            reload,
        )

    # 1b. A second stage continues the first stage's adapter (init_adapter), as the
    #     Simplex stages chain: same r/alpha, and its first loss starts below stage 1's.
    if ok:
        cont = out / "runs" / "sft-continue"
        runs["unsloth init_adapter"] = train(
            "unsloth",
            model,
            files["chat"],
            cont,
            *common_args(2),
            "-c",
            f"init_adapter={sft / 'adapter'}",
        )
        cont_ok = runs["unsloth init_adapter"]["ok"]
        check(
            report,
            "init_adapter: a second stage trains",
            cont_ok,
            runs["unsloth init_adapter"].get("error", ""),
        )
        if cont_ok:
            losses = [
                [
                    json.loads(x)["loss"]
                    for x in (d / "metrics.jsonl").read_text().splitlines()
                    if x.strip() and "loss" in json.loads(x)
                ]
                for d in (sft, cont)
            ]
            config2 = json.loads((cont / "adapter" / "adapter_config.json").read_text())
            check(
                report,
                "init_adapter: the earlier adapter's r and alpha carry over",
                (config2.get("r"), config2.get("lora_alpha")) == (16, 32),
                (config2.get("r"), config2.get("lora_alpha")),
            )
            check(
                report,
                "init_adapter: starts below the first stage's first loss",
                bool(losses[0]) and bool(losses[1]) and losses[1][0] < losses[0][0],
                {"first stage": losses[0][:2], "second stage": losses[1][:2]},
            )

    # 1c. GRPO from the SFT adapter (init_adapter), the format reward: each step logs the
    #     reward's mean and std, finite; the adapter keeps the SFT adapter's r and alpha.
    #     Then the GRPOConfig Unsloth builds keeps what the mapping pins (same GRPO as trl).
    if ok:
        grpo_dir = out / "runs" / "grpo-from-sft"
        grpo_steps = 3
        runs["unsloth grpo"] = train(
            "unsloth",
            model,
            files["prompts"],
            grpo_dir,
            *grpo_args(grpo_steps),
            "-c",
            f"init_adapter={sft / 'adapter'}",
        )
        grpo_ok = runs["unsloth grpo"]["ok"]
        check(
            report,
            "GRPO from the SFT adapter trains",
            grpo_ok,
            runs["unsloth grpo"].get("error", ""),
        )
        if grpo_ok:
            m = runs["unsloth grpo"]["metrics"]
            check(report, "GRPO ran the asked steps", m.get("steps") == grpo_steps, m.get("steps"))
            rows = [r for r in metric_rows(grpo_dir) if "rewards/format/mean" in r]
            report["grpo_rewards"] = [
                {
                    k: r.get(k)
                    for k in ("step", "reward", "rewards/format/mean", "rewards/format/std")
                }
                for r in rows
            ]
            check(
                report,
                "GRPO logs the format reward's mean and std at every step, finite",
                [r["step"] for r in rows] == list(range(1, grpo_steps + 1))
                and all(
                    finite(r.get(k))
                    for r in rows
                    for k in ("reward", "rewards/format/mean", "rewards/format/std")
                ),
                report["grpo_rewards"],
            )
            check(
                report,
                "GRPO rewards lie in the format reward's range [0, 1]",
                all(0.0 <= r["rewards/format/mean"] <= 1.0 for r in rows),
                [r["rewards/format/mean"] for r in rows],
            )
            config3 = json.loads((grpo_dir / "adapter" / "adapter_config.json").read_text())
            check(
                report,
                "GRPO continues the SFT adapter (its r and alpha)",
                (config3.get("r"), config3.get("lora_alpha")) == (16, 32),
                (config3.get("r"), config3.get("lora_alpha")),
            )
    built = grpo_config_check(out / "runs" / "grpo-config")
    report["grpo_config"] = built
    check(
        report,
        "Unsloth's GRPOConfig keeps the pinned GRPO (epsilon_high 0.2, scale_rewards group, "
        "truncated completions scored)",
        "error" not in built
        and all(
            v["class"] == "UnslothGRPOConfig"
            and v["loss_type"] == loss
            and v["epsilon_high"] == 0.2
            and v["scale_rewards"] == "group"
            and v["mask_truncated_completions"] is False
            and v["beta"] == 0.0
            for loss, v in built.items()
        ),
        built,
    )

    # 2. Interrupted and resumed: 4 steps with checkpoints every 2, then --resume to 6.
    res = out / "runs" / "sft-resume"
    first = train(
        "unsloth", model, files["chat"], res, *common_args(4), "-c", "training.save_steps=2"
    )
    again = train(
        "unsloth",
        model,
        files["chat"],
        res,
        "--resume",
        *common_args(6),
        "-c",
        "training.save_steps=2",
    )
    runs["unsloth resume"] = {"first": first, "again": again}
    check(
        report,
        "--resume continues from the checkpoint",
        first["ok"]
        and again["ok"]
        and again["metrics"].get("steps") == 6
        and (res / "checkpoints" / "checkpoint-4").is_dir(),
        again.get("error", again.get("metrics")),
    )
    if again["ok"]:
        logged = metrics_steps(res)
        check(
            report,
            "metrics continue the same curve",
            logged == sorted(logged) and logged[-1] == 6,
            logged,
        )

    # 3. DPO, QLoRA.
    runs["unsloth dpo qlora"] = train(
        "unsloth",
        model,
        files["dpo"],
        out / "runs" / "dpo-qlora",
        "--method",
        "dpo",
        *common_args(steps),
    )
    check(
        report,
        "DPO QLoRA trains",
        runs["unsloth dpo qlora"]["ok"],
        runs["unsloth dpo qlora"].get("error", ""),
    )

    # 4. SFT, 16-bit LoRA.
    runs["unsloth sft lora16"] = train(
        "unsloth",
        model,
        files["chat"],
        out / "runs" / "sft-lora16",
        "-c",
        "quantization=none",
        *common_args(steps),
    )
    check(
        report,
        "SFT 16-bit LoRA trains",
        runs["unsloth sft lora16"]["ok"],
        runs["unsloth sft lora16"].get("error", ""),
    )

    # 5. The TRL baseline, bf16, same model, data and arguments.
    drivers = json.loads(hegelion("plugins", "--json").stdout)["drivers"]
    has_trl_driver = any(
        d["role"] == "trainers" and d["name"] == "trl" and d["status"] == "ok" for d in drivers
    )
    if has_trl_driver:
        runs["trl sft bf16"] = train(
            "trl",
            model,
            files["chat"],
            out / "runs" / "trl-bf16",
            "-c",
            "training.bf16=true",
            *common_args(steps),
        )
    else:
        runs["trl+peft sft bf16 (in-script)"] = baseline_trl(
            model, files["chat"], out / "runs" / "trl-bf16", steps
        )

    print("\nrun                               steps  loss     tokens/s   peak GPU GB  wall s")
    for name, r in runs.items():
        if "metrics" in r:
            m = r["metrics"]
            print(
                f"{name:<33} {m.get('steps', 0):>5.0f}  {m.get('train_loss', float('nan')):<7.4f}"
                f"  {m.get('tokens_per_s', float('nan')):>9.0f}  {m.get('peak_gpu_mem_gb', float('nan')):>11.2f}"
                f"  {r['wall_s']:>6.1f}"
            )
        elif "error" in r:
            print(f"{name:<33} FAILED: {r['error'][-300:]}")
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    failed = [c["check"] for c in report["checks"] if not c["ok"]]
    print(
        f"\n{len(report['checks']) - len(failed)}/{len(report['checks'])} checks passed; report {out / 'report.json'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
