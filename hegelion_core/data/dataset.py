"""``hegelion dataset``: trace files in, a training dataset out.

Records stream from the inputs through plugin filters and the chosen formatter into
a temporary rows file, so memory stays flat. The rows then take their final layout
(one JSONL or Parquet file, a train/valid/test directory, or a `datasets`
DatasetDict on disk) and are renamed into place only when everything succeeded.
A manifest and a dataset card are written beside them.

Nothing else is touched: an output that is an input (by any name or link) is refused,
and a split directory receives only the files it owns (`OWNED`); one holding anything
else is refused unless ``overwrite``, and even then the other files stay.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
from array import array
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hegelion_core import hooks
from hegelion_core._version import __version__
from hegelion_core.contracts import Formatter, SkipRecord
from hegelion_core.data.jsonl import (
    JsonlWriter,
    atomic_output,
    dumps,
    merge_into,
    read_jsonl,
    remove_stale_temporaries,
    temporary_sibling,
)
from hegelion_core.data.quality import QualityConfig
from hegelion_core.data.sources import ReadOptions
from hegelion_core.data.traces import ReadStats, iter_records
from hegelion_core.errors import HegelionError
from hegelion_core.plugins import make_driver
from hegelion_core.records import FileDigest, StageManifest

Layout = Literal["jsonl", "parquet", "hf"]
SPLIT_FILES = {"train": "train", "valid": "valid", "test": "test"}
HF_SPLIT_NAMES = {"train": "train", "valid": "validation", "test": "test"}
MANIFEST, CARD, HF_DATA = "manifest.json", "README.md", "data"
# Every name a split directory may hold: the only ones `hegelion dataset` writes or removes.
OWNED = (
    *(f"{s}{ext}" for s in SPLIT_FILES.values() for ext in (".jsonl", ".parquet")),
    HF_DATA,
    CARD,
    MANIFEST,
)


class SplitSpec(BaseModel):
    """Exact, seeded train/valid/test split by record, so a prompt's rows stay together."""

    model_config = ConfigDict(extra="forbid")

    valid_ratio: float = Field(0.1, ge=0, lt=1)
    test_ratio: float = Field(0.0, ge=0, lt=1)
    seed: int = 0
    min_rows: int = Field(1, ge=1)  # e.g. mlx-lm's batch size

    @model_validator(mode="after")
    def _room_for_train(self) -> SplitSpec:
        if self.valid_ratio + self.test_ratio >= 1:
            raise ValueError("valid_ratio + test_ratio must leave rows for train")
        return self


