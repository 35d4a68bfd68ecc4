"""Exact and near-duplicate prompts and syntheses, with MinHash LSH (rensa).

Text is compared as its lower-cased words (NFKC, split on whitespace, punctuation kept
on the words, so "2+3" and "2-3" stay different). Two rows are exact duplicates when
those words are the same, and near duplicates when the Jaccard similarity of their
sets of word ``shingle``-grams reaches ``threshold``. The first row of a group is kept:
inputs are read in the order given, so an earlier file wins.

MinHash LSH only proposes candidates: those whose MinHash estimate reaches the
threshold are then checked against the kept text's real shingle set, so a row is
dropped only when its similarity really reaches the threshold (the estimate's noise,
about ±0.06 at 64 permutations, can still miss a pair just above it). Speed: a
shingle is its words joined by a space (words hold no whitespace, so that is
one-to-one), and rensa hashes and permutes a text's shingles in one Rust call, with a
fixed seed, so every run gives the same result.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence

from rensa import RMinHash, RMinHashLSH

from hegelion_core.data.curate.filters import Drop, Filter, Row

SEED = 42  # rensa's MinHash permutations: fixed, so every run proposes the same candidates


def words(text: str) -> list[str]:
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return text.lower().split()


def exact_key(text: str) -> bytes:
    """``text``: the words joined by single spaces."""
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def shingles(tokens: list[str], n: int) -> list[str]:
    """The text's ``n``-word shingles; a text shorter than ``n`` words is one shingle."""
    if len(tokens) < n:
        return [" ".join(tokens)]
    return list(map(" ".join, zip(*(tokens[i:] for i in range(n)))))


def bands(threshold: float, num_perm: int) -> int:
    """The LSH's number of bands (a divisor of ``num_perm``, as rensa needs): the one
    that minimises 0.2 x false-positive + 0.8 x false-negative probability mass, the
    weights that favour recall, since every candidate is checked anyway."""

    def cost(b: int) -> float:
        r = num_perm // b
        steps = 200
        fp = sum(1 - (1 - (threshold * i / steps) ** r) ** b for i in range(steps)) / steps
        fn = (
            sum((1 - (threshold + (1 - threshold) * i / steps) ** r) ** b for i in range(steps))
            / steps
        )
        return 0.2 * fp * threshold + 0.8 * fn * (1 - threshold)

    return min((b for b in range(1, num_perm + 1) if num_perm % b == 0), key=cost)


class _NearIndex:
    """The kept texts of one field: their MinHashes behind an LSH, and the texts."""

    def __init__(self, threshold: float, shingle: int, num_perm: int) -> None:
        self.threshold, self.shingle, self.num_perm = threshold, shingle, num_perm
        self.lsh = RMinHashLSH(threshold, num_perm, bands(threshold, num_perm))
        self.minhashes: list[RMinHash] = []  # by slot, for the candidates' estimates
        self.texts: list[str] = []  # by slot: each kept text's words, space-joined
        self.minhash = RMinHash(num_perm, SEED)  # the text `nearest` last saw, for `add`
        self.size = 0

    def nearest(self, tokens: list[str]) -> tuple[int, float]:
        """The kept slot whose text is at least ``threshold`` similar (-1: none) and that
        similarity. Leaves ``self.minhash`` on this text, for `add`."""
        mine = shingles(tokens, self.shingle)
        self.minhash = minhash = RMinHash(self.num_perm, SEED)
        minhash.update(mine)
        candidates = self.lsh.query(minhash)
        if not candidates:
            return -1, 0.0
        # A template's rows propose hundreds of candidates, nearly all below the threshold:
        # their estimates in one C-level pass, and only those that reach it looked at.
        estimates = list(map(minhash.jaccard, map(self.minhashes.__getitem__, candidates)))
        if max(estimates) < self.threshold:
            return -1, 0.0
        close = sorted(
            (-estimate, slot)
            for slot, estimate in zip(candidates, estimates)
            if estimate >= self.threshold
        )  # most similar first; ties: earliest
        mine_set: set[str] | None = None
        for _, slot in close:
            mine_set = mine_set or set(mine)
            theirs = set(shingles(self.texts[slot].split(" "), self.shingle))
            common = len(mine_set & theirs)
            similarity = common / (len(mine_set) + len(theirs) - common)
            if similarity >= self.threshold:
                return slot, similarity
        return -1, 0.0

    def add(self, text: str) -> int:
        """Keep the text `nearest` was last asked about (``text``: its words, space-joined);
        returns its slot."""
        slot = self.size
        self.lsh.insert(slot, self.minhash)
        self.minhashes.append(self.minhash)
        self.texts.append(text)
        self.size += 1
        return slot


class DuplicateFilter(Filter):
    """Drops a row whose prompt or synthesis duplicates (or nearly) a kept row's."""

    name = "duplicates"
    FIELDS = ("prompt", "synthesis")

    def __init__(self, threshold: float = 0.8, shingle: int = 3, num_perm: int = 64) -> None:
        self.exact: dict[str, dict[str | bytes, int]] = {f: {} for f in self.FIELDS}
        self.near: dict[str, _NearIndex] = {}
        if threshold < 1:
            self.near = {f: _NearIndex(threshold, shingle, num_perm) for f in self.FIELDS}
        self.kept: list[str] = []  # where each kept row came from, for the examples

    def check(self, row: Row) -> Drop | None:
        record = row.record
        tokens = (words(record.prompt), words(record.hegelion_trace.synthesis))
        joined = [" ".join(t) for t in tokens]
        # The near indexes keep the texts anyway, so a text is its own exact key there (no
        # digest to compute, no collision possible); without them a digest takes less room.
        keys: Sequence[str | bytes] = joined if self.near else list(map(exact_key, joined))
        for field, key in zip(self.FIELDS, keys):  # exact first: cheap, and the clearer reason
            if (match := self.exact[field].get(key)) is not None:
                return Drop(f"exact duplicate {field}", f"same {field} as {self.kept[match]}")
        if self.near:
            for field, toks in zip(self.FIELDS, tokens):
                slot, similarity = self.near[field].nearest(toks)
                if slot >= 0:
                    return Drop(
                        f"near-duplicate {field}",
                        f"{field} {similarity:.2f} similar to {self.kept[slot]}",
                    )
            for field, text in zip(self.FIELDS, joined):
                self.near[field].add(text)
        for field, key in zip(self.FIELDS, keys):
            self.exact[field][key] = len(self.kept)
        self.kept.append(row.where)
        return None
