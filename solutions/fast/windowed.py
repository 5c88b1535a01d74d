"""Sliding-window (banded) self-attention, in time and memory O(T · w) instead of O(T²).

Longformer (Beltagy et al. 2020, arXiv:2004.05150, Section 3.1): each position attends only to the
positions within a fixed window around it, and a few *global* positions attend to everything and are
attended to by everything:

    α_ij ∝ exp(q_i · k_j / √d)   for |i − j| ≤ w, or i or j global,      0 otherwise,

(causal: 0 ≤ i − j ≤ w). Here w is the reach on each side, as D in Luong's local attention (chapter 5):
a query sees at most 2w + 1 neighbours. The band is computed without a (T, T) matrix: the sequence is cut
into blocks of w positions, and block b's queries score only the keys of blocks b − 1, b and b + 1, which
hold every key within reach — (T/w) blocks of (w, 3w) scores, 3·T·w in all. The weights then go through
the course's :func:`~solutions.attention.masking.masked_softmax` and
:func:`~solutions.attention.fusion.weighted_sum`; the result equals
:func:`~solutions.attention.attention` with :func:`sliding_window_mask` (tested).

Shape letters (see :mod:`solutions`): ... leading dims (B, H); T positions; Dk, Dv feature sizes;
W = 3w the keys a block of queries scores; G global positions; Nb = ⌈T / w⌉ blocks.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..attention import attention, masked_softmax, weighted_sum

__all__ = ["sliding_window_attention", "sliding_window_mask"]


def sliding_window_mask(length: int, window: int, *, is_causal: bool = False,
                        global_positions: torch.Tensor | None = None,
                        device: torch.device | str | None = None) -> torch.Tensor:
    """Bool (T, T), True where query i may attend key j: |i − j| ≤ w (causal: 0 ≤ i − j ≤ w), or i or j global.

    The dense (T, T) form, for pictures and tests; :func:`sliding_window_attention` never builds it.
    """
    _check_window(length, window)
    i = torch.arange(length, device=device).unsqueeze(-1)  # (T, 1)
    j = torch.arange(length, device=device)  # (T,)
    keep = (i - j <= window) & (j - i <= (0 if is_causal else window))  # (T, T)
    if global_positions is not None:
        is_global = _global_flags(global_positions, length, keep.device)  # (T,)
        either = is_global.unsqueeze(-1) | is_global  # (T, T)
        keep = keep | (either & (j <= i) if is_causal else either)
    return keep


def sliding_window_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, window: int, *,
                             is_causal: bool = False, global_positions: torch.Tensor | None = None,
                             positions_per_step: int = 512) -> torch.Tensor:
    """Banded self-attention (Longformer, Beltagy et al. 2020, Section 3.1), O(T · w) time and memory.

    Args:
        query, key: (..., T, Dk).  value: (..., T, Dv); one sequence attends to itself, so the three share T.
        window: w ≥ 1, the reach on each side.
        is_causal: keys after the query are removed too.
        global_positions: indices (G,) of positions that attend to, and are attended by, every position.
        positions_per_step: how many queries' blocks are scored at once (rounded to whole blocks), so
            that the (..., Nb, w, 3w) scores are never held for the whole sequence at a time.

    Returns:
        output (..., T, Dv), equal to ``attention(query, key, value, mask=sliding_window_mask(...))[0]``.
    """
    T = _check(query, key, value, window)
    is_global = None if global_positions is None else _global_flags(global_positions, T, query.device)
    q = _blocks(query / math.sqrt(query.shape[-1]), window)  # (..., Nb, w, Dk), the scale folded in
    k, v = _windows(key, window), _windows(value, window)  # (..., Nb, 3w, Dk), (..., Nb, 3w, Dv)
    step = max(1, positions_per_step // window)  # blocks per step
    output = torch.cat([_band_attention(q, k, v, key, value, is_global, T, window, is_causal, first, first + step)
                        for first in range(0, q.shape[-3], step)], dim=-3)  # (..., Nb, w, Dv)
    output = output.flatten(-3, -2)[..., :T, :]  # (..., T, Dv)
    if is_global is not None:  # global queries attend to every key: G full rows
        rows, _ = attention(query[..., is_global, :], key, value, "scaled_dot",
                            mask=_global_rows_mask(T, is_causal, is_global))  # (..., G, Dv)
        output = output.clone()
        output[..., is_global, :] = rows
    return output


def _band_attention(q, k, v, key, value, is_global, T, w, is_causal, first, last) -> torch.Tensor:
    """Blocks first:last of the band: (..., Nb', w, Dv), from block b's queries against blocks b−1, b, b+1."""
    q, k, v = q[..., first:last, :, :], k[..., first:last, :, :], v[..., first:last, :, :]
    scores = q @ k.transpose(-2, -1)  # (..., Nb', w, 3w)
    keep = _band(T, w, is_causal, is_global, q.device, first, first + q.shape[-3])  # (Nb', w, 3w)
    if is_global is not None:  # every query also scores the global keys, kept once (out of the band)
        k_g, v_g = key[..., is_global, :], value[..., is_global, :]  # (..., G, Dk), (..., G, Dv)
        extra = q @ k_g.unsqueeze(-3).transpose(-2, -1)  # (..., Nb', w, G)
        scores = torch.cat([scores, extra], dim=-1)  # (..., Nb', w, 3w + G)
        visible = _global_keys_visible(T, w, is_causal, is_global, first, first + q.shape[-3])  # (Nb', w, G)
        keep = torch.cat([keep, visible], dim=-1)  # (Nb', w, 3w + G)
        v = torch.cat([v, v_g.unsqueeze(-3).expand(*v.shape[:-2], -1, -1)], dim=-2)  # (..., Nb', 3w + G, Dv)
    weights = masked_softmax(scores, keep)  # (..., Nb', w, 3w [+ G])
    return weighted_sum(weights, v)  # (..., Nb', w, Dv)


def _blocks(x: torch.Tensor, w: int) -> torch.Tensor:
    """(..., T, D) → (..., Nb, w, D), zero-padded at the end to a whole number of blocks."""
    T = x.shape[-2]
    padded = F.pad(x, (0, 0, 0, -T % w))  # (..., Nb·w, D)
    return padded.unflatten(-2, (-1, w))  # (..., Nb, w, D)


def _windows(x: torch.Tensor, w: int) -> torch.Tensor:
    """(..., T, D) → (..., Nb, 3w, D): for block b, the positions of blocks b − 1, b and b + 1."""
    T = x.shape[-2]
    padded = F.pad(x, (0, 0, w, w + (-T % w)))  # (..., (Nb + 2)·w, D): a block of zeros on each side
    return padded.unfold(-2, 3 * w, w).transpose(-2, -1)  # (..., Nb, 3w, D), a view that overlaps


def _band(T: int, w: int, is_causal: bool, is_global: torch.Tensor | None, device, first: int,
          last: int) -> torch.Tensor:
    """Bool (Nb', w, 3w) for blocks first:last: which of the 3w keys each query scores lie in its window."""
    i = torch.arange(first * w, last * w, device=device).view(last - first, w, 1)  # (Nb', w, 1): the query
    j = i - i % w - w + torch.arange(3 * w, device=device)  # (Nb, w, 3w): the key's position
    keep = (i - j <= w) & (j - i <= (0 if is_causal else w)) & (j >= 0) & (j < T) & (i < T)
    if is_global is not None:  # a global key is scored in the extra columns, never twice
        keep &= ~is_global[j.clamp(0, T - 1)]
    return keep


def _global_keys_visible(T: int, w: int, is_causal: bool, is_global: torch.Tensor, first: int,
                         last: int) -> torch.Tensor:
    """Bool (Nb', w, G) for blocks first:last: each query sees every global key (causal: those not after it)."""
    i = torch.arange(first * w, last * w, device=is_global.device).view(last - first, w, 1)  # (Nb', w, 1)
    g = torch.nonzero(is_global).squeeze(-1)  # (G,)
    visible = (i < T) & ((g <= i) if is_causal else torch.ones_like(g, dtype=torch.bool))  # (Nb', w, G)
    return visible.expand(last - first, w, g.numel())


def _global_rows_mask(T: int, is_causal: bool, is_global: torch.Tensor) -> torch.Tensor | None:
    """Bool (G, T) for the global queries' full rows (causal: keys up to the query)."""
    if not is_causal:
        return None
    g = torch.nonzero(is_global)  # (G, 1)
    return torch.arange(T, device=is_global.device) <= g  # (G, T)


def _global_flags(positions: torch.Tensor, T: int, device) -> torch.Tensor:
    """Bool (T,) from global indices (G,)."""
    positions = torch.as_tensor(positions, device=device)
    if positions.dtype == torch.bool or positions.is_floating_point() or positions.dim() != 1:
        raise TypeError(f"global_positions must be a 1-D integer tensor of indices, got "
                        f"{positions.dtype} {tuple(positions.shape)}")
    if positions.numel() and (positions.min() < 0 or positions.max() >= T):
        raise ValueError(f"global positions must lie in [0, {T}), got {positions.tolist()}")
    flags = torch.zeros(T, dtype=torch.bool, device=device)
    flags[positions] = True
    return flags


def _check_window(length: int, window: int) -> None:
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive integer (the reach on each side), got {window!r}")
    if length < 1:
        raise ValueError(f"the sequence must have at least one position, got {length}")


def _check(query, key, value, window) -> int:
    for name, x in (("query", query), ("key", key), ("value", value)):
        if not isinstance(x, torch.Tensor) or x.dim() < 2 or not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor of shape (..., T, D), got "
                            f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    T = query.shape[-2]
    if key.shape[-2] != T or value.shape[-2] != T:
        raise ValueError(f"sliding-window attention is self-attention: query, key and value need the same "
                         f"positions, got {query.shape[-2]}, {key.shape[-2]} and {value.shape[-2]}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(f"queries have {query.shape[-1]} features but keys have {key.shape[-1]}")
    _check_window(T, window)
    return T