class DatasetJob(BaseModel):
    """Everything `hegelion dataset` was asked to do, validated."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[Path] = Field(default_factory=list)  # files and saved dataset directories
    output: Path
    format: str
    read: ReadOptions = Field(default_factory=ReadOptions)  # text columns, split, --hf
    quality: QualityConfig = Field(default_factory=QualityConfig)  # for rows read from text
    options: dict[str, Any] = Field(default_factory=dict)
    to: Layout | None = None  # inferred from the output's suffix when None
    split: SplitSpec | None = None  # None: the formatter's default (mlx splits)
    skip_invalid: bool = False
    dedupe: bool = True
    push_to_hub: str | None = None
    private: bool = False
    overwrite: bool = False  # write a split directory's files beside files that are not ours

    @model_validator(mode="after")
    def _some_input(self) -> DatasetJob:
        if not self.inputs and not self.read.hf:
            raise ValueError("give an input file or directory, or a dataset with --hf")
        return self

    def sources(self) -> list[Path | None]:
        """Every input in order; None stands for the ``--hf`` dataset, read last."""
        return [*self.inputs, *([None] if self.read.hf else [])]

    def describe_inputs(self) -> str:
        hub = [f"{self.read.hf}[{self.read.split or 'train'}]"] if self.read.hf else []
        return ", ".join([*(str(p) for p in self.inputs), *hub])

    def layout(self) -> Layout:
        if self.to:
            return self.to
        return "parquet" if self.output.suffix.lower() == ".parquet" else "jsonl"


class DatasetSummary(BaseModel):
    output: Path
    layout: Layout
    rows: dict[str, int]
    records: int
    lines: int
    skipped: dict[str, int]
    examples: dict[str, str]
    manifest: Path


def build_dataset(job: DatasetJob, *, progress: Any = None) -> DatasetSummary:
    """Run the job; raise `HegelionError` when no valid record is left."""
    formatter: Formatter = make_driver("formatters", job.format, job.options)
    split = _effective_split(job, formatter)
    layout = job.layout()
    if split is None and layout != "hf" and job.output.suffix == "":
        raise HegelionError(
            f"{job.output}: give a file name ending in .jsonl or .parquet, or ask for a "
            "directory with --valid-ratio/--test-ratio or --to hf"
        )
    if split is not None and job.output.suffix.lower() in (".jsonl", ".json", ".parquet"):
        raise HegelionError(
            f"{job.output}: format {job.format!r} with a split writes a directory; "
            "give a directory path (no .jsonl/.parquet suffix)"
        )

    directory = split is not None or layout == "hf"
    ours = _check_output(job, directory)

    with hooks.command_run("dataset", job.model_dump(mode="json")) as run:
        summary = _build(job, formatter, split, layout, progress, ours)
        run.summary = summary
        return summary


def _effective_split(job: DatasetJob, formatter: Formatter) -> SplitSpec | None:
    if job.split is not None:
        return job.split
    default = formatter.default_split
    if default is None:
        return None if job.layout() != "hf" else SplitSpec(valid_ratio=0.0)
    return SplitSpec(**default.model_dump())


def _build(
    job: DatasetJob,
    formatter: Formatter,
    split: SplitSpec | None,
    layout: Layout,
    progress: Any,
    ours: bool,
) -> DatasetSummary:
    stats = ReadStats()
    seen: set[int] = set()
    rows_per_record = array("I")
    sources: Counter[str] = Counter()
    total_rows = 0

    directory = split is not None or layout == "hf"
    staging = temporary_sibling if directory else atomic_output
    with staging(job.output, directory=directory) as tmp_out:
        rows_path = tmp_out / ".rows.jsonl" if directory else tmp_out
        with JsonlWriter(rows_path) as writer:
            for record in _filtered(job, stats, seen):
                try:
                    rows = list(formatter.format(record))
                except SkipRecord as skip:
                    stats.valid -= 1
                    stats.reject(skip.reason, f"prompt_id {record.prompt_id}")
                    continue
                for row in rows:
                    writer.write(row)
                rows_per_record.append(len(rows))
                total_rows += len(rows)
                sources[f"{record.teacher or 'unknown'}/{record.model or 'unknown'}"] += 1
                if progress is not None:
                    progress(stats.lines)

        if total_rows == 0:
            raise HegelionError(_nothing_valid(job, stats))

        if split is None:
            counts = {"train": total_rows}
            if layout == "parquet":
                with temporary_sibling(job.output, directory=True) as scratch:
                    _jsonl_to_parquet(rows_path, rows_path, scratch)
        else:
            counts = _write_splits(rows_path, rows_per_record, split, tmp_out, layout, job)
            rows_path.unlink()

        manifest = StageManifest(
            stage="dataset",
            inputs=[d for p in job.inputs for d in _digests(p)],
            outputs=[str(job.output)],
            config=job.model_dump(mode="json", exclude={"inputs", "output"}),
            counts={
                "lines": stats.lines,
                "records": stats.valid,
                "skipped": sum(stats.invalid.values()),
                **{f"rows_{k}": v for k, v in counts.items()},
            },
            versions=_versions(),
        )
        card = dataset_card(job, formatter, manifest, stats, counts, sources)
        if directory:
            (tmp_out / MANIFEST).write_bytes(dumps(manifest.model_dump(mode="json")))
            (tmp_out / CARD).write_text(card, encoding="utf-8")
            made = sorted(os.listdir(tmp_out))
            # The manifest last: it marks the directory as ours and describes the rest.
            names = [n for n in OWNED if n in made and n != MANIFEST] + [MANIFEST]
            stale = tuple(n for n in OWNED if ours and n not in made)
            merge_into(tmp_out, job.output, names, remove=stale)

    if directory:
        manifest_path = job.output / MANIFEST
    else:
        # Written after the data: a manifest never describes a file that is not there.
        manifest_path = job.output.with_name(job.output.name + ".manifest.json")
        with atomic_output(manifest_path) as tmp:
            tmp.write_bytes(dumps(manifest.model_dump(mode="json")))

    if job.push_to_hub:
        push_to_hub(job, counts, card)

    return DatasetSummary(
        output=job.output,
        layout=layout,
        rows=counts,
        records=stats.valid,
        lines=stats.lines,
        skipped=dict(stats.invalid),
        examples=stats.examples,
        manifest=manifest_path,
    )


def _manifest_beside(output: Path) -> Path:
    return output.with_name(output.name + ".manifest.json")


def _check_output(job: DatasetJob, directory: bool) -> bool:
    """Refuse an output that would write over an input or over files Hegelion did not
    write; return whether ``job.output`` is a split directory an earlier run wrote (its
    owned files, stale splits included, may then be replaced or removed)."""
    out, ours = job.output, False
    if directory:
        if out.exists() and not out.is_dir():
            raise HegelionError(
                f"{out}: exists and is not a directory; a split is a directory: give a new or "
                "empty directory path"
            )
        targets = {out / name: f"the split's {name}" for name in OWNED}
        if out.is_dir():
            ours = _check_split_dir(job)
    else:
        if out.is_dir():
            raise HegelionError(
                f"{out}: is a directory; give a file path ending in .jsonl or .parquet"
            )
        targets = {out: "the output", _manifest_beside(out): "the manifest beside the output"}
    inputs = _file_ids(job.inputs)
    for target, what in targets.items():
        hit = _input_under(target, inputs)
        if hit is not None:
            alias = "" if hit == target else f" ({target} is {hit} under another name or a link)"
            raise HegelionError(
                f"{target}: {what} is the input {hit}{alias}; Hegelion never writes over an "
                "input: give another output path"
            )
    return ours


def _check_split_dir(job: DatasetJob) -> bool:
    out = job.output
    for name in OWNED:  # a killed run's swapped-out `data` inside the directory
        remove_stale_temporaries(out / name)
    ours = _is_dataset_manifest(out / MANIFEST)
    others = sorted(n for n in os.listdir(out) if not (ours and n in OWNED))
    if others and not job.overwrite:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise HegelionError(
            f"{out}: holds files that `hegelion dataset` did not write ({shown}); give a new or "
            "empty directory, or pass --overwrite to write the split's files (train, valid, test, "
            f"{CARD}, {MANIFEST}) beside them: the other files are left alone"
        )
    return ours


def _is_dataset_manifest(path: Path) -> bool:
    try:
        return orjson.loads(path.read_bytes()).get("stage") == "dataset"
    except (OSError, ValueError, AttributeError):
        return False


def _file_ids(paths: list[Path]) -> dict[tuple[int, int], Path]:
    """(device, inode) of each existing input: equal for the same file under any name,
    through a symlink (followed) or a hard link."""
    ids: dict[tuple[int, int], Path] = {}
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue  # reading it reports the problem
        ids.setdefault((st.st_dev, st.st_ino), path)
    return ids


def _input_under(target: Path, inputs: dict[tuple[int, int], Path]) -> Path | None:
    """The input that ``target`` is, or (a directory that would be replaced) holds."""
    try:
        st = target.stat()
    except OSError:
        return None
    if (st.st_dev, st.st_ino) in inputs:
        return inputs[(st.st_dev, st.st_ino)]
    if target.is_dir() and not target.is_symlink():
        for root, _dirs, files in os.walk(target):
            for name in files:
                with contextlib.suppress(OSError):
                    st = os.stat(os.path.join(root, name))
                    if (st.st_dev, st.st_ino) in inputs:
                        return inputs[(st.st_dev, st.st_ino)]
    return None


def _filtered(job: DatasetJob, stats: ReadStats, seen: set[int]) -> Iterator[Any]:
    """Records from every input, deduplicated by prompt id and passed through hooks."""
    for path in job.sources():
        records = iter_records(
            path,
            stats,
            skip_invalid_json=job.skip_invalid,
            options=job.read,
            quality=job.quality,
        )
        label = path or job.read.hf
        for record in records:
            if job.dedupe:
                key = int(record.prompt_id[:16], 16)
                if key in seen:
                    stats.valid -= 1
                    stats.reject("duplicate prompt_id", f"{label}: prompt_id {record.prompt_id}")
                    continue
                seen.add(key)
            admitted = hooks.admit(record)
            if admitted is None:
                stats.valid -= 1
                stats.reject("rejected by plugin", f"{label}: prompt_id {record.prompt_id}")
                continue
            yield admitted


def _nothing_valid(job: DatasetJob, stats: ReadStats) -> str:
    inputs = job.describe_inputs()
    if not stats.lines:
        return f"no records in {inputs}: the input is empty"
    lines = [f"no valid records for format {job.format!r} in {inputs} ({stats.lines} lines read):"]
    for reason, count in stats.invalid.most_common():
        lines.append(f"  {count:>6}  {reason}   e.g. {stats.examples[reason]}")
    return "\n".join(lines)


def _write_splits(
    rows_path: Path,
    rows_per_record: array,
    spec: SplitSpec,
    out_dir: Path,
    layout: Layout,
    job: DatasetJob,
) -> dict[str, int]:
    """Assign whole records to splits with a seeded sample; stream rows into files."""
    n = len(rows_per_record)
    n_valid = _split_size(n, spec.valid_ratio)
    n_test = _split_size(n, spec.test_ratio)
    if n - n_valid - n_test < 1:
        raise HegelionError(f"{n} records are too few for a train/valid/test split")
    chosen = random.Random(spec.seed).sample(range(n), n_valid + n_test)
    which = {i: "valid" for i in chosen[:n_valid]} | {i: "test" for i in chosen[n_valid:]}

    counts = Counter(
        {"train": 0, **({"valid": 0} if n_valid else {}), **({"test": 0} if n_test else {})}
    )
    for i, k in enumerate(rows_per_record):
        counts[which.get(i, "train")] += k
    too_small = {s: c for s, c in counts.items() if c < spec.min_rows}
    if too_small:
        detail = ", ".join(f"{s} would have {c}" for s, c in too_small.items())
        raise HegelionError(
            f"split too small for batch size {spec.min_rows}: {detail} rows. mlx-lm "
            "refuses a split smaller than its batch size. Add records, raise "
            "--valid-ratio/--test-ratio, or lower --batch-size."
        )

    files = {s: out_dir / f"{SPLIT_FILES[s]}.jsonl" for s in counts}
    writers = {s: JsonlWriter(p) for s, p in files.items()}
    try:
        rows = read_jsonl(rows_path)
        for i, k in enumerate(rows_per_record):
            writer = writers[which.get(i, "train")]
            for _ in range(k):
                writer.write(next(rows)[1])
    finally:
        for w in writers.values():
            w.close()

    if layout == "parquet":
        for p in files.values():
            _jsonl_to_parquet(p, p.with_suffix(".parquet"), out_dir)
            p.unlink()
    elif layout == "hf":
        _save_dataset_dict(files, out_dir, job)
    return dict(counts)


def _split_size(n: int, ratio: float) -> int:
    if ratio <= 0:
        return 0
    return max(1, round(n * ratio))


def _arrow_dataset(path: Path, cache: Path) -> Any:
    """A memory-mapped `datasets.Dataset` over a JSONL file: rows never all sit in RAM."""
    from datasets import Dataset

    return Dataset.from_json(str(path), cache_dir=str(cache), keep_in_memory=False)


def _jsonl_to_parquet(src: Path, dest: Path, scratch: Path) -> None:
    """Convert through ``scratch``, a directory of this run's own (never a shared cache
    beside the output, which a concurrent run would delete from under this one)."""
    cache = scratch / ".arrow-cache"
    try:
        ds = _arrow_dataset(src, cache)
        tmp = scratch / f"{dest.name}.parquet-tmp"
        ds.to_parquet(str(tmp))
        del ds
        tmp.replace(dest)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _save_dataset_dict(files: dict[str, Path], out_dir: Path, job: DatasetJob) -> None:
    from datasets import DatasetDict

    cache = out_dir / ".arrow-cache"
    try:
        dd = DatasetDict({HF_SPLIT_NAMES[s]: _arrow_dataset(p, cache) for s, p in files.items()})
        dd.save_to_disk(str(out_dir / "data"))
        del dd
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    for p in files.values():
        p.unlink()


def load_dataset_dict(path: Path) -> Any:
    """Load what ``--to hf`` wrote (``datasets.load_from_disk`` of its ``data`` dir)."""
    from datasets import load_from_disk

    return load_from_disk(str(Path(path) / "data"))


# ----- provenance ---------------------------------------------------------------------


def _digests(path: Path) -> list[FileDigest]:
    """An input file's digest, or those of every file of a saved dataset directory."""
    return FileDigest.under(path) if path.is_dir() else [_digest(path)]


