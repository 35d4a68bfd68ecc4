"""Training metrics: ``metrics.jsonl`` appended as a trainer logs, told to every plugin,
and plotted."""

from __future__ import annotations

from pathlib import Path

import orjson


def plot_metrics(metrics_jsonl: Path, png: Path) -> Path | None:
    """A PNG of every logged curve (loss, lr, SCU's S and λ) against the step."""
    rows = (
        [orjson.loads(x) for x in metrics_jsonl.read_bytes().splitlines() if x.strip()]
        if metrics_jsonl.exists()
        else []
    )
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(
        {k for r in rows for k, v in r.items() if k != "step" and isinstance(v, (int, float))}
    )
    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2.2 * len(keys)), sharex=True, squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        ax.plot([p[0] for p in points], [p[1] for p in points])
        ax.set_ylabel(key)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


class MetricsLog:
    """Training metrics as JSONL (``metrics.jsonl`` in the output directory), told to
    every plugin through the ``hegelion_train_metrics`` hook. Appends, so a resumed
    run continues the same curve."""

    def __init__(self, output_dir: Path) -> None:
        self.path = Path(output_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        from hegelion_core import hooks
        from hegelion_core.data.jsonl import append_jsonl

        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        append_jsonl(self.path, [{"step": step, **clean}], fsync=False)
        hooks.train_metrics(step, clean)
