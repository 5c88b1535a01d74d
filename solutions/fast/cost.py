"""What attention costs: arithmetic, the size of the score matrix, and the traffic to main memory.

For one head with T queries, Tk keys and head size d, the two matrix products Q Kᵀ and P V take
2·T·Tk·d multiply-adds each, 4·T·Tk·d FLOPs in all, and the softmax touches each of the T·Tk scores a few
times. The standard implementation (Dao et al. 2022, arXiv:2205.14135, Algorithm 0) writes S = Q Kᵀ to
main memory, reads it back for the softmax, writes P, and reads P again to multiply by V:

    standard:  4·N·d + 4·N²  elements read or written (Θ(N d + N²), Theorem 2),     N = T = Tk

FlashAttention (Algorithm 1) keeps blocks of B_c = ⌈M / 4d⌉ keys and B_r = min(B_c, d) queries in an
on-chip memory of M elements: K and V are read once; Q, O and the statistics (ℓ, m) are read, and O, ℓ, m
written, once per block of keys:

    flash:  2·N·d + ⌈N / B_c⌉ · (3·N·d + 4·N)  elements   (Θ(N² d² / M), Theorem 2)
"""
from __future__ import annotations

import math
from typing import NamedTuple

__all__ = ["AttentionCost", "attention_cost", "standard_hbm_accesses", "flash_hbm_accesses"]


class AttentionCost(NamedTuple):
    flops: int          # 4·B·H·T·Tk·d, the two matrix products of the forward pass
    score_elements: int  # B·H·T·Tk, the size of S (and again of P)
    score_bytes: int    # score_elements at the given element size


def attention_cost(T: int, d: int, heads: int = 1, batch: int = 1, keys: int | None = None,
                   bytes_per_element: int = 4) -> AttentionCost:
    """FLOPs of Q Kᵀ and P V, and the size of the score matrix, for (B, H, T, d) queries against Tk keys."""
    keys = T if keys is None else keys
    _positive(T=T, d=d, heads=heads, batch=batch, keys=keys, bytes_per_element=bytes_per_element)
    elements = batch * heads * T * keys
    return AttentionCost(4 * elements * d, elements, elements * bytes_per_element)


def standard_hbm_accesses(N: int, d: int) -> int:
    """Elements read or written by the standard implementation (Dao et al. 2022, Algorithm 0), one head."""
    _positive(N=N, d=d)
    return 4 * N * d + 4 * N * N


def flash_hbm_accesses(N: int, d: int, sram: int) -> int:
    """Elements read or written by FlashAttention's forward (Dao et al. 2022, Algorithm 1), one head,
    with an on-chip memory of ``sram`` elements (M)."""
    _positive(N=N, d=d, sram=sram)
    if sram < 4 * d:  # one row each of Q, K, V and O
        raise ValueError(f"an on-chip memory of {sram} elements cannot hold a block of head size {d} "
                         f"(it needs at least 4·d = {4 * d})")
    block_keys = math.ceil(sram / (4 * d))  # B_c
    return 2 * N * d + math.ceil(N / block_keys) * (3 * N * d + 4 * N)


def _positive(**sizes: int) -> None:
    for name, size in sizes.items():
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"{name} must be a positive integer, got {size!r}")
