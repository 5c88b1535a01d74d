"""The online softmax: a softmax's normaliser in one pass over the scores, block by block.

Milakov & Gimelshein 2018 (arXiv:1805.02867), Algorithm 3, with a block of scores in place of one:

    m_j = max(m_{j−1}, max x_block)                         running maximum
    d_j = d_{j−1} · e^{m_{j−1} − m_j} + Σ_block e^{x − m_j}   running sum, rescaled when the maximum moves
    softmax(x)_i = e^{x_i − m_V} / d_V                        after the last block V

Two partial statistics (m_a, d_a) and (m_b, d_b) of disjoint blocks merge into those of their union,

    m = max(m_a, m_b),    d = d_a · e^{m_a − m} + d_b · e^{m_b − m},                      (merge)

in any order and any grouping, which is what lets memory-efficient attention (:mod:`.chunked`) visit the
keys chunk by chunk, and a GPU kernel split them over thread blocks.

−∞ scores are removed keys. A row with every score −∞ has m = −∞ and d = 0, and its softmax is all
zeros, the course's convention for a query that attends to nothing (``torch.softmax`` gives NaN there).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["SoftmaxStats", "block_stats", "merge_stats", "online_softmax", "finite_or_zero"]


class SoftmaxStats(NamedTuple):
    """The running statistics of an online softmax, each (...,): the maximum m and the sum d of e^{x − m}."""
    maximum: torch.Tensor
    total: torch.Tensor


def finite_or_zero(maximum: torch.Tensor) -> torch.Tensor:
    """The maximum where it is finite, 0 where it is −∞ (a row with nothing in it): safe to subtract."""
    return torch.where(torch.isneginf(maximum), torch.zeros_like(maximum), maximum)


def block_stats(scores: torch.Tensor, dim: int = -1) -> SoftmaxStats:
    """(m, d) of one block: its maximum and Σ e^{x − m} along ``dim``."""
    maximum = scores.amax(dim)  # (...,)
    total = torch.exp(scores - finite_or_zero(maximum).unsqueeze(dim)).sum(dim)  # (...,)
    return SoftmaxStats(maximum, total)


def merge_stats(a: SoftmaxStats, b: SoftmaxStats) -> SoftmaxStats:
    """(m, d) of the union of two disjoint blocks: eq. (merge) above."""
    maximum = torch.maximum(a.maximum, b.maximum)  # (...,)
    shift = finite_or_zero(maximum)
    total = a.total * torch.exp(a.maximum - shift) + b.total * torch.exp(b.maximum - shift)  # (...,)
    return SoftmaxStats(maximum, total)


def online_softmax(scores: torch.Tensor, dim: int = -1, block_size: int = 128) -> torch.Tensor:
    """softmax(scores) along ``dim``, its normaliser gathered in one pass over blocks of ``block_size``.

    Milakov & Gimelshein 2018, Algorithm 3 (arXiv:1805.02867). Equal to ``torch.softmax`` wherever a row
    has a finite score; a row of −∞ gives zeros.
    """
    _check_block_size(block_size)
    dim = dim % scores.dim() if scores.dim() else 0
    stats = None
    for block in scores.split(block_size, dim):  # the one pass: (..., ≤ block_size, ...) each
        here = block_stats(block, dim)
        stats = here if stats is None else merge_stats(stats, here)
    if stats is None:  # an empty dimension: nothing to normalise
        return scores.clone()
    maximum = finite_or_zero(stats.maximum).unsqueeze(dim)
    total = stats.total.unsqueeze(dim)
    return torch.exp(scores - maximum) / torch.where(total > 0, total, torch.ones_like(total))


def _check_block_size(block_size: int) -> None:
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
