"""``hegelion curate``: the quality gate between ``hegelion generate`` and ``hegelion dataset``.

Duplicates (exact and MinHash near), held-out prompt n-gram overlap, judge score, length,
truncated and degenerate answers: each filter drops rows with a counted reason, and the
rows that survive are their input lines unchanged. See docs/curation.md.
"""

from hegelion_core.data.curate.filters import Drop, Filter, FilterReport, Row
from hegelion_core.data.curate.lineage import CurationStep, curation_card, curation_lineage
from hegelion_core.data.curate.run import (
    CurateJob,
    CurateManifest,
    CurateSummary,
    curate,
    make_filters,
)

__all__ = [
    "CurateJob",
    "CurateManifest",
    "CurateSummary",
    "CurationStep",
    "Drop",
    "Filter",
    "FilterReport",
    "Row",
    "curate",
    "curation_card",
    "curation_lineage",
    "make_filters",
]
