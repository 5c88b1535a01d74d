"""Symmetrization: combine the links of two one-directional aligners into one alignment.

Each model aligns in one direction only (every target word to one source word). Training in both
directions and combining the two link sets — intersection, union (Och & Ney 2003, Section 4), and
the grow-diag(-final) heuristics (Koehn, Och & Marcu 2003, HLT-NAACL, Section 4.5, their "diag"
and "diag-and" heuristics) — is *symmetrization*. Links are (source index, target index), 0-based, as in
:class:`solutions.data.Pair`, so they can be scored with :mod:`solutions.metrics`.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from ..data import Link


# ------------------------------------------------------------------------- symmetrization
def alignment_to_links(alignment: Sequence[int], reverse: bool = False) -> set[Link]:
    """Links {(source index, target index)} of an alignment vector (a_j = −1: the empty word, no link).

    For a model trained with ``reverse`` (generating the pairs' source side), a_j is a target index
    for source word j, and the link is flipped back to (source, target).
    """
    links = {(i, j) for j, i in enumerate(alignment) if i >= 0}
    return {(j, i) for i, j in links} if reverse else links


SYMMETRIZATIONS = ("intersection", "union", "grow-diag", "grow-diag-final", "grow-diag-final-and")
_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def _check_links(links: Iterable[Link], source_len: int, target_len: int, name: str) -> set[Link]:
    links = set(links)
    for i, j in links:
        if not (0 <= i < source_len and 0 <= j < target_len):
            raise ValueError(f"{name} link {(i, j)} is outside {source_len} source x {target_len} target tokens")
    return links


def symmetrize(forward: Iterable[Link], backward: Iterable[Link], source_len: int, target_len: int,
               method: str = "grow-diag-final") -> set[Link]:
    """Combine the links of the two directions into one alignment.

    * ``intersection`` / ``union``: A1 ∩ A2 (precise) and A1 ∪ A2 (complete), Och & Ney (2003), Section 4.
    * ``grow-diag``: start from the intersection and repeatedly add a union link next to an alignment
      link (horizontally, vertically or diagonally) when its source or its target word is still
      unaligned — the expansion stage of the "diag" heuristic of Koehn et al. (2003), Section 4.5.
    * ``grow-diag-final``: then add the remaining links of ``forward``, then of ``backward``, whose
      source or target word is unaligned (the whole "diag" heuristic); ``grow-diag-final-and``
      requires both to be unaligned (Koehn et al.'s "diag-and").

    Links are (source index, target index); sweeps go over source positions, then target positions.
    """
    if method not in SYMMETRIZATIONS:
        raise ValueError(f"unknown symmetrization {method!r}; expected one of {SYMMETRIZATIONS}")
    a1 = _check_links(forward, source_len, target_len, "forward")
    a2 = _check_links(backward, source_len, target_len, "backward")
    if method == "intersection":
        return a1 & a2
    union = a1 | a2
    if method == "union":
        return union
    alignment = a1 & a2
    src_aligned = {i for i, _ in alignment}
    tgt_aligned = {j for _, j in alignment}

    def add(i: int, j: int) -> None:
        alignment.add((i, j))
        src_aligned.add(i)
        tgt_aligned.add(j)

    grew = True
    while grew:  # grow-diag
        grew = False
        for i in range(source_len):
            for j in range(target_len):
                if (i, j) not in alignment:
                    continue
                for di, dj in _NEIGHBOURS:
                    n = (i + di, j + dj)
                    if n in union and n not in alignment and (n[0] not in src_aligned or n[1] not in tgt_aligned):
                        add(*n)
                        grew = True
    if method == "grow-diag":
        return alignment
    both = method == "grow-diag-final-and"
    for directional in (a1, a2):  # final(-and)
        for i in range(source_len):
            for j in range(target_len):
                if (i, j) in directional and (i, j) not in alignment:
                    free_i, free_j = i not in src_aligned, j not in tgt_aligned
                    if (free_i and free_j) if both else (free_i or free_j):
                        add(i, j)
    return alignment
