"""Which curation a dataset's inputs went through, read back from their manifests.

`hegelion dataset` calls `curation_card` for its dataset card: every ``hegelion
curate`` run behind an input (a curated file curated again included), with each
filter's counts and the run's input and output hashes. An input changed since it was
curated is said to be so, since its manifest no longer describes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson
from pydantic import BaseModel, ValidationError

from hegelion_core.data.curate.filters import FilterReport
from hegelion_core.data.curate.run import CurateManifest, manifest_path_of
from hegelion_core.records import FileDigest


class CurationStep(BaseModel):
    """One `hegelion curate` run that made (an ancestor of) a dataset input."""

    manifest: str
    inputs: list[FileDigest]
    output: FileDigest
    matches: bool  # the file on disk is still the one the run wrote
    filters: list[FilterReport]


def curation_lineage(inputs: Iterable[FileDigest | Path]) -> list[CurationStep]:
    """The curation runs behind ``inputs``, earliest first; [] when none was curated."""
    steps: list[CurationStep] = []
    seen: set[str] = set()

    def visit(item: FileDigest | Path) -> None:
        digest = item if isinstance(item, FileDigest) else None
        path = Path(item.path if isinstance(item, FileDigest) else item)
        manifest_path = manifest_path_of(path)
        if str(manifest_path) in seen or not manifest_path.is_file():
            return
        seen.add(str(manifest_path))
        try:
            data = orjson.loads(manifest_path.read_bytes())
            if not isinstance(data, dict) or data.get("stage") != "curate":
                return
            manifest = CurateManifest.model_validate(data)
        except (OSError, orjson.JSONDecodeError, ValidationError):
            return  # not a curate manifest: nothing to say about this input
        for upstream in manifest.inputs:
            visit(upstream)
        if digest is None and path.is_file():
            digest = FileDigest.of(path)
        steps.append(
            CurationStep(
                manifest=str(manifest_path),
                inputs=manifest.inputs,
                output=manifest.output,
                matches=digest is not None and digest.sha256 == manifest.output.sha256,
                filters=manifest.filters,
            )
        )

    for item in inputs:
        visit(item)
    return steps


def curation_card(inputs: Iterable[FileDigest | Path]) -> str:
    """The dataset card's "Curation" section (markdown), or "" when nothing was curated."""
    steps = curation_lineage(inputs)
    if not steps:
        return ""
    parts = ["## Curation", ""]
    for step in steps:
        out = step.output
        parts.append(
            f"`hegelion curate` wrote `{Path(out.path).name}` (sha256 `{out.sha256[:16]}…`, "
            f"{out.bytes} bytes) from:"
        )
        parts += [
            f"- `{Path(d.path).name}` (sha256 `{d.sha256[:16]}…`, {d.bytes} bytes)"
            for d in step.inputs
        ]
        if not step.matches:
            parts.append("")
            parts.append(
                "**The file was changed after curation**: these counts no longer describe it."
            )
        parts += [
            "",
            "| filter | rows in | dropped | rows out | reasons |",
            "|---|---|---|---|---|",
        ]
        for f in step.filters:
            reasons = (
                "; ".join(f"{r}: {n}" for r, n in sorted(f.dropped.items(), key=lambda kv: -kv[1]))
                or "-"
            )
            parts.append(
                f"| {f.name} | {f.rows_in} | {f.rows_in - f.rows_out} | {f.rows_out} | {reasons} |"
            )
        parts.append("")
    return "\n".join(parts) + "\n"
