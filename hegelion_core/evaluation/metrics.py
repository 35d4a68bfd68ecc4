"""Calibration metrics: reliability bins and Expected Calibration Error.

ECE with ``B`` equal-width bins over [0, 1] (bin ``i`` holds confidences in
``[i/B, (i+1)/B)``, the last bin also holds 1.0)::

    ECE = sum over non-empty bins b of  (n_b / N) * |accuracy_b - mean_confidence_b|

the gap between how sure the model said it was and how often it was right, weighted
by how many answers fell in each bin. 0 is perfect; 1 is the worst possible.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

DEFAULT_BINS = 15


class Bin(BaseModel):
    lower: float
    upper: float
    count: int
    mean_confidence: float | None  # None for an empty bin
    accuracy: float | None


def bin_index(confidence: float, bins: int = DEFAULT_BINS) -> int:
    if not 0.0 <= confidence <= 1.0:
        raise ValueError(f"confidence {confidence} is outside [0, 1]")
    # The 1e-9 puts values that sit on an edge (0.2 * 15 = 2.9999...) in the upper bin.
    return min(int(confidence * bins + 1e-9), bins - 1)


def reliability(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = DEFAULT_BINS
) -> list[Bin]:
    """Per-bin counts, mean confidence and accuracy, for ECE and the reliability diagram."""
    if len(confidences) != len(correct):
        raise ValueError("confidences and correct differ in length")
    if bins < 1:
        raise ValueError("bins must be at least 1")
    sums = [[0, 0.0, 0] for _ in range(bins)]  # count, sum of confidence, right answers
    for conf, ok in zip(confidences, correct):
        s = sums[bin_index(conf, bins)]
        s[0] += 1
        s[1] += conf
        s[2] += bool(ok)
    return [
        Bin(
            lower=i / bins,
            upper=(i + 1) / bins,
            count=n,
            mean_confidence=total / n if n else None,
            accuracy=right / n if n else None,
        )
        for i, (n, total, right) in enumerate(sums)
    ]


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = DEFAULT_BINS
) -> float:
    """ECE over equal-width bins (15 by default); raises ValueError on no answers."""
    if not confidences:
        raise ValueError("ECE of no answers is undefined")
    n = len(confidences)
    return sum(
        b.count / n * abs(b.accuracy - b.mean_confidence)
        for b in reliability(confidences, correct, bins)
        if b.count and b.accuracy is not None and b.mean_confidence is not None  # None: empty
    )
