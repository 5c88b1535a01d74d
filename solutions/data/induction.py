"""Sequences for the induction-head task (Olsson et al. 2022, arXiv:2209.11895): a random segment, then
the same segment again, so that every token of the repeat can be predicted by looking up the token that
followed its first occurrence ("[A][B] ... [A] → [B]").

One sequence of length T:

    a_0 a_1 ... a_{n-1}   a_0 a_1 ... a_{n-1}   f_1 ... f_{T-2n}
    ─── the segment ───   ──── its repeat ───   ─── filler ────

The n segment tokens are drawn *without replacement*, so each has a single earlier occurrence; the segment
length n varies from one sequence to the next, so the distance between a token and its earlier occurrence is
not a constant that position embeddings could learn. The fillers are random tokens and carry no loss.
The targets are the next tokens; the loss mask keeps the positions n, ..., 2n − 2 of the repeat, whose next
token is decided by the first occurrence (a_{i} → a_{i+1}). Position 2n − 1 predicts the first filler, which is
random, and the positions of the segment predict tokens never seen before.

Shape letters: N sequences, T positions.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple

import torch
from ..seeding import or_default

__all__ = ["InductionData", "make_induction_data"]


class InductionData(NamedTuple):
    """Sequences for the induction task; ``data[i:j]`` style slicing through :meth:`subset`."""

    tokens: torch.Tensor   # (N, T) int64 token ids in [0, V)
    targets: torch.Tensor  # (N, T) int64: tokens shifted left by one (the last target is 0, never scored)
    scored: torch.Tensor   # (N, T) bool: True where the next token follows from an earlier occurrence
    segment: torch.Tensor  # (N,) int64: the segment length n of each sequence

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def subset(self, index) -> InductionData:
        """The sequences at ``index`` (a slice, a list or a tensor of indices)."""
        return InductionData(*(x[index] for x in self))

    def to(self, device: torch.device | str) -> InductionData:
        return InductionData(*(x.to(device) for x in self))

    def batches(self, batch_size: int, seed: int | None = None) -> Iterator[InductionData]:
        """Batches in order, or shuffled by ``seed`` (e.g. the epoch number)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        order = torch.arange(len(self)) if seed is None else \
            torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        for start in range(0, len(self), batch_size):
            yield self.subset(order[start:start + batch_size].to(self.tokens.device))


def make_induction_data(num_sequences: int, vocab_size: int = 24, length: int = 24,
                        segment: tuple[int, int] = (5, 12), seed: int | None = None) -> InductionData:
    """``num_sequences`` sequences "segment, repeat, filler" of ``length`` tokens from a vocabulary of ``vocab_size``.

    The segment length n is uniform in ``segment = (n_min, n_max)`` (inclusive); the segment's tokens are
    distinct. Deterministic given ``seed`` (a local generator; the global random state is untouched).
    """
    n_min, n_max = segment
    if not 2 <= n_min <= n_max:
        raise ValueError(f"segment lengths must satisfy 2 <= n_min <= n_max, got {segment}")
    if 2 * n_max > length:
        raise ValueError(f"a segment of {n_max} tokens and its repeat need {2 * n_max} positions, "
                         f"but sequences have {length}")
    if n_max > vocab_size:
        raise ValueError(f"a segment of {n_max} distinct tokens needs a vocabulary of at least {n_max}, "
                         f"got {vocab_size}")
    if num_sequences < 0:
        raise ValueError(f"num_sequences must be >= 0, got {num_sequences}")
    gen = torch.Generator().manual_seed(or_default(seed))
    n = torch.randint(n_min, n_max + 1, (num_sequences,), generator=gen)  # (N,)
    distinct = torch.rand(num_sequences, vocab_size, generator=gen).argsort(dim=-1)  # (N, V): random permutations
    tokens = torch.randint(0, vocab_size, (num_sequences, length), generator=gen)  # (N, T): fillers everywhere
    position = torch.arange(length)  # (T,)
    first = position < n[:, None]  # (N, T): the segment
    second = (position >= n[:, None]) & (position < 2 * n[:, None])  # (N, T): its repeat
    offset = torch.where(second, position - n[:, None], position).clamp(max=vocab_size - 1)  # (N, T)
    copied = distinct.gather(1, offset)  # (N, T): a_{t} in the segment, a_{t-n} in the repeat
    tokens = torch.where(first | second, copied, tokens)  # (N, T)
    targets = torch.cat([tokens[:, 1:], torch.zeros(num_sequences, 1, dtype=torch.long)], dim=1)  # (N, T)
    scored = (position >= n[:, None]) & (position <= 2 * n[:, None] - 2)  # (N, T): positions n .. 2n-2
    return InductionData(tokens, targets, scored, n)
