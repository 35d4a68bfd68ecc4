"""Exact and near-duplicate prompts and syntheses, with MinHash LSH (datasketch).

Text is compared as its lower-cased words (NFKC, split on whitespace, punctuation kept
on the words, so "2+3" and "2-3" stay different). Two rows are exact duplicates when
those words are the same, and near duplicates when the Jaccard similarity of their
sets of word ``shingle``-grams reaches ``threshold``. The first row of a group is kept:
inputs are read in the order given, so an earlier file wins.

MinHash LSH only proposes candidates: those whose MinHash estimate reaches the
threshold are then checked against the stored shingle sets, so a row is dropped only
when its similarity really reaches the threshold (the estimate's noise, about ±0.06 at
64 permutations, can still miss a pair just above it). Speed: words become small ints
(in order of first appearance, so every run gives the same result), a shingle's hash is
Python's tuple hash of those ints, and `datasketch.MinHash` permutes a text's shingles in
one numpy batch.
"""

from __future__ import annotations

import hashlib
import itertools
import unicodedata
from array import array
from collections import defaultdict

import numpy as np
from datasketch import MinHash, MinHashLSH

from hegelion_core.curate.filters import Drop, Filter, Row


def words(text: str) -> list[str]:
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return text.lower().split()


def exact_key(tokens: list[str]) -> bytes:
    return hashlib.blake2b(" ".join(tokens).encode(), digest_size=16).digest()


def _uint32(hashes: list[int]) -> np.ndarray:
    """Shingle hashes as the MinHash saw them (their low 32 bits), stored compactly."""
    return np.array(hashes, dtype=np.int64).astype(np.uint32)


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.unique(a), np.unique(b)
    common = np.intersect1d(a, b, assume_unique=True).size
    return common / (a.size + b.size - common)


class _NearIndex:
    """The kept texts of one field: MinHash signatures behind an LSH, and shingle sets."""

    def __init__(self, threshold: float, shingle: int, num_perm: int,
                 vocab: defaultdict[str, int]) -> None:
        self.threshold, self.shingle, self.num_perm, self.vocab = threshold, shingle, num_perm, vocab
        # Recall over precision (weights 0.2/0.8): every candidate is checked anyway.
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.2, 0.8))
        # Reused (cleared per text); its input must be 32-bit: a C-level mask per shingle.
        self.minhash = MinHash(num_perm=num_perm, hashfunc=(0xFFFFFFFF).__and__)
        self.signatures = np.empty((1024, num_perm), dtype=self.minhash.hashvalues.dtype)
        self.shingles = bytearray()  # each kept text's uint32 shingle hashes
        self.offsets = array("Q", [0])
        self.size = 0

    def nearest(self, tokens: list[str]) -> tuple[int, float, list[int]]:
        """The kept slot whose text is at least ``threshold`` similar (-1: none), that
        similarity, and this text's shingle set for `add`. Leaves ``self.minhash`` on
        this text, for `add`."""
        ids = list(map(self.vocab.__getitem__, tokens))
        n = self.shingle
        if len(ids) >= n:
            hashes = list(map(hash, zip(*(ids[i:] for i in range(n)))))
        else:
            hashes = [hash(tuple(ids))]  # shorter than a shingle: the whole text is one
        minhash = self.minhash
        minhash.clear()
        minhash.update_batch(hashes)
        candidates = self.lsh.query(minhash)
        if not candidates:
            return -1, 0.0, hashes
        mine = _uint32(hashes)
        slots = np.fromiter(candidates, dtype=np.int64, count=len(candidates))
        agree = np.count_nonzero(self.signatures[slots] == minhash.hashvalues, axis=1)
        for i in np.argsort(-agree, kind="stable"):
            if agree[i] < self.threshold * self.num_perm:
                break
            slot = int(slots[i])
            start, end = self.offsets[slot], self.offsets[slot + 1]
            theirs = np.frombuffer(self.shingles, dtype=np.uint32, count=(end - start) // 4,
                                   offset=start)
            similarity = _jaccard(mine, theirs)
            if similarity >= self.threshold:
                return slot, similarity, hashes
        return -1, 0.0, hashes

    def add(self, hashes: list[int]) -> int:
        """Keep the text `nearest` was last asked about; returns its slot."""
        slot = self.size
        if slot == len(self.signatures):
            self.signatures = np.concatenate([self.signatures, np.empty_like(self.signatures)])
        self.signatures[slot] = self.minhash.hashvalues
        self.lsh.insert(slot, self.minhash, check_duplication=False)
        self.shingles += _uint32(hashes).tobytes()
        self.offsets.append(len(self.shingles))
        self.size += 1
        return slot


class DuplicateFilter(Filter):
    """Drops a row whose prompt or synthesis duplicates (or nearly) a kept row's."""

    name = "duplicates"
    FIELDS = ("prompt", "synthesis")

    def __init__(self, threshold: float = 0.8, shingle: int = 3, num_perm: int = 64) -> None:
        self.exact: dict[str, dict[bytes, int]] = {f: {} for f in self.FIELDS}
        self.near: dict[str, _NearIndex] = {}
        if threshold < 1:
            vocab: defaultdict[str, int] = defaultdict(itertools.count().__next__)
            self.near = {f: _NearIndex(threshold, shingle, num_perm, vocab) for f in self.FIELDS}
        self.kept: list[str] = []  # where each kept row came from, for the examples

    def check(self, row: Row) -> Drop | None:
        record = row.record
        texts = {"prompt": words(record.prompt), "synthesis": words(record.hegelion_trace.synthesis)}
        keys = {}
        for field, tokens in texts.items():  # exact first: cheap, and the clearer reason
            keys[field] = key = exact_key(tokens)
            if (match := self.exact[field].get(key)) is not None:
                return Drop(f"exact duplicate {field}", f"same {field} as {self.kept[match]}")
        shingles = {}
        for field, index in self.near.items():
            slot, similarity, shingles[field] = index.nearest(texts[field])
            if slot >= 0:
                return Drop(f"near-duplicate {field}",
                            f"{field} {similarity:.2f} similar to {self.kept[slot]}")
        for field, index in self.near.items():
            index.add(shingles[field])
        for field, key in keys.items():
            self.exact[field][key] = len(self.kept)
        self.kept.append(row.where)
        return None
