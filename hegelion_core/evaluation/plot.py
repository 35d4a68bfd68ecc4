"""The reliability diagram (matplotlib, from the ``plot`` extra)."""

from __future__ import annotations

from pathlib import Path

from hegelion_core.evaluation.metrics import Bin


def reliability_diagram(bins: list[Bin], png: Path, *, title: str, ece: float) -> bool:
    """Draw accuracy per confidence bin against the diagonal; False when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hegelion_core.data.jsonl import atomic_output

    width = bins[0].upper - bins[0].lower if bins else 1.0
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    filled = [b for b in bins if b.count]
    top.bar(
        [b.lower for b in filled],
        [b.accuracy for b in filled],
        width=width,
        align="edge",
        edgecolor="black",
        color="#4c72b0",
        label="accuracy",
    )
    top.bar(
        [b.lower for b in filled],
        [(b.mean_confidence or 0) - (b.accuracy or 0) for b in filled],
        bottom=[b.accuracy for b in filled],
        width=width,
        align="edge",
        color="#dd8452",
        alpha=0.45,
        label="gap to confidence",
    )
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"{title}\nECE {ece:.3f} ({len(bins)} bins)")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(
        [b.lower for b in bins],
        [b.count for b in bins],
        width=width,
        align="edge",
        edgecolor="black",
        color="#8c8c8c",
    )
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("stated confidence")
    bottom.set_ylabel("answers")
    fig.tight_layout()
    with atomic_output(png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return True
