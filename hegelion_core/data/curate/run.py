"""``hegelion curate``: trace files in, the rows worth training on out, unchanged.

Rows stream from the inputs through the filters into a temporary file that is renamed
over OUT only when every row was seen, so an interrupted run leaves OUT as it was. A
surviving row is its input line, byte for byte. ``OUT.manifest.json`` (written after
OUT) holds the inputs' hashes, OUT's hash, and each filter's report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hegelion_core import hooks
from hegelion_core._version import __version__
from hegelion_core.data.curate.contamination import ContaminationFilter
from hegelion_core.data.curate.duplicates import DuplicateFilter
from hegelion_core.data.curate.filters import (
    DegenerateFilter,
    Filter,
    FilterReport,
    JudgeFilter,
    LengthFilter,
    Row,
    TruncatedFilter,
)
from hegelion_core.data.jsonl import atomic_output, dumps
from hegelion_core.data.quality import QualityConfig
from hegelion_core.data.sources import ReadOptions
from hegelion_core.data.traces import ReadStats, iter_source_records
from hegelion_core.errors import HegelionError
from hegelion_core.records import FileDigest, StageManifest


class CurateJob(BaseModel):
    """Everything `hegelion curate` was asked to do, validated."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[Path] = Field(default_factory=list)  # files and saved dataset directories
    output: Path
    read: ReadOptions = Field(default_factory=ReadOptions)  # text columns, split, --hf
    dedupe: bool = True
    near_threshold: float = Field(0.8, gt=0, le=1)  # 1: exact duplicates only
    shingle: int = Field(3, ge=1, le=16)  # words per MinHash shingle
    num_perm: int = Field(64, ge=16, le=512)
    decontaminate: list[Path] = Field(default_factory=list)
    ngram: int = Field(13, ge=1, le=64)
    min_judge_score: float | None = Field(None, ge=0, le=10)
    min_chars: int | None = Field(None, ge=0)
    max_chars: int | None = Field(None, ge=1)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    skip_invalid: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> CurateJob:
        if not self.inputs and not self.read.hf:
            raise ValueError("give an input file or directory, or a dataset with --hf")
        if (
            self.min_chars is not None
            and self.max_chars is not None
            and self.min_chars > self.max_chars
        ):
            raise ValueError("min_chars is above max_chars")
        return self


class CurateManifest(StageManifest):
    """``OUT.manifest.json``: the stage manifest plus OUT's digest and every filter's report."""

    output: FileDigest
    filters: list[FilterReport]


class CurateSummary(BaseModel):
    output: Path
    manifest: Path
    filters: list[FilterReport]


def make_filters(job: CurateJob) -> list[Filter]:
    """The filters in the order they run: per-row checks, then the stateful ones."""
    filters: list[Filter] = [TruncatedFilter()]
    if job.quality.enabled:
        filters.append(DegenerateFilter(job.quality))
    if job.min_judge_score is not None:
        filters.append(JudgeFilter(job.min_judge_score))
    if job.min_chars is not None or job.max_chars is not None:
        filters.append(LengthFilter(job.min_chars, job.max_chars))
    if job.decontaminate:
        filters.append(ContaminationFilter(job.decontaminate, job.ngram))
    if job.dedupe:
        filters.append(DuplicateFilter(job.near_threshold, job.shingle, job.num_perm))
    return filters


def curate(job: CurateJob) -> CurateSummary:
    """Run the job; raise `HegelionError` when no row survives (OUT is then untouched)."""
    resolved = {p.resolve() for p in [*job.inputs, *job.decontaminate]}
    if job.output.resolve() in resolved:
        raise HegelionError(
            f"{job.output}: the output is also an input; give a new path "
            "(curate never overwrites its own input)"
        )
    with hooks.command_run("curate", job.model_dump(mode="json")) as run:
        summary = _curate(job)
        run.summary = summary
        return summary