def _digest(path: Path) -> FileDigest:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fp:
        while chunk := fp.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return FileDigest(path=str(path), sha256=h.hexdigest(), bytes=size)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"hegelion-core": __version__}
    for dist in ("pydantic", "datasets", "pyarrow"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def dataset_card(
    job: DatasetJob,
    formatter: Formatter,
    manifest: StageManifest,
    stats: ReadStats,
    counts: dict[str, int],
    sources: Counter[str],
) -> str:
    """A Hugging Face dataset card that says how the data was made."""
    from hegelion_core.data.curate import curation_card  # each `hegelion curate` behind the inputs

    names = HF_SPLIT_NAMES if job.layout() == "hf" else SPLIT_FILES
    split_lines = "\n".join(f"| {names[s]} | {c} |" for s, c in counts.items())
    source_lines = "\n".join(f"- `{s}`: {c} records" for s, c in sources.most_common(10))
    inputs = "\n".join(
        f"- `{Path(d.path).name}` (sha256 `{d.sha256[:16]}…`, {d.bytes} bytes)"
        for d in manifest.inputs
    )
    if job.read.hf:
        inputs += f"\n- Hugging Face dataset `{job.read.hf}`, split `{job.read.split or 'train'}`"
    skipped = "\n".join(f"- {reason}: {n}" for reason, n in stats.invalid.most_common()) or "- none"
    options = dumps(formatter.options.model_dump(mode="json")).decode()
    return f"""---
tags:
- hegelion
- dialectical-reasoning
- synthetic
task_categories:
- text-generation
---

# Hegelion dialectical reasoning dataset ({job.format})

Each example comes from a teacher model that answered a prompt with a **thesis**,
attacked it with an **antithesis**, and resolved the conflict in a **synthesis**.
This dataset holds {formatter.describe()}.

## How it was made

- Built with Hegelion {__version__} (`hegelion dataset --format {job.format}`).
- Formatter options: `{options}`.
- Records read: {stats.lines} lines; {stats.valid} valid records were used.
- Records were deduplicated by `prompt_id` (a hash of the normalised prompt): {"yes" if job.dedupe else "no"}.

Input files:
{inputs}

Teachers and models (teacher/model):
{source_lines}

Records left out, by reason:
{skipped}

{curation_card(manifest.inputs)}## Splits

| split | rows |
|---|---|
{split_lines}

## Limitations

The traces are generated by language models: they can be wrong, one-sided, or
confidently mistaken. A synthesis is not a verified answer.
"""


def push_to_hub(job: DatasetJob, counts: dict[str, int], card: str) -> None:
    """Upload the dataset and its card with `datasets` and `huggingface_hub`."""
    from datasets import DatasetDict, load_dataset
    from huggingface_hub import DatasetCard

    repo = job.push_to_hub
    assert repo is not None  # called only for --push-to-hub
    builder, suffix = ("parquet", ".parquet") if job.layout() == "parquet" else ("json", ".jsonl")
    try:
        if job.layout() == "hf":
            dd = load_dataset_dict(job.output)
        elif job.output.is_dir():
            files = {
                HF_SPLIT_NAMES[s]: str(job.output / f"{SPLIT_FILES[s]}{suffix}") for s in counts
            }
            dd = load_dataset(builder, data_files=files)
        else:
            dd = DatasetDict(
                {"train": load_dataset(builder, data_files=str(job.output), split="train")}
            )
        dd.push_to_hub(repo, private=job.private)
        DatasetCard(card).push_to_hub(repo, repo_type="dataset")
    except Exception as exc:
        raise HegelionError(
            f"push to the Hub ({repo}) failed: {type(exc).__name__}: {exc}\n"
            "  The dataset is saved locally at "
            f"{job.output}. Check the repo id, `huggingface-cli login` or HF_TOKEN, and "
            "the network, then push again with --push-to-hub."
        ) from exc
