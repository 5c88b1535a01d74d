"""Multi-head attention (Vaswani et al. 2017, arXiv:1706.03762), built on the course's attention core.

Each head runs eq. (1), ``Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V``
(:func:`solutions.attention.core.attention`). Multi-head attention, Section 3.2.2 (the paper's unnumbered display between eqs. (1) and (2)):

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,   head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)

with W_i^Q, W_i^K ∈ R^{d_model × d_k}, W_i^V ∈ R^{d_model × d_v} and W^O ∈ R^{h d_v × d_model};
here d_k = d_v = d_model / h, and the h projections of one kind are stored side by side as one
``nn.Linear(d_model, d_model)``, so that splitting its output into h chunks gives the h heads.

``combine="mean"`` averages the heads instead of concatenating them (as graph attention networks do in
their last layer, Veličković et al. 2018, arXiv:1710.10903, eq. 6):

    MeanHead(Q, K, V) = (1/h Σ_i head_i) W^O,   W^O ∈ R^{d_v × d_model},

so the heads share one d_v-dimensional space instead of owning h disjoint ones (the chapter "Attention by
source" compares the two).

MASK CONVENTION (the course's, see solutions.attention.core): a **bool** mask says ``True`` = the query
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

import torch
from torch import nn

from .core import attention

__all__ = ["split_heads", "merge_heads", "MultiHeadAttention"]


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
        fused: when no weights are asked for (``need_weights=False``), compute the heads with
            ``F.scaled_dot_product_attention`` (same output, PyTorch's speed).
        combine: ``"concat"`` (the paper: Concat(head_1..h) W^O) or ``"mean"`` (the average of the heads,
            then W^O from D / H to D features).

    ``forward(query, key, value, key_padding_mask=None, attn_mask=None, is_causal=False,
    average_weights=True, need_weights=True)`` returns ``(output, weights)``: output like ``query``,
    weights (B, Tq, Tk) averaged over the heads or (B, H, Tq, Tk) per head (None without ``need_weights``
    on the fused path).

    * ``key_padding_mask``: bool (B, Tk), **True = a real key that may be attended** (the opposite
      of ``nn.MultiheadAttention``).
    * ``attn_mask``: (Tq, Tk), (B, Tq, Tk) or (B, H, Tq, Tk); bool (True = may attend) or float
      (added to the scores).
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = True, fused: bool = False, combine: str = "concat") -> None:
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(f"d_model = {d_model} must be divisible by num_heads = {num_heads}")
        if combine not in ("concat", "mean"):
            raise ValueError(f"combine must be 'concat' or 'mean', got {combine!r}")
        self.d_model, self.num_heads, self.head_dim = d_model, num_heads, d_model // num_heads
        self.dropout, self.batch_first, self.fused, self.combine = dropout, batch_first, fused, combine
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)    # the H matrices W_i^Q side by side
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)    # W_i^K
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)    # W_i^V
        combined = d_model if combine == "concat" else self.head_dim
        self.out_proj = nn.Linear(combined, d_model, bias=bias)  # W^O: (H·Dh or Dh) -> D

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
                is_causal: bool = False, average_weights: bool = True,
                need_weights: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
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
        heads, weights = attention(q, k, v, "scaled_dot", keep, bias=bias, is_causal=is_causal,
                                   dropout_p=self.dropout, training=self.training,
                                   fused=self.fused and not need_weights)  # (B, H, Tq, Dh), (B, H, Tq, Tk)
        if self.combine == "concat":
            output = self.out_proj(merge_heads(heads))  # (B, H, Tq, Dh) -> (B, Tq, D)
        else:
            output = self.out_proj(heads.mean(dim=1))  # (B, H, Tq, Dh) -> (B, Tq, Dh) -> (B, Tq, D)
        if not self.batch_first:
            output = output.transpose(0, 1)  # (B, Tq, D) -> (Tq, B, D)
        if weights is None:
            return output, None
        return output, (weights.mean(dim=1) if average_weights else weights)  # (B, Tq, Tk) or (B, H, Tq, Tk)
