"""Decontamination: no training prompt may share an n-gram with a held-out prompt.

Held-out prompts come from text files (one per line) or JSONL files (a prompt,
instruction or question column), read by the ``file`` prompt source. Text is compared
as lower-cased word tokens (``\\w+``, NFKC; punctuation and spacing ignored), so a
reformatted copy of an eval question still matches.

A held-out prompt of at least ``n`` tokens contributes its n-grams (13 by default, as
the reasoning-distillation projects use). A shorter one (most eval questions are) would
have none, so it contributes its whole token sequence as one gram: a training prompt
that contains those tokens in that order is contaminated. A training prompt shorter
than ``n`` tokens is still checked against those whole short prompts, but not against
pieces of longer ones.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from hegelion_core.data.curate.filters import Drop, Filter, Row
from hegelion_core.data.prompt_sources.file import FilePromptSource
from hegelion_core.errors import InputError

_TOKEN = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return _TOKEN.findall(text.lower())


def _grams(toks: list[str], size: int) -> zip:
    return zip(*(toks[i:] for i in range(size)))


class ContaminationFilter(Filter):
    """Drops a row whose prompt overlaps a held-out prompt (see the module's docstring)."""

    name = "decontaminate"

    def __init__(self, files: list[Path], n: int = 13) -> None:
        self.n = n
        # hash of a gram -> the held-out prompt it came from ("evals.txt:3"). Python's
        # hash of a tuple of str: one run only, which is all a membership test needs.
        self.grams: dict[int, str] = {}
        sizes: set[int] = set()  # gram lengths in the index: n and the short prompts'
        held: list[tuple[list[str], int]] = []  # each held-out prompt's tokens, gram size
        self.prompts = 0
        for path in files:
            if not Path(path).is_file():
                raise InputError(
                    path,
                    None,
                    "held-out prompt file not found",
                    hint="--decontaminate takes .txt (a prompt a line) or .jsonl files",
                )
            before = self.prompts
            for prompt in FilePromptSource(path=path).iter_prompts():
                toks = tokens(prompt.text)
                if not toks:
                    continue
                self.prompts += 1
                size = min(n, len(toks))
                sizes.add(size)
                held.append((toks, size))
                where = f"{path}:{(prompt.source or '').rpartition(':')[2]}"
                for gram in _grams(toks, size):
                    self.grams.setdefault(hash(gram), where)
            if self.prompts == before:
                raise InputError(
                    path,
                    None,
                    "no held-out prompts in this file",
                    hint="one prompt a line (.txt), or rows with a prompt, "
                    "instruction or question column (.jsonl)",
                )
        self.sizes = sorted(sizes, reverse=True)
        # Every gram's first `shortest` tokens: a prompt with none of them among its
        # `shortest`-grams contains no gram, which one pass over it shows.
        self.shortest = min(sizes, default=0)
        self.prefixes = {
            hash(gram[: self.shortest]) for toks, size in held for gram in _grams(toks, size)
        }

    def check(self, row: Row) -> Drop | None:
        toks = tokens(row.record.prompt)
        if len(toks) < self.shortest or self.prefixes.isdisjoint(
            map(hash, _grams(toks, self.shortest))
        ):  # nearly every row: one C-level pass
            return None
        sizes = [size for size in self.sizes if size <= len(toks)]
        for size in sizes:
            for gram in _grams(toks, size):
                if (where := self.grams.get(hash(gram))) is not None:
                    return Drop(
                        "overlaps a held-out prompt",
                        f"{size}-gram {' '.join(gram)!r} of the held-out prompt at {where}",
                    )
        return None
