"""The module each ``accelerate launch`` process runs: ``python -m hegelion_trl.worker JOB``.

Every rank trains; rank 0 writes the outputs and ``trl_result.json`` for the parent.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from hegelion_core import HegelionError, atomic_output
    from hegelion_trl.engine import is_rank_zero, run_training
    from hegelion_trl.launch import RESULT_FILE, Job

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m hegelion_trl.worker JOB.json", file=sys.stderr)
        return 2
    job = Job.model_validate_json(Path(args[0]).read_text(encoding="utf-8"))
    try:
        result = run_training(
            job.data,
            job.output,
            job.config,
            resume_from=job.resume_from,
            attn_implementation=job.attn_implementation,
            bnb_4bit_quant_type=job.bnb_4bit_quant_type,
        )
    except HegelionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if is_rank_zero():
        with atomic_output(job.output / RESULT_FILE) as tmp:
            tmp.write_text(result.model_dump_json(indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
