"""Generation throughput against a server with fixed latency, and resume start-up time.

    python benchmarks/generate_throughput.py [--latency 0.5] [--levels 1,8,64,256] [--rounds 20]
                                             [--resume-records 1000000]

A local OpenAI-compatible server (``benchmarks/latency_server.py``, its own process:
a bare asyncio protocol with a precomputed answer, so it is never the bottleneck)
answers every request after ``latency`` seconds with a valid trace. Its own ceiling
is measured first, with a raw client, and printed. For each concurrency c, the
generator (single mode, the ``openai`` teacher, a fresh process) produces c * rounds
samples, so each slot goes round ``rounds`` times. The physical limit is
c / latency samples per second. Printed per level: samples/s over the run (from
`run_generate` starting to it returning, the first wave included; the SDK is
imported before, as it is a one-time process cost), the share of the limit, the
steady share (records created between the end of the first wave and the start of
the last, which leaves out the cold start before any latency is known), the client's
CPU time per sample, and the generator process's peak RSS.

Then the resume check: an output already holding N records (with its index, as the
generator writes it) and a prompt file of N + 1 prompts; the time from starting
`hegelion generate --limit N+1` to the process finishing, minus one request's latency,
is the start-up cost of resuming.

Targets (issue "Generation"): >= 90% of the limit at every level; < 300 MB RSS at 256
in flight; resume start-up < 5 s at 1,000,000 records. Needs hegelion-openai installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import latency_server  # the benchmark's own server, beside this script


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc, port = latency_server.start(latency)
    return proc, f"http://127.0.0.1:{port}/v1"


def server_ceiling(latency: float, concurrency: int, requests: int) -> None:
    """What the server and loopback TCP do with a client that costs next to nothing."""
    for lat in (latency, 0.0):
        proc, port = latency_server.start(lat)
        try:
            seconds = asyncio.run(latency_server.load(port, concurrency, requests))
        finally:
            proc.terminate()
            proc.wait()
        rate = requests / seconds
        share = f" ({rate / (concurrency / lat):.1%} of the limit)" if lat else ""
        print(
            f"server alone, raw client, latency {lat:g}s, {concurrency} in flight: "
            f"{rate:,.0f} requests/s{share}"
        )


def child(args: argparse.Namespace) -> None:
    """One generator run in this process; prints JSON with its own figures."""
    import aiohttp  # noqa: F401  (the teacher imports both on its first call: a one-time cost)
    import openai  # noqa: F401

    from hegelion_core.generation.dialectic import DialecticConfig
    from hegelion_core.generation.generate import GenerateJob, run_generate
    from hegelion_core.plugins import make_driver

    teacher = make_driver("teachers", "openai", {"base_url": args.url, "model": "bench"})
    source = make_driver("prompt_sources", "file", {"path": args.prompts})
    job = GenerateJob(
        output=args.output,
        limit=args.limit,
        concurrency=args.concurrency,
        dialectic=DialecticConfig(mode="single"),
        timeout=60,
    )
    start, cpu = time.perf_counter(), time.process_time()
    stats = run_generate(job, teacher, source, progress=False)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(
        json.dumps(
            {
                "written": stats.written,
                "rejected": stats.rejected,
                "seconds": elapsed,
                "cpu_s": cpu,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def steady_rate(output: Path, concurrency: int) -> float | None:
    """Records per second between the end of the first wave and the start of the last
    (from the records' ``created_at``): the rate once the run has found its pace,
    without the cold start (no latency known yet) and the final drain."""
    import orjson

    stamps = sorted(
        datetime.fromisoformat(orjson.loads(line)["created_at"]).timestamp()
        for line in output.read_bytes().splitlines()
    )
    if len(stamps) <= 2 * concurrency + 1:
        return None
    span = stamps[-concurrency - 1] - stamps[concurrency]
    return (len(stamps) - 2 * concurrency - 1) / span if span > 0 else None


def run_child(url: str, prompts: Path, output: Path, limit: int, concurrency: int) -> dict:
    start = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            "--url",
            url,
            "--prompts",
            str(prompts),
            "--output",
            str(output),
            "--limit",
            str(limit),
            "--concurrency",
            str(concurrency),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1]) | {"wall_s": time.perf_counter() - start}


def write_prompts(path: Path, n: int) -> None:
    with path.open("w") as fp:
        for i in range(n):
            fp.write(f"Benchmark question number {i}: is this a good idea?\n")


def build_resume_output(output: Path, prompts: Path, n: int) -> None:
    """N records for the first N prompts, plus the index the generator keeps."""
    import orjson

    from hegelion_core.records import DialecticTrace, TraceRecord, prompt_id

    trace = DialecticTrace(
        thesis="A thesis. " * 10,
        antithesis="CONTRADICTION: x\nEVIDENCE: y. " * 3,
        synthesis="A synthesis. " * 15,
    )
    row = TraceRecord.build(
        "placeholder question", trace, teacher="openai", model="bench"
    ).model_dump(mode="json")
    offset = 0
    with (
        prompts.open() as src,
        output.open("wb") as out,
        output.with_name(output.name + ".index").open("wb") as idx,
    ):
        for _, line in zip(range(n), src):
            text = line.strip()
            row["instruction"], row["prompt_id"] = text, prompt_id(text)
            data = orjson.dumps(row) + b"\n"
            out.write(data)
            offset += len(data)
            idx.write(f"{row['prompt_id']} {offset}\n".encode())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--levels", default="1,8,64,256")
    parser.add_argument("--rounds", type=int, default=20, help="Requests per slot at each level.")
    parser.add_argument("--resume-records", type=int, default=1_000_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--prompts", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    levels = [int(x) for x in args.levels.split(",")]
    print(
        f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
        "(other work on this machine lowers every figure)"
    )
    server_ceiling(args.latency, max(levels), max(levels) * 8)
    server, url = start_server(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            print(
                f"server latency {args.latency}s, single mode, openai teacher, {args.rounds} rounds a slot"
            )
            print(
                f"{'concurrency':>11}{'samples':>9}{'samples/s':>11}{'limit/s':>9}{'of limit':>10}"
                f"{'steady':>9}{'CPU ms/sample':>15}{'peak RSS MB':>13}"
            )
            for c in levels:
                n = max(c * args.rounds, 8)
                prompts = tmp_path / f"p{c}.txt"
                write_prompts(prompts, n)
                output = tmp_path / f"out{c}.jsonl"
                r = run_child(url, prompts, output, n, c)
                rate, limit = r["written"] / r["seconds"], c / args.latency
                steady_share = (steady_rate(output, c) or 0.0) / limit
                steady = f"{steady_share:.1%}" if steady_share else "-"
                print(
                    f"{c:>11}{r['written']:>9}{rate:>11.1f}{limit:>9.0f}{rate / limit:>10.1%}"
                    f"{steady:>9}{r['cpu_s'] / max(r['written'], 1) * 1000:>15.2f}{r['peak_rss_mb']:>13.0f}"
                )

            n = args.resume_records
            if n:
                prompts, output = tmp_path / "resume.txt", tmp_path / "resume.jsonl"
                write_prompts(prompts, n + 1)
                build_resume_output(output, prompts, n)
                size_mb = output.stat().st_size / 1e6
                r = run_child(url, prompts, output, n + 1, 1)
                startup = r["seconds"] - args.latency
                print(
                    f"resume on {n:,} records ({size_mb:.0f} MB): the run took {r['seconds']:.2f}s "
                    f"(start-up {startup:.2f}s plus one {args.latency}s request); the whole process "
                    f"{r['wall_s']:.2f}s with Python start-up; wrote {r['written']}; peak RSS "
                    f"{r['peak_rss_mb']:.0f} MB"
                )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
