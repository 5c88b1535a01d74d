"""Scaled dot-product attention and multi-head attention (Vaswani et al. 2017, arXiv:1706.03762).

Scaled dot-product attention, the paper's eq. (1):

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V

Multi-head attention, Section 3.2.2 (the paper's unnumbered display between eqs. (1) and (2)):

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,   head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)

with W_i^Q, W_i^K ∈ R^{d_model × d_k}, W_i^V ∈ R^{d_model × d_v} and W^O ∈ R^{h d_v × d_model};
here d_k = d_v = d_model / h, and the h projections of one kind are stored side by side as one
``nn.Linear(d_model, d_model)``, so that splitting its output into h chunks gives the h heads.

MASK CONVENTION (the course's, see solutions.masking): a **bool** mask says ``True`` = the query
MAY ATTEND to that key. A **float** mask is *added* to the scores (0 keeps a key, −∞ removes it),
as in ``F.scaled_dot_product_attention``. ``nn.MultiheadAttention`` uses the opposite bool
convention (``True`` = ignore) for both ``key_padding_mask`` and a bool ``attn_mask``: convert with
``~mask``. A query whose keys are all removed by a bool mask gets zero weights and a zero output.

Shape letters:
    B   batch size           H   number of heads          ... any leading dimensions
    Tq  number of queries    Tk  number of keys (= values)
    D   model size d_model   Dh  head size d_k = d_v = D / H     Dv  value size
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .masking import masked_softmax

__all__ = [
    "causal_mask",
    "scaled_dot_product_attention",
    "split_heads",
    "merge_heads",
    "MultiHeadAttention",
]


def causal_mask(num_queries: int, num_keys: int | None = None,
                device: torch.device | str | None = None) -> torch.Tensor:
    """Bool mask (Tq, Tk), ``True`` where query i may attend to key j, i.e. ``j <= i``.

    The decoder's self-attention must not look ahead: Section 3.2.3 of Vaswani et al. masks out
    "all values in the input of the softmax which correspond to illegal connections". With
    ``num_keys != num_queries`` the triangle starts at the top left, as with PyTorch's
    ``F.scaled_dot_product_attention(..., is_causal=True)``.
    """
    num_keys = num_queries if num_keys is None else num_keys
    if num_queries < 0 or num_keys < 0:
        raise ValueError(f"sizes must be >= 0, got {num_queries} queries and {num_keys} keys")
    ones = torch.ones(num_queries, num_keys, dtype=torch.bool, device=device)  # (Tq, Tk)
    return torch.tril(ones)  # (Tq, Tk): row i keeps keys 0..i


def _check_qkv(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
    for name, x in (("query", query), ("key", key), ("value", value)):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
        if x.dim() < 2:
            raise ValueError(f"{name} must be (..., positions, features), got shape {tuple(x.shape)}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(f"query has {query.shape[-1]} features but key has {key.shape[-1]} "
                         f"(query {tuple(query.shape)}, key {tuple(key.shape)}); q·k needs equal sizes d_k")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"key has {key.shape[-2]} positions but value has {value.shape[-2]} "
                         f"(key {tuple(key.shape)}, value {tuple(value.shape)})")


def _check_attn_mask(mask: torch.Tensor, scores_shape: torch.Size) -> None:
    if mask.shape[-1:] and mask.shape[-1] not in (1, scores_shape[-1]):
        raise ValueError(f"keys have {scores_shape[-1]} positions but attn_mask has {mask.shape[-1]} "
                         f"(scores {tuple(scores_shape)}, attn_mask {tuple(mask.shape)})")
    try:
        ok = torch.broadcast_shapes(mask.shape, scores_shape) == scores_shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"attn_mask of shape {tuple(mask.shape)} does not broadcast to the scores "
                         f"(..., Tq, Tk) = {tuple(scores_shape)}")


def _attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, keep: torch.Tensor | None,
            bias: torch.Tensor | None, dropout_p: float, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(QKᵀ/√d_k + bias) over the kept keys, then the weighted sum of the values."""
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])  # (..., Tq, Dh) @ (..., Dh, Tk) -> (..., Tq, Tk)
    if bias is not None:
        scores = scores + bias  # (..., Tq, Tk)
    weights = masked_softmax(scores, keep)  # (..., Tq, Tk); removed keys exactly 0
    dropped = F.dropout(weights, dropout_p, training=training) if dropout_p > 0 else weights
    return dropped @ value, weights  # (..., Tq, Tk) @ (..., Tk, Dv) -> (..., Tq, Dv)


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    training: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(Q Kᵀ / √d_k) V``, Vaswani et al. 2017, eq. (1), arXiv:1706.03762.

    Args:
        query: (..., Tq, Dk).  key: (..., Tk, Dk).  value: (..., Tk, Dv); leading dims broadcast.
        attn_mask: broadcastable to (..., Tq, Tk); **bool: True = may attend**; float: added to the
            scores (0 keeps, −∞ removes), as in ``F.scaled_dot_product_attention``.
        is_causal: also remove the keys after each query (:func:`causal_mask`).
        dropout_p: dropout on the attention weights (applied when ``training``), as in the paper's
            residual dropout setting; the returned weights are those *before* dropout.

    Returns:
        ``(output, weights)``: output (..., Tq, Dv), weights (..., Tq, Tk). A row whose keys are all
        removed by a bool mask (or by ``is_causal``) is all zeros, and so is its output.
    """
    _check_qkv(query, key, value)
    try:
        lead = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except RuntimeError:
        raise ValueError(f"leading dimensions of query {tuple(query.shape)}, key {tuple(key.shape)} and "
                         f"value {tuple(value.shape)} do not broadcast") from None
    scores_shape = lead + (query.shape[-2], key.shape[-2])
    keep, bias = None, None
    if attn_mask is not None:
        if not isinstance(attn_mask, torch.Tensor):
            raise TypeError(f"attn_mask must be a tensor, got {type(attn_mask).__name__}")
        _check_attn_mask(attn_mask, scores_shape)
        if attn_mask.dtype == torch.bool:
            keep = attn_mask
        elif attn_mask.is_floating_point():
            bias = attn_mask.to(query.dtype)
        else:
            raise TypeError(f"attn_mask must be bool (True = may attend) or float (added), got {attn_mask.dtype}")
    if is_causal:
        causal = causal_mask(query.shape[-2], key.shape[-2], device=query.device)  # (Tq, Tk)
        keep = causal if keep is None else keep & causal
    return _attend(query, key, value, keep, bias, dropout_p, training)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, T, D) → (B, H, T, D/H): the features of each position cut into H chunks, one per head."""
    if x.dim() != 3:
        raise ValueError(f"split_heads expects (B, T, D), got shape {tuple(x.shape)}")
    B, T, D = x.shape
    if D % num_heads != 0:
        raise ValueError(f"the model size {D} is not divisible by {num_heads} heads")
    return x.view(B, T, num_heads, D // num_heads).transpose(1, 2)  # (B, T, H, Dh) -> (B, H, T, Dh)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, Dh) → (B, T, H·Dh): Concat(head_1, ..., head_h), the inverse of :func:`split_heads`."""
    if x.dim() != 4:
        raise ValueError(f"merge_heads expects (B, H, T, Dh), got shape {tuple(x.shape)}")
    B, H, T, Dh = x.shape
    return x.transpose(1, 2).reshape(B, T, H * Dh)  # (B, T, H, Dh) -> (B, T, D)


class MultiHeadAttention(nn.Module):
    """``MultiHead(Q, K, V) = Concat(head_1..h) W^O``, Vaswani et al. 2017, Section 3.2.2.

    Args:
        d_model: model size D (input and output features).
        num_heads: H; each head works in D / H dimensions.
        dropout: dropout on the attention weights during training.
        bias: whether the four projections have biases (``nn.MultiheadAttention`` has them).
        batch_first: inputs are (B, T, D) when True, (T, B, D) when False.

    ``forward(query, key, value, key_padding_mask=None, attn_mask=None, is_causal=False,
    average_weights=True)`` returns ``(output, weights)``: output like ``query``, weights
    (B, Tq, Tk) averaged over the heads or (B, H, Tq, Tk) per head.

    * ``key_padding_mask``: bool (B, Tk), **True = a real key that may be attended** (the opposite
      of ``nn.MultiheadAttention``).
    * ``attn_mask``: (Tq, Tk), (B, Tq, Tk) or (B, H, Tq, Tk); bool (True = may attend) or float
      (added to the scores).
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = True) -> None:
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(f"d_model = {d_model} must be divisible by num_heads = {num_heads}")
        self.d_model, self.num_heads, self.head_dim = d_model, num_heads, d_model // num_heads
        self.dropout, self.batch_first = dropout, batch_first
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)    # the H matrices W_i^Q side by side
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)    # W_i^K
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)    # W_i^V
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)  # W^O

    def _masks(self, key_padding_mask, attn_mask, B, Tq, Tk, device):
        """The bool 'keep' mask and float 'bias', both broadcastable to (B, H, Tq, Tk)."""
        keep, bias = None, None
        if key_padding_mask is not None:
            if key_padding_mask.dtype != torch.bool:
                raise TypeError(f"key_padding_mask must be bool (True = may attend), got {key_padding_mask.dtype}")
            if key_padding_mask.shape != (B, Tk):
                raise ValueError(f"key_padding_mask must be (B, Tk) = ({B}, {Tk}), "
                                 f"got {tuple(key_padding_mask.shape)}")
            keep = key_padding_mask.to(device).view(B, 1, 1, Tk)  # (B, 1, 1, Tk)
        if attn_mask is not None:
            if attn_mask.dim() == 2 and attn_mask.shape == (Tq, Tk):
                mask = attn_mask  # (Tq, Tk), broadcasts over B and H
            elif attn_mask.dim() == 3 and attn_mask.shape == (B, Tq, Tk):
                mask = attn_mask.unsqueeze(1)  # (B, 1, Tq, Tk)
            elif attn_mask.dim() == 4 and attn_mask.shape == (B, self.num_heads, Tq, Tk):
                mask = attn_mask  # (B, H, Tq, Tk)
            else:
                raise ValueError(f"attn_mask must be (Tq, Tk), (B, Tq, Tk) or (B, H, Tq, Tk) with B = {B}, "
                                 f"H = {self.num_heads}, Tq = {Tq}, Tk = {Tk}; got {tuple(attn_mask.shape)}")
            mask = mask.to(device)
            if mask.dtype == torch.bool:
                keep = mask if keep is None else keep & mask
            elif mask.is_floating_point():
                bias = mask
            else:
                raise TypeError(f"attn_mask must be bool (True = may attend) or float (added), got {mask.dtype}")
        return keep, bias

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None,
                is_causal: bool = False, average_weights: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        for name, x in (("query", query), ("key", key), ("value", value)):
            if x.dim() != 3 or x.shape[-1] != self.d_model:
                layout = "(B, T, D)" if self.batch_first else "(T, B, D)"
                raise ValueError(f"{name} must be {layout} with D = {self.d_model}, got {tuple(x.shape)}")
        if not self.batch_first:
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))  # (T, B, D) -> (B, T, D)
        B, Tq, _ = query.shape
        Tk = key.shape[1]
        if key.shape[0] != B or value.shape[0] != B:
            raise ValueError(f"batch sizes differ: query {B}, key {key.shape[0]}, value {value.shape[0]}")
        if value.shape[1] != Tk:
            raise ValueError(f"key has {Tk} positions but value has {value.shape[1]}")

        q = split_heads(self.q_proj(query), self.num_heads)  # (B, Tq, D) -> (B, H, Tq, Dh)
        k = split_heads(self.k_proj(key), self.num_heads)    # (B, Tk, D) -> (B, H, Tk, Dh)
        v = split_heads(self.v_proj(value), self.num_heads)  # (B, Tk, D) -> (B, H, Tk, Dh)
        keep, bias = self._masks(key_padding_mask, attn_mask, B, Tq, Tk, query.device)
        if is_causal:
            causal = causal_mask(Tq, Tk, device=query.device)  # (Tq, Tk)
            keep = causal if keep is None else keep & causal
        heads, weights = _attend(q, k, v, keep, bias, self.dropout, self.training)  # (B, H, Tq, Dh), (B, H, Tq, Tk)
        output = self.out_proj(merge_heads(heads))  # (B, H, Tq, Dh) -> (B, Tq, D)
        if not self.batch_first:
            output = output.transpose(0, 1)  # (B, Tq, D) -> (Tq, B, D)
        return output, (weights.mean(dim=1) if average_weights else weights)  # (B, Tq, Tk) or (B, H, Tq, Tk)
