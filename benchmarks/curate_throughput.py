"""Records per second of ``hegelion curate`` with every filter on, against the floor of
plain json.loads/json.dumps.

    python benchmarks/curate_throughput.py [--records 100000]

Generates N trace records from the shipped examples, each with its own prompt (8-20
words drawn from the examples' synthesis words; with ``--templated``, the example's
question and five random words, so each twelfth of the prompts shares most of its words,
the worst case of the near-duplicate search) and its own synthesis (the example's words
shuffled), then plants 2% exact copies of earlier rows and 2% syntheses with one word
changed, so the duplicate filter has real work. Then times, each in a fresh process so
peak memory is its own:

* the floor: a loop of ``json.loads`` + ``json.dumps`` over the same file, written out;
* ``curate``: every filter (truncated, degenerate, judge >= 5, length bounds,
  decontamination against examples/eval_prompts.txt, exact and near duplicates);
* ``curate exact``: the same with ``near_threshold=1``, to show what MinHash costs.

Target (issue 13 §3): curate at least 0.3 of the floor's rate.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "traces.jsonl"
EVAL_PROMPTS = ROOT / "examples" / "eval_prompts.txt"
RUNS = ["floor", "curate", "curate exact"]


def make_input(path: Path, n: int, templated: bool = False) -> None:
    import orjson

    from hegelion_core.records import prompt_id

    rng = random.Random(0)
    base = [orjson.loads(line) for line in EXAMPLES.read_bytes().splitlines()]
    vocab = sorted({w for row in base for w in row["hegelion_trace"]["synthesis"].split()})
    lines: list[bytes] = []
    with path.open("wb") as fp:
        for i in range(n):
            if lines and rng.random() < 0.02:  # an exact copy of an earlier row
                line = rng.choice(lines)
            else:
                row = dict(base[i % len(base)])
                if templated:  # the example's question and five random words
                    row["instruction"] = f"{row['instruction']} ({' '.join(rng.sample(vocab, 5))})"
                else:
                    row["instruction"] = " ".join(rng.sample(vocab, rng.randint(8, 20))) + "?"
                row["prompt_id"] = prompt_id(row["instruction"])
                words = row["hegelion_trace"]["synthesis"].split()
                if lines and rng.random() < 0.02:  # an earlier synthesis, one word changed
                    words = orjson.loads(rng.choice(lines))["hegelion_trace"]["synthesis"].split()
                    words[len(words) // 2] = rng.choice(vocab)
                else:
                    rng.shuffle(words)
                row["hegelion_trace"] = {**row["hegelion_trace"], "synthesis": " ".join(words)}
                line = orjson.dumps(row) + b"\n"
                if len(lines) < 5000:
                    lines.append(line)
            fp.write(line)


def floor(src: Path, dest: Path) -> int:
    n = 0
    with src.open(encoding="utf-8") as fin, dest.open("w", encoding="utf-8") as fout:
        for line in fin:
            fout.write(json.dumps(json.loads(line)) + "\n")
            n += 1
    return n


def one(run: str, src: Path, workdir: Path) -> tuple[int, int]:
    from hegelion_core.data.curate import CurateJob, curate

    if run == "floor":
        n = floor(src, workdir / "floor.jsonl")
        return n, n
    job = CurateJob(
        inputs=[src],
        output=workdir / "curated.jsonl",
        min_judge_score=5,
        min_chars=200,
        max_chars=200_000,
        decontaminate=[EVAL_PROMPTS],
        near_threshold=1 if run == "curate exact" else 0.8,
    )
    summary = curate(job)
    return summary.filters[0].rows_in, summary.filters[-1].rows_out


def child(run: str, src: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), time.process_time()
        records, kept = one(run, src, Path(tmp))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "run": run,
                "records": records,
                "kept": kept,
                "seconds": elapsed,
                "cpu_seconds": cpu,
                "peak_rss_mb": peak_mb,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--templated", action="store_true", help="prompts from 12 templates")
    parser.add_argument("--child", nargs=2, metavar=("RUN", "INPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "traces.jsonl"
        make_input(src, args.records, args.templated)
        size_mb = src.stat().st_size / 1e6
        print(
            f"input: {args.records} records, {size_mb:.0f} MB; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        # CPU seconds too: on a shared machine, wall time also measures the neighbours.
        print(
            f"{'run':<14}{'records/s':>11}{'vs floor':>9}{'seconds':>9}{'CPU rec/s':>11}"
            f"{'vs floor':>9}{'peak RSS MB':>13}{'kept':>8}"
        )
        floor_rate = floor_cpu = None
        for run in RUNS:
            out = subprocess.run(
                [sys.executable, __file__, "--child", run, str(src)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            rate, cpu_rate = r["records"] / r["seconds"], r["records"] / r["cpu_seconds"]
            floor_rate, floor_cpu = floor_rate or rate, floor_cpu or cpu_rate
            print(
                f"{run:<14}{rate:>11,.0f}{rate / floor_rate:>9.2f}{r['seconds']:>9.2f}"
                f"{cpu_rate:>11,.0f}{cpu_rate / floor_cpu:>9.2f}{r['peak_rss_mb']:>13.0f}{r['kept']:>8}"
            )
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
