"""Records per second of each formatter, against the floor of plain json.loads/json.dumps.

    python benchmarks/format_throughput.py [--records 100000]

Generates N distinct trace records (the shipped examples, with unique questions),
then times, each in a fresh process so peak memory is its own:

* the floor: a loop of ``json.loads`` + ``json.dumps`` over the same file, written out;
* ``hegelion dataset`` for every built-in format, end to end (read, validate,
  dedupe, format, write atomically, manifest).

Target (issue "Core"): every formatter at least half the floor's throughput.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "traces.jsonl"
FORMATS = ["sft", "chat", "dpo", "scu", "mlx", "simplex"]


def make_input(path: Path, n: int) -> None:
    import orjson

    from hegelion_core.records import prompt_id

    base = [orjson.loads(line) for line in EXAMPLES.read_bytes().splitlines()]
    with path.open("wb") as fp:
        for i in range(n):
            row = dict(base[i % len(base)])
            row["instruction"] = f"{row['instruction']} (variant {i})"
            row["prompt_id"] = prompt_id(row["instruction"])
            fp.write(orjson.dumps(row) + b"\n")


def floor(src: Path, dest: Path) -> int:
    n = 0
    with src.open(encoding="utf-8") as fin, dest.open("w", encoding="utf-8") as fout:
        for line in fin:
            fout.write(json.dumps(json.loads(line)) + "\n")
            n += 1
    return n


def one(fmt: str, src: Path, workdir: Path) -> int:
    from hegelion_core.data.dataset import DatasetJob, SplitSpec, build_dataset

    if fmt == "floor":
        return floor(src, workdir / "floor.jsonl")
    split = SplitSpec(valid_ratio=0.1, min_rows=4) if fmt == "mlx" else None
    out = workdir / (fmt if split else f"{fmt}.jsonl")
    summary = build_dataset(DatasetJob(inputs=[src], output=out, format=fmt, split=split))
    return summary.records


def child(fmt: str, src: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        records = one(fmt, src, Path(tmp))
        elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps({"format": fmt, "records": records, "seconds": elapsed, "peak_rss_mb": peak_mb})
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--child", nargs=2, metavar=("FORMAT", "INPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "traces.jsonl"
        make_input(src, args.records)
        size_mb = src.stat().st_size / 1e6
        print(f"input: {args.records} records, {size_mb:.0f} MB")
        print(f"{'format':<10}{'records/s':>12}{'vs floor':>10}{'seconds':>10}{'peak RSS MB':>13}")
        floor_rate = None
        for fmt in ["floor", *FORMATS]:
            out = subprocess.run(
                [sys.executable, __file__, "--child", fmt, str(src)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            rate = r["records"] / r["seconds"]
            floor_rate = floor_rate or rate
            print(
                f"{fmt:<10}{rate:>12,.0f}{rate / floor_rate:>10.2f}{r['seconds']:>10.2f}{r['peak_rss_mb']:>13.0f}"
            )


if __name__ == "__main__":
    main()
