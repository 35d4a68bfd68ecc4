"""Where trace rows come from: JSONL, Parquet, saved ``datasets`` directories, the Hub.

``hegelion dataset`` and ``hegelion curate`` read rows from any of these, one at a
time, so a file larger than memory streams through:

* a JSONL file (any suffix but ``.parquet``), line by line, each row with its bytes;
* a Parquet file, in record batches (``pyarrow``);
* a directory written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``
  (memory-mapped Arrow), every split in order unless one is named;
* a directory written by distilabel's ``Distiset.save_to_disk``: one saved dataset
  per subset beside ``distiset_configs/``;
* ``--hf NAME --split S``: ``datasets.load_dataset(NAME, split=S, streaming=True)``,
  where NAME is a Hub id, a local dataset repository or a directory of data files.

Every row comes with where it is (``file:line``, ``file:row N``), so a bad row is
reported at its place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from hegelion_core.data.jsonl import read_jsonl_lines
from hegelion_core.errors import HegelionError, InputError

DISTISET_CONFIGS = "distiset_configs"  # distilabel's folder beside a Distiset's subsets
_BATCH_ROWS = 1024


class ReadOptions(BaseModel):
    """How rows are found and read: the same for `hegelion dataset` and `hegelion curate`."""

    model_config = ConfigDict(extra="forbid")

    trace_field: str | None = None  # the column holding the trace text
    prompt_field: str | None = None  # the column holding the prompt
    split: str | None = None  # of a saved DatasetDict, a Distiset or --hf (its default: train)
    hf: str | None = None  # a Hugging Face dataset name read with --hf
    hf_config: str | None = None  # its subset


@dataclass(slots=True)  # not frozen: a frozen __init__ costs per row
class SourceRow:
    """One row and where it was read; ``raw`` is the JSONL line's bytes (None otherwise)."""

    row: dict[str, Any]
    path: Path | None = None
    line: int = 0  # the JSONL line, or the row's index
    raw: bytes | None = None
    label: str = ""  # where a row that is not a JSONL line is; JSONL rows build theirs

    @property
    def where(self) -> str:
        """``file:line`` (built only when asked: most rows never need it), or the label."""
        return self.label or f"{self.path}:{self.line}"


OnInvalid = Callable[[str, str, bool], None]  # (where, problem, torn tail)


def iter_source_rows(
    path: Path,
    options: ReadOptions,
    *,
    skip_invalid: bool = False,
    on_invalid: OnInvalid | None = None,
) -> Iterator[SourceRow]:
    """Every row of one input path, in order."""
    if path.is_dir():
        yield from _directory_rows(path, options.split)
    elif path.suffix.lower() == ".parquet":
        yield from _parquet_rows(path)
    else:
        yield from _jsonl_rows(path, skip_invalid, on_invalid)


def iter_hub_rows(options: ReadOptions) -> Iterator[SourceRow]:
    """Rows of ``--hf NAME`` streamed with ``datasets.load_dataset``; any failure to reach
    or read the dataset is a `HegelionError` that says what to check."""
    from hegelion_core.data.prompt_sources.hf import HFPromptSource

    assert options.hf is not None
    name, split = options.hf, options.split or "train"
    source = HFPromptSource(
        {"dataset": name, "split": split, "config": options.hf_config, "streaming": True}
    )
    label = f"{name}[{split}]"
    try:
        rows = iter(source.load())  # the hf prompt source's loader: one way to open a dataset
        for index, row in enumerate(rows):
            yield SourceRow(dict(row), None, index, label=f"{label}:row {index}")
    except HegelionError:
        raise
    except Exception as exc:  # the Hub, the network, a file that is not a dataset
        raise HegelionError(
            f"{name}: could not read the Hugging Face dataset (split {split!r}): "
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            "\n  hint: check the name and the split; offline (HF_HUB_OFFLINE=1, or no network) "
            "only datasets already in the local cache, local dataset directories and local "
            "data files can be read: download it first, or give a local path"
        ) from None


def _jsonl_rows(
    path: Path, skip_invalid: bool, on_invalid: OnInvalid | None
) -> Iterator[SourceRow]:
    from hegelion_core.data.jsonl import TORN_TAIL

    def bad(lineno: int, problem: str) -> None:
        if on_invalid is not None:
            on_invalid(f"{path}:{lineno}", problem, problem == TORN_TAIL)

    for lineno, raw, obj in read_jsonl_lines(path, skip_invalid=skip_invalid, on_invalid=bad):
        yield SourceRow(obj, path, lineno, raw)


def _parquet_rows(path: Path) -> Iterator[SourceRow]:
    import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type hints
    import pyarrow.parquet as pq  # type: ignore[import-untyped]  # (nor stubs)

    try:
        reader = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(path, None, f"not a readable Parquet file ({exc})") from None
    index = 0
    with reader:
        for batch in reader.iter_batches(batch_size=_BATCH_ROWS):
            for row in batch.to_pylist():
                yield SourceRow(row, path, index, label=f"{path}:row {index}")
                index += 1


def _directory_rows(path: Path, split: str | None) -> Iterator[SourceRow]:
    if (path / DISTISET_CONFIGS).is_dir():  # distilabel: one saved dataset per subset
        subsets = sorted(
            p
            for p in path.iterdir()
            if p.is_dir() and p.name != DISTISET_CONFIGS and saved_dataset(p)
        )
        if not subsets:
            raise InputError(path, None, "a distilabel Distiset directory with no saved subset")
        for subset in subsets:
            yield from _saved_rows(subset, split)
        return
    if not saved_dataset(path):
        raise InputError(
            path,
            None,
            "a directory that no `save_to_disk` wrote (no dataset_dict.json or state.json)",
            hint="give a JSONL or Parquet file, a saved dataset directory, or read a "
            "directory of data files with --hf DIRECTORY",
        )
    yield from _saved_rows(path, split)


def saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _saved_rows(path: Path, split: str | None) -> Iterator[SourceRow]:
    """A saved Dataset (memory-mapped, read in batches) or each split of a DatasetDict."""
    import datasets

    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        if split is not None and split not in loaded:
            raise InputError(
                path,
                None,
                f"no split {split!r}; its splits are: {', '.join(loaded)}",
                hint="choose one with --split",
            )
        parts = [(f"{path}[{name}]", loaded[name]) for name in loaded if split in (None, name)]
    else:
        parts = [(str(path), loaded)]
    for label, ds in parts:
        index = 0
        for batch in ds.iter(batch_size=_BATCH_ROWS):
            columns = list(batch)
            for values in zip(*(batch[c] for c in columns), strict=True):
                row = dict(zip(columns, values, strict=True))
                yield SourceRow(row, path, index, label=f"{label}:row {index}")
                index += 1
