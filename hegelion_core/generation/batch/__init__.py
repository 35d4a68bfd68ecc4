"""``hegelion generate --batch``: the dialectic through providers' batch APIs, in rounds.

The same `DialecticEngine` runs per prompt on a replay teacher (`replay`): answers
already collected are replayed, and a request not answered yet is recorded and stops
the prompt for this round. The recorded requests become the next round's provider jobs
(`rounds`), split below the provider's limits (`split`). Every fact lives in the job
store beside the output (`store`), appended atomically, so ``kill -9`` at any point and
a rerun lose nothing and submit nothing twice. See docs/batch.md.
"""
