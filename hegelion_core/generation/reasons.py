"""How rejected prompts are grouped by reason, in the progress output and `hegelion status`.

A teacher error keeps its first line, so "thesis: teacher error: HTTP 404 model
'kimi-cli' not found" says what went wrong, not only "teacher error". Ids and long
numbers (request ids, ports, sizes, seconds) become ``<id>`` and ``N`` and the line is
cut at `LABEL_CHARS`, so the same error on many prompts still counts as one reason.
Other reasons group by their kind, the text before the first colon (``truncated``,
``degenerate``, ``unparseable trace after repair``); the rejects file keeps every
reason whole.
"""

from __future__ import annotations

import re

LABEL_CHARS = 120

_IDS = re.compile(
    r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"  # a uuid
    # a run of 12+ letters and digits with 3+ digits: req_8f3a9b2c1d4e, chatcmpl-9zXy8w7...
    r"|(?<![A-Za-z0-9])(?=(?:[A-Za-z]*\d){3})(?=[0-9]*[A-Za-z])[A-Za-z0-9]{12,}(?![A-Za-z0-9])",
    re.IGNORECASE,
)
# 12.5s, port 18777, 4096 characters; not HTTP 429, 3 attempts, 127.0.0.1 or gpt-4o-2024-08-06
_NUMBERS = re.compile(r"(?<![\w.-])(?:\d+\.\d+|\d{4,})(?![\d.-])")


def reject_label(phase: str, reason: str) -> str:
    """The label one reject counts under: ``PHASE: WHAT``."""
    if not reason.startswith("teacher error"):
        return f"{phase}: {reason.split(':')[0]}"
    first = (reason.strip().splitlines() or [""])[0].strip()
    first = _NUMBERS.sub("N", _IDS.sub("<id>", first))
    if len(first) > LABEL_CHARS:
        first = first[: LABEL_CHARS - 3].rstrip() + "..."
    return f"{phase}: {first}"
