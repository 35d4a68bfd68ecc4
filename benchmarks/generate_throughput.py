"""Generation throughput against a server with fixed latency, and resume start-up time.

    python benchmarks/generate_throughput.py [--latency 0.5] [--levels 1,8,64,256] [--resume-records 1000000]

A local OpenAI-compatible server (``hegelion_core.testing.openai_server``, its own
process) answers every request after ``latency`` seconds with a valid trace. For each
concurrency c, `hegelion generate` (single mode, the ``openai`` teacher, a fresh
process) produces enough samples to keep c requests in flight for several rounds.
The physical limit is c / latency samples per second. Printed per level: samples/s,
share of the limit, and the generator process's peak RSS.

Then the resume check: an output already holding N records (with its index, as the
generator writes it) and a prompt file of N + 1 prompts; the time from starting
`hegelion generate --limit N+1` to the process finishing, minus one request's latency,
is the start-up cost of resuming.

Targets (issue "Generation"): >= 90% of the limit at every level; < 300 MB RSS at 256
in flight; resume start-up < 5 s at 1,000,000 records. Needs hegelion-openai installed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "hegelion_core.testing.openai_server", "--port", str(port),
                             "--latency", str(latency)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the scripted server did not start")


def child(args: argparse.Namespace) -> None:
    """One generator run in this process; prints JSON with its own figures."""
    from hegelion_core.dialectic import DialecticConfig
    from hegelion_core.generate import GenerateJob, run_generate
    from hegelion_core.plugins import make_driver

    teacher = make_driver("teachers", "openai", {"base_url": args.url, "model": "bench"})
    source = make_driver("prompt_sources", "file", {"path": args.prompts})
    job = GenerateJob(output=args.output, limit=args.limit, concurrency=args.concurrency,
                      dialectic=DialecticConfig(mode="single"), timeout=60)
    start = time.perf_counter()
    stats = run_generate(job, teacher, source, progress=False)
    elapsed = time.perf_counter() - start
    print(json.dumps({"written": stats.written, "rejected": stats.rejected, "seconds": elapsed,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_child(url: str, prompts: Path, output: Path, limit: int, concurrency: int) -> dict:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", "--url", url, "--prompts", str(prompts),
                          "--output", str(output), "--limit", str(limit), "--concurrency", str(concurrency)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1]) | {"wall_s": time.perf_counter() - start}


def write_prompts(path: Path, n: int) -> None:
    with path.open("w") as fp:
        for i in range(n):
            fp.write(f"Benchmark question number {i}: is this a good idea?\n")


def build_resume_output(output: Path, prompts: Path, n: int) -> None:
    """N records for the first N prompts, plus the index the generator keeps."""
    import orjson

    from hegelion_core.records import DialecticTrace, TraceRecord, prompt_id

    trace = DialecticTrace(thesis="A thesis. " * 10, antithesis="CONTRADICTION: x\nEVIDENCE: y. " * 3,
                           synthesis="A synthesis. " * 15)
    row = TraceRecord.build("placeholder question", trace, teacher="openai", model="bench").model_dump(mode="json")
    offset = 0
    with prompts.open() as src, output.open("wb") as out, output.with_name(output.name + ".index").open("wb") as idx:
        for i, line in zip(range(n), src):
            text = line.strip()
            row["instruction"], row["prompt_id"] = text, prompt_id(text)
            data = orjson.dumps(row) + b"\n"
            out.write(data)
            offset += len(data)
            idx.write(f"{row['prompt_id']} {offset}\n".encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--levels", default="1,8,64,256")
    parser.add_argument("--rounds", type=int, default=6, help="Requests per slot at each level.")
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

    server, url = start_server(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            print(f"server latency {args.latency}s, single mode, openai teacher")
            print(f"{'concurrency':>11}{'samples':>9}{'samples/s':>11}{'limit/s':>9}{'of limit':>10}{'peak RSS MB':>13}")
            for c in (int(x) for x in args.levels.split(",")):
                n = max(c * args.rounds, 8)
                prompts = tmp_path / f"p{c}.txt"
                write_prompts(prompts, n)
                r = run_child(url, prompts, tmp_path / f"out{c}.jsonl", n, c)
                rate, limit = r["written"] / r["seconds"], c / args.latency
                print(f"{c:>11}{r['written']:>9}{rate:>11.1f}{limit:>9.0f}{rate / limit:>10.1%}{r['peak_rss_mb']:>13.0f}")

            n = args.resume_records
            if n:
                prompts, output = tmp_path / "resume.txt", tmp_path / "resume.jsonl"
                write_prompts(prompts, n + 1)
                build_resume_output(output, prompts, n)
                size_mb = output.stat().st_size / 1e6
                r = run_child(url, prompts, output, n + 1, 1)
                startup = r["seconds"] - args.latency
                print(f"resume on {n:,} records ({size_mb:.0f} MB): the run took {r['seconds']:.2f}s "
                      f"(start-up {startup:.2f}s plus one {args.latency}s request); the whole process "
                      f"{r['wall_s']:.2f}s with Python start-up; wrote {r['written']}; peak RSS "
                      f"{r['peak_rss_mb']:.0f} MB")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
