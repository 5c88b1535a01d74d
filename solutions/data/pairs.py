"""Sentence pairs with gold word alignments, the unit every data generator of the course produces.

Gold links follow Och & Ney (2003): *sure* links S and *possible* links P ⊇ S, given as
(source index, target index), 0-based over the tokens without BOS/EOS.
"""
from __future__ import annotations

from dataclasses import dataclass

Link = tuple[int, int]


@dataclass(frozen=True)
class Pair:
    """One source/target example with gold sure links ``alignment`` ⊆ ``possible`` links."""

    source: tuple[str, ...]
    target: tuple[str, ...]
    alignment: frozenset[Link]
    possible: frozenset[Link]
    source_text: str
    target_text: str

    def __post_init__(self) -> None:
        for i, j in self.possible:
            if not (0 <= i < len(self.source) and 0 <= j < len(self.target)):
                raise ValueError(f"link {(i, j)} out of range for {len(self.source)} source and "
                                 f"{len(self.target)} target tokens")
        if not self.alignment <= self.possible:
            raise ValueError(f"sure links {sorted(self.alignment - self.possible)} are not possible links")


def collect_pairs(n: int, draw, unique: bool) -> list[Pair]:
    """``n`` pairs from ``draw()``; with ``unique``, a pair whose source was drawn before is drawn again."""
    pairs, seen = [], set()
    while len(pairs) < n:
        pair = draw()
        if unique:
            if pair.source in seen:
                continue
            seen.add(pair.source)
        pairs.append(pair)
    return pairs


def check_count(n: int) -> None:
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
