"""``hf``: prompts from a Hugging Face dataset, by name or local path.

``datasets.load_dataset`` does the loading, streaming by default so a large set is
never downloaded whole. The prompt column is found automatically (``prompt``,
``instruction``, ``question``, or the first user turn of ``messages``) or named.
A seeded shuffle works in streaming mode too (a shuffle buffer). An unknown split
is an error that lists the real ones.

``dataset`` may be a hub id (``HuggingFaceH4/ultrafeedback_binarized``), a local
directory written by ``save_to_disk``, a local data file (``.parquet``, ``.json``,
``.jsonl``, ``.csv``), or a builder name (``parquet``) with ``data_files``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hegelion_core.contracts import DriverOptions, PromptSource
from hegelion_core.data.prompt_sources import NoPromptColumn, extract_prompt, prompt_key
from hegelion_core.errors import HegelionError, InputError
from hegelion_core.records import Prompt

_FILE_BUILDERS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv"}


class HFPromptSource(PromptSource):
    name = "hf"

    class Options(DriverOptions):
        dataset: str
        split: str = "train"
        column: str | None = None
        config: str | None = None  # the dataset's subset ("name" in load_dataset)
        data_files: str | list[str] | dict[str, Any] | None = None
        seed: int | None = None  # shuffle with this seed; None keeps the dataset order
        shuffle_buffer: int = 10_000  # streaming shuffle window
        streaming: bool = True
        limit: int | None = None
        revision: str | None = None

    def load(self) -> Any:
        """The dataset (streamed unless ``streaming: false``): also how `hegelion dataset
        --hf` and `hegelion curate --hf` open one."""
        import datasets

        o = self.options
        path = Path(o.dataset)
        try:
            if _saved_to_disk(path):
                loaded = datasets.load_from_disk(str(path))
                if isinstance(loaded, datasets.DatasetDict):
                    ds = loaded[o.split]  # KeyError for an unknown split
                elif o.split == "train":
                    ds = loaded
                else:
                    raise KeyError(o.split)
                return ds.to_iterable_dataset() if o.streaming else ds
            builder, files = o.dataset, o.data_files
            if path.is_file() and path.suffix in _FILE_BUILDERS:
                builder, files = _FILE_BUILDERS[path.suffix], str(path)
            return datasets.load_dataset(
                builder,
                o.config,
                split=o.split,
                data_files=files,
                streaming=o.streaming,
                revision=o.revision,
            )
        except KeyError as exc:
            raise HegelionError(self._unknown_split(str(exc))) from None
        except ValueError as exc:
            if "split" not in str(exc).lower():
                raise
            raise HegelionError(self._unknown_split(str(exc))) from None

    def _unknown_split(self, detail: str) -> str:
        splits = self._split_names()
        listed = ", ".join(splits) if splits else f"(could not list them: {detail})"
        return (
            f"dataset {self.options.dataset!r} has no split {self.options.split!r}. "
            f"Its splits are: {listed}. Choose one with --split."
        )

    def _split_names(self) -> list[str]:
        import datasets

        o = self.options
        path = Path(o.dataset)
        try:
            if _saved_to_disk(path):
                loaded = datasets.load_from_disk(str(path))
                return list(loaded) if isinstance(loaded, datasets.DatasetDict) else ["train"]
            if path.is_file():
                return ["train"]
            if o.data_files is not None:
                return list(o.data_files) if isinstance(o.data_files, dict) else ["train"]
            return datasets.get_dataset_split_names(o.dataset, o.config, revision=o.revision)
        except Exception:
            return []

    def iter_prompts(self) -> Iterator[Prompt]:
        return self.iter_unsettled(None)

    def iter_unsettled(self, settled: Callable[[int], bool] | None) -> Iterator[Prompt]:
        """The prompts for which ``settled(prompt_key)`` is false, in order; skipped ones
        are only hashed, never built into a `Prompt`. ``limit`` counts every prompt."""
        o = self.options
        label = f"{o.dataset}:{o.split}"
        ds = self.load()
        if o.seed is not None:
            ds = (
                ds.shuffle(seed=o.seed, buffer_size=o.shuffle_buffer)
                if o.streaming
                else ds.shuffle(seed=o.seed)
            )
        count = 0
        for index, row in enumerate(ds):
            if o.limit is not None and count >= o.limit:
                return
            try:
                text = extract_prompt(row, o.column)
            except NoPromptColumn as exc:
                raise InputError(o.dataset, None, f"row {index}: {exc}", field=o.column) from None
            text = text.strip() if text else ""
            if text:
                count += 1
                key = prompt_key(text)
                if settled is None or not settled(key):
                    yield Prompt(text=text, id=f"{key:016x}", source=label)


def _saved_to_disk(path: Path) -> bool:
    """A directory written by ``Dataset(Dict).save_to_disk``."""
    return path.is_dir() and (
        (path / "dataset_dict.json").exists() or (path / "state.json").exists()
    )
