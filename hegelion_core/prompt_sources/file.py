"""``file``: prompts from a text file (one per line) or a JSONL file (one per row)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from hegelion_core.contracts import Options, PromptSource
from hegelion_core.errors import InputError
from hegelion_core.jsonl import read_jsonl
from hegelion_core.prompt_sources import NoPromptColumn, extract_prompt
from hegelion_core.records import Prompt


class FilePromptSource(PromptSource):
    name = "file"

    class Options(Options):
        path: Path
        column: str | None = None  # JSONL only; found automatically when omitted
        format: Literal["auto", "txt", "jsonl"] = "auto"
        limit: int | None = None

    def iter_prompts(self) -> Iterator[Prompt]:
        opts = self.options
        fmt = opts.format
        if fmt == "auto":
            fmt = "jsonl" if opts.path.suffix.lower() in (".jsonl", ".json", ".ndjson") else "txt"
        prompts = self._jsonl() if fmt == "jsonl" else self._txt()
        for count, prompt in enumerate(prompts):
            if opts.limit is not None and count >= opts.limit:
                return
            yield prompt

    def _txt(self) -> Iterator[Prompt]:
        path = self.options.path
        if not path.is_file():
            raise InputError(path, None, "prompt file not found")
        with path.open(encoding="utf-8") as fp:
            for lineno, line in enumerate(fp, 1):
                if line.strip():
                    yield Prompt(text=line.strip(), source=f"{path.name}:{lineno}")

    def _jsonl(self) -> Iterator[Prompt]:
        path = self.options.path
        for lineno, row in read_jsonl(path):
            try:
                text = extract_prompt(row, self.options.column)
            except NoPromptColumn as exc:
                raise InputError(path, lineno, str(exc), field=self.options.column) from None
            if text.strip():
                yield Prompt(text=text.strip(), source=f"{path.name}:{lineno}")