def _curate(job: CurateJob) -> CurateSummary:
    filters = make_filters(job)
    read = _Tally("read")
    tallies = [_Tally(f.name) for f in filters]
    checks = [(f.check, t) for f, t in zip(filters, tallies, strict=True)]
    digest = hashlib.sha256()
    size = 0
    with atomic_output(job.output) as tmp, tmp.open("wb", buffering=1 << 20) as out:
        for row in _rows(job, read):
            for check, tally in checks:
                drop = check(row)
                if drop is not None:
                    tally.drop(
                        drop.reason, f"{row.where}: prompt_id {row.record.prompt_id}: {drop.detail}"
                    )
                    break
            else:
                line = row.raw if row.raw.endswith(b"\n") else row.raw + b"\n"
                out.write(line)
                digest.update(line)
                size += len(line)
        reports = _reports(read, tallies)
        if not reports[-1].rows_out:
            raise HegelionError(_nothing_left(job, reports))

    manifest = CurateManifest(
        stage="curate",
        inputs=[d for p in job.inputs for d in FileDigest.under(p)],
        outputs=[str(job.output)],
        output=FileDigest(path=str(job.output), sha256=digest.hexdigest(), bytes=size),
        config=job.model_dump(mode="json", exclude={"inputs", "output"}),
        counts={
            "lines": reports[0].rows_in,
            "records": reports[0].rows_out,
            "dropped": reports[0].rows_in - reports[-1].rows_out,
            "rows_out": reports[-1].rows_out,
        },
        versions=_versions(),
        filters=reports,
    )
    # Written after the data: a manifest never describes a file that is not there.
    manifest_path = manifest_path_of(job.output)
    with atomic_output(manifest_path) as tmp:
        tmp.write_bytes(dumps(manifest.model_dump(mode="json")))
    return CurateSummary(output=job.output, manifest=manifest_path, filters=manifest.filters)


def manifest_path_of(output: Path) -> Path:
    return output.with_name(output.name + ".manifest.json")


@dataclass(slots=True)
class _Tally:
    """A filter's drops while it runs (a pydantic model's setattr costs too much per row)."""

    name: str
    rows_in: int = 0  # counted for "read" only: a filter's rows in are the last one's out
    dropped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)

    def drop(self, reason: str, example: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        self.examples.setdefault(reason, example)


def _reports(read: _Tally, tallies: list[_Tally]) -> list[FilterReport]:
    reports = []
    rows = read.rows_in
    for t in [read, *tallies]:
        out = rows - sum(t.dropped.values())
        reports.append(
            FilterReport(
                name=t.name, rows_in=rows, dropped=t.dropped, examples=t.examples, rows_out=out
            )
        )
        rows = out
    return reports


def _rows(job: CurateJob, read: _Tally) -> Iterator[Row]:
    """Every valid record of every input with its line; the rest counted in ``read``.
    A row that is not a JSONL line (Parquet, a saved dataset, --hf) is written out as
    its columns in one JSON line. Rows read from text are checked for degenerate output
    as they are read, with ``job.quality``."""
    for path in [*job.inputs, *([None] if job.read.hf else [])]:
        stats = ReadStats()
        rows = iter_source_records(
            path, stats, skip_invalid_json=job.skip_invalid, options=job.read, quality=job.quality
        )
        for source, record in rows:
            raw = source.raw if source.raw is not None else _json_line(source.row)
            where = source.label  # "" for a JSONL line: Row builds "file:line" when asked
            yield Row(source.path or Path(str(job.read.hf)), source.line, raw, record, where)
        read.rows_in += stats.lines  # counted once the input is read: reports come after
        for reason, n in stats.invalid.items():
            read.dropped[reason] = read.dropped.get(reason, 0) + n
            read.examples.setdefault(reason, stats.examples[reason])


def _json_line(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, default=str) + b"\n"


def _nothing_left(job: CurateJob, reports: list[FilterReport]) -> str:
    hub = [f"{job.read.hf}[{job.read.split or 'train'}]"] if job.read.hf else []
    inputs = ", ".join([*(str(p) for p in job.inputs), *hub])
    if not reports[0].rows_in:
        return f"no records in {inputs}: the input is empty"
    lines = [f"no row of {inputs} survived curation ({reports[0].rows_in} lines read):"]
    lines += describe(reports)
    return "\n".join(lines)


def describe(reports: list[FilterReport]) -> list[str]:
    """One line per filter, then one per reason with its example: what the CLI prints."""
    lines = []
    for r in reports:
        lines.append(
            f"  {r.name:<14} in {r.rows_in:>8}  dropped {r.rows_in - r.rows_out:>7}  "
            f"out {r.rows_out:>8}"
        )
        for reason, count in sorted(r.dropped.items(), key=lambda kv: -kv[1]):
            lines.append(f"      {count:>7}  {reason}   e.g. {r.examples[reason]}")
    return lines


def _versions() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"hegelion-core": __version__}
    for dist in ("pydantic", "rensa"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out
