"""``hegelion eval``: score a model on the dialectic, calibration and belief-revision suites.

* `items`: the pydantic item schemas eval files hold (generators write them);
* `scoring`: the answer conventions and per-item scoring, pure functions;
* `metrics`: reliability bins and Expected Calibration Error;
* `suites`: per-suite records and figures from (item, answer) pairs;
* `runner`: runs a model through the Teacher contract and writes the results.
"""

from hegelion_core.evaluation.items import (
    SUITES,
    BeliefRevisionItem,
    CalibrationItem,
    load_items,
    parse_item,
)
from hegelion_core.evaluation.metrics import Bin, expected_calibration_error, reliability
from hegelion_core.evaluation.results import EvalResult, ItemRecord

__all__ = [
    "SUITES",
    "BeliefRevisionItem",
    "Bin",
    "CalibrationItem",
    "EvalResult",
    "ItemRecord",
    "expected_calibration_error",
    "load_items",
    "parse_item",
    "reliability",
]
