"""``file``: prompts from a text file (one per line) or a JSONL file (one per row)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Literal

from hegelion_core.contracts import DriverOptions, PromptSource
from hegelion_core.data.jsonl import read_jsonl
from hegelion_core.data.prompt_sources import NoPromptColumn, extract_prompt, prompt_key
from hegelion_core.errors import InputError
from hegelion_core.records import Prompt


class FilePromptSource(PromptSource):
    name = "file"

    class Options(DriverOptions):
        path: Path
        column: str | None = None  # JSONL only; found automatically when omitted
        format: Literal["auto", "txt", "jsonl"] = "auto"
        limit: int | None = None

    def iter_prompts(self) -> Iterator[Prompt]:
        return self.iter_unsettled(None)

    def iter_unsettled(self, settled: Callable[[int], bool] | None) -> Iterator[Prompt]:
        """The prompts for which ``settled(prompt_key)`` is false, in order. A prompt
        that is skipped is only hashed: resuming on a million done prompts builds no
        `Prompt` for them. ``--limit`` counts every prompt of the file, skipped or not."""
        opts = self.options
        fmt = opts.format
        if fmt == "auto":
            fmt = "jsonl" if opts.path.suffix.lower() in (".jsonl", ".json", ".ndjson") else "txt"
        texts = self._jsonl() if fmt == "jsonl" else self._txt()
        if opts.limit is not None:
            texts = islice(texts, opts.limit)
        name = opts.path.name
        for lineno, text in texts:
            key = prompt_key(text)
            if settled is None or not settled(key):
                yield Prompt(text=text, id=f"{key:016x}", source=f"{name}:{lineno}")

    def _txt(self) -> Iterator[tuple[int, str]]:
        path = self.options.path
        if not path.is_file():
            raise InputError(path, None, "prompt file not found")
        with path.open(encoding="utf-8") as fp:
            for lineno, line in enumerate(fp, 1):
                text = line.strip()
                if text:
                    yield lineno, text

    def _jsonl(self) -> Iterator[tuple[int, str]]:
        path = self.options.path
        for lineno, row in read_jsonl(path):
            try:
                text = extract_prompt(row, self.options.column)
            except NoPromptColumn as exc:
                raise InputError(path, lineno, str(exc), field=self.options.column) from None
            text = text.strip()
            if text:
                yield lineno, text
