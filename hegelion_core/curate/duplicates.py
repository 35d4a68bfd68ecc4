"""Exact and near-duplicate prompts and syntheses, with MinHash LSH (datasketch).

Text is compared as its lower-cased words (NFKC, split on whitespace, punctuation kept
on the words, so "2+3" and "2-3" stay different). Two rows are exact duplicates when
those words are the same, and near duplicates when the estimated Jaccard similarity
of their word ``shingle``-grams reaches ``threshold``. The first row of a group is
kept: inputs are read in the order given, so an earlier file wins.

Speed: words become small ints (their order of first appearance, so the result is
the same on every run), a shingle's hash is Python's tuple hash of those ints, and
`datasketch.MinHash` permutes them in one numpy batch per text. LSH candidates are
confirmed against the stored signatures, so a candidate below the threshold is kept.
"""

from __future__ import annotations

import hashlib
import itertools
import unicodedata
from collections import defaultdict

import numpy as np
from datasketch import MinHash, MinHashLSH

from hegelion_core.curate.filters import Drop, Filter, Row

#: the MinHash's input must be 32-bit: a C-level mask, called once per shingle
_MASK32 = (0xFFFFFFFF).__and__


def words(text: str) -> list[str]:
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return text.lower().split()


class _Index:
    """Kept texts of one field: exact keys, and MinHash signatures behind an LSH."""

    def __init__(self, field: str, threshold: float, shingle: int, num_perm: int,
                 vocab: defaultdict[str, int]) -> None:
        self.field = field
        self.exact: dict[bytes, int] = {}  # digest of the words -> kept row number
        self.near = threshold < 1
        self.threshold, self.shingle, self.num_perm, self.vocab = threshold, shingle, num_perm, vocab
        if self.near:
            # Recall over precision (weights 0.2/0.8): every candidate is checked below.
            self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.2, 0.8))
            self.template = MinHash(num_perm=num_perm, hashfunc=_MASK32)
            self.signatures = bytearray()
            self.sig_rows: list[int] = []

    @staticmethod
    def key(tokens: list[str]) -> bytes:
        return hashlib.blake2b(" ".join(tokens).encode(), digest_size=16).digest()

    def nearest(self, tokens: list[str]) -> tuple[int, float, MinHash]:
        """The kept row most similar to ``tokens`` at or above the threshold (-1: none),
        its estimated similarity, and this text's MinHash for `add`."""
        ids = list(map(self.vocab.__getitem__, tokens))
        n = self.shingle
        if len(ids) >= n:
            shingles = list(map(hash, zip(*(ids[i:] for i in range(n)))))
        else:
            shingles = [hash(tuple(ids))]  # shorter than a shingle: the whole text is one
        minhash = self.template.copy()
        minhash.update_batch(shingles)
        best, best_sim = -1, 0.0
        values = minhash.hashvalues
        for slot in self.lsh.query(minhash):
            stored = np.frombuffer(self.signatures, dtype=values.dtype, count=self.num_perm,
                                   offset=slot * values.nbytes)
            sim = np.count_nonzero(stored == values) / self.num_perm
            if sim >= self.threshold and sim > best_sim:
                best, best_sim = slot, float(sim)
        return (self.sig_rows[best] if best >= 0 else -1), best_sim, minhash

    def add(self, key: bytes, minhash: MinHash | None, row: int) -> None:
        self.exact[key] = row
        if minhash is not None:
            slot = len(self.sig_rows)
            self.lsh.insert(slot, minhash, check_duplication=False)
            self.signatures += minhash.hashvalues.tobytes()
            self.sig_rows.append(row)


class DuplicateFilter(Filter):
    """Drops a row whose prompt or synthesis duplicates (or nearly) a kept row's."""

    name = "duplicates"

    def __init__(self, threshold: float = 0.8, shingle: int = 3, num_perm: int = 64) -> None:
        vocab: defaultdict[str, int] = defaultdict(itertools.count().__next__)
        self.indexes = {f: _Index(f, threshold, shingle, num_perm, vocab)
                        for f in ("prompt", "synthesis")}
        self.kept: list[str] = []  # where each kept row came from, for the examples

    def check(self, row: Row) -> Drop | None:
        record = row.record
        texts = {"prompt": words(record.prompt), "synthesis": words(record.hegelion_trace.synthesis)}
        keys = {}
        for field, tokens in texts.items():  # exact first: cheap, and the clearer reason
            keys[field] = key = _Index.key(tokens)
            if (match := self.indexes[field].exact.get(key)) is not None:
                return Drop(f"exact duplicate {field}", f"same {field} as {self.kept[match]}")
        minhashes: dict[str, MinHash] = {}
        for field, tokens in texts.items():
            index = self.indexes[field]
            if not index.near:
                continue
            match, sim, minhashes[field] = index.nearest(tokens)
            if match >= 0:
                return Drop(f"near-duplicate {field}",
                            f"{field} ~{sim:.2f} similar to {self.kept[match]}")
        for field, key in keys.items():
            self.indexes[field].add(key, minhashes.get(field), len(self.kept))
        self.kept.append(row.where)
        return None
