"""Throughput and variety of the Simplex generators (plugin hegelion-simplex).

    python benchmarks/simplex_generators.py [--n 100000] [--seed 0]

Per stage, in this process:

* seconds to generate N examples and serialise their training rows (JSON bytes);
* seconds for ``hegelion simplex generate -n N --eval-n 0`` end to end in a fresh
  process (imports, generation, writing train/valid, the manifest);
* the duplicate rate: the share of rows that exactly repeat an earlier row;
* distinct templates used, of those the stage has.

Target (issue 6): under 60 s for 100,000 examples of a stage on 2 cores.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson
from hegelion_simplex.generate import STAGES, generate, templates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(
        f"{'stage':<16} {'gen s':>7} {'cli s':>7} {'rows/s':>9} {'dup rate':>9} {'templates':>10} {'user dup':>9}"
    )
    for stage in STAGES:
        start = time.perf_counter()
        rows: set[int] = set()
        users: set[int] = set()
        used: Counter[str] = Counter()
        dups = user_dups = 0
        for ex in generate(stage, args.n, args.seed):
            line = orjson.dumps(ex.row())
            h = hash(line)
            dups += h in rows
            rows.add(h)
            u = hash(ex.user)
            user_dups += u in users
            users.add(u)
            used[ex.template] += 1
        gen_s = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "hegelion_core",
                    "simplex",
                    "generate",
                    "--stage",
                    stage,
                    "-n",
                    str(args.n),
                    "--seed",
                    str(args.seed),
                    "--eval-n",
                    "0",
                    "--out",
                    str(Path(tmp) / stage),
                ],
                check=True,
                capture_output=True,
            )
            cli_s = time.perf_counter() - start
        print(
            f"{stage:<16} {gen_s:>7.2f} {cli_s:>7.2f} {args.n / gen_s:>9.0f} {dups / args.n:>9.4%} "
            f"{len(used):>4} of {len(templates(stage)):<3} {user_dups / args.n:>9.4%}"
        )


if __name__ == "__main__":
    main()
