"""Attention in one function: score → align → fuse, the computation every mechanism of the course composes.

    e_ij = a(q_i, k_j)                 score   (solutions.attention.scores)
    α_ij = softmax_j(e_ij / τ)         align   (solutions.attention.masking.masked_softmax)
    c_i  = Σ_j α_ij v_j                fuse    (solutions.attention.fusion.weighted_sum)

With the scaled dot score and τ = 1 this is eq. (1) of Vaswani et al. 2017 (arXiv:1706.03762),

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V,

which :func:`scaled_dot_product_attention` names with the arguments of PyTorch's
``F.scaled_dot_product_attention`` (tested to agree). Bahdanau's additive score (arXiv:1409.0473,
eq. 6) or Luong's general score (arXiv:1508.04025, eq. 8) go in as ``score``.

``fused=True`` hands the same computation to ``F.scaled_dot_product_attention`` (PyTorch's fused
kernels, as nanoGPT's ``flash`` switch does): the same output, much faster, but no weights are returned,
so it is for training, not for looking at attention. It needs the dot or scaled-dot score.

MASK CONVENTION (the course's, everywhere): a **bool** mask says ``True`` = the query MAY ATTEND to that
key, as in ``F.scaled_dot_product_attention``; a **float** mask is *added* to the scores (0 keeps a key,
−∞ removes it). A query whose keys are all removed by a bool mask gets zero weights and a zero output.

Shape letters (see :mod:`solutions`): ... any leading dimensions (B, H, ...), broadcast between the
inputs; Tq queries; Tk keys (= values); Dq, Dk, Dv feature sizes of queries, keys and values.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from .fusion import weighted_sum
from .masking import causal_mask, check_broadcast, check_temperature, combine_masks, masked_softmax
from .scores import SCORES, _broadcast_leading, _require_sequence, dot_score, scaled_dot_score
from .shapes import broadcast_shapes

__all__ = ["attention", "scaled_dot_product_attention"]

#: Scores without parameters, which can be named by a string.
_PARAMETER_FREE = {"dot": dot_score, "scaled_dot": scaled_dot_score}


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    score: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "scaled_dot",
    mask: torch.Tensor | None = None,
    *,
    valid_lens: torch.Tensor | None = None,
    is_causal: bool = False,
    bias: torch.Tensor | None = None,
    temperature: float = 1.0,
    dropout_p: float = 0.0,
    training: bool = True,
    fused: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention in three steps: score → align → fuse (Vaswani et al. 2017, eq. 1, for the scaled dot score).

    Args:
        query: (..., Tq, Dq).  key: (..., Tk, Dk).  value: (..., Tk, Dv); leading dims broadcast.
        score: "dot", "scaled_dot", or a callable ``score(query, key) -> (..., Tq, Tk)``, such as a
            ``GeneralScore`` / ``AdditiveScore`` module (which own their parameters).
        mask: broadcastable to (..., Tq, Tk); **bool: True = may attend**; float: added to the scores.
        valid_lens: integer (B,) or (B, Tq): only keys [0, len) are attended (AND with ``mask``).
        is_causal: also remove the keys after each query (:func:`~solutions.attention.masking.causal_mask`).
        bias: float, broadcastable to (..., Tq, Tk), added to the scores (besides a bool ``mask``).
        temperature: τ > 0 dividing the scores before the softmax.
        dropout_p: dropout on the weights when ``training``; the returned weights are those before dropout.
        fused: compute the output with ``F.scaled_dot_product_attention`` and return no weights.

    Returns:
        ``(output, weights)``: output (..., Tq, Dv), weights (..., Tq, Tk) (None when ``fused``).
    """
    score_fn = _resolve_score(score, fused)
    keep, bias = _masks(query, key, value, mask, valid_lens, is_causal, bias)  # argument checks live here
    if fused:
        return _fused(query, key, value, score, keep, bias, temperature, dropout_p, training), None

    scores = _checked(score_fn(query, key), query, key)  # (..., Tq, Tk): e_ij
    if bias is not None:
        scores = scores + bias  # (..., Tq, Tk): a float mask is added
    weights = masked_softmax(scores, keep, temperature=temperature)  # (..., Tq, Tk): α_ij, 0 where masked
    mixed = F.dropout(weights, dropout_p, training=training) if dropout_p > 0 else weights
    return weighted_sum(mixed, value), weights  # (..., Tq, Dv): c_i = Σ_j α_ij v_j


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    training: bool = True,
    fused: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``softmax(Q Kᵀ / √d_k) V``, Vaswani et al. 2017, eq. (1), arXiv:1706.03762.

    :func:`attention` with the scaled dot score, under the argument names of PyTorch's
    ``F.scaled_dot_product_attention`` (``attn_mask``: bool True = may attend, or float added), so the
    two can be swapped. Returns ``(output (..., Tq, Dv), weights (..., Tq, Tk))``; weights None if ``fused``.
    """
    return attention(query, key, value, "scaled_dot", attn_mask, is_causal=is_causal, dropout_p=dropout_p,
                     training=training, fused=fused)


# --------------------------------------------------------------------------- kept out of the way
def _resolve_score(score, fused: bool) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if fused and score not in _PARAMETER_FREE:
        raise ValueError(f"fused=True runs F.scaled_dot_product_attention, which computes the 'dot' or "
                         f"'scaled_dot' score only; got score={score!r}")
    if isinstance(score, str):
        if score in _PARAMETER_FREE:
            return _PARAMETER_FREE[score]
        if score in SCORES:
            raise ValueError(
                f"the {score!r} score has learned parameters, so it cannot be named by a string; "
                f"pass a module instance instead, e.g. score=make_score({score!r}, Dq, Dk) "
                f"from solutions.attention.scores"
            )
        raise ValueError(f"unknown score {score!r}; name one of {sorted(_PARAMETER_FREE)} "
                         f"or pass a callable score(query, key) -> scores")
    if callable(score):
        return score
    raise TypeError(f"score must be a name or a callable score(query, key), got {type(score).__name__}")


def _checked(scores: torch.Tensor, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    expected = (query.shape[-2], key.shape[-2])
    if scores.dim() < 2 or tuple(scores.shape[-2:]) != expected:
        raise ValueError(
            f"score function returned shape {tuple(scores.shape)}, expected (..., Tq, Tk) = "
            f"(..., {expected[0]}, {expected[1]}) for query {tuple(query.shape)} and key {tuple(key.shape)}"
        )
    return scores


def _masks(query, key, value, mask, valid_lens, is_causal, bias=None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Check the inputs; return the bool 'keep' mask and the float 'bias', each broadcastable to the scores."""
    for name, x in (("query", query), ("key", key), ("value", value)):
        _require_sequence(x, name)
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"keys have {key.shape[-2]} positions but values have {value.shape[-2]} "
                         f"(key {tuple(key.shape)}, value {tuple(value.shape)})")
    lead = _broadcast_leading(query, key, names=("query", "key"))
    _broadcast_leading(key, value, names=("key", "value"))
    shape = torch.Size(lead) + (query.shape[-2], key.shape[-2])  # (..., Tq, Tk)
    bool_mask = None
    if bias is not None:
        bias = _float_mask(bias, shape, query, "bias")
    if mask is not None:
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a tensor (bool: True = may attend; float: added), "
                            f"got {type(mask).__name__}")
        if mask.is_floating_point():
            added = _float_mask(mask, shape, query, "mask")
            bias = added if bias is None else bias + added
        elif mask.dtype != torch.bool:
            raise TypeError(f"mask must be bool (True = may attend) or float (added to the scores), "
                            f"got {mask.dtype}")
        else:
            bool_mask = mask
    keep = combine_masks(shape, query.device, bool_mask, valid_lens)
    if is_causal:
        causal = causal_mask(shape[-2], shape[-1], device=query.device)  # (Tq, Tk)
        keep = causal if keep is None else keep & causal
    return keep, bias


def _float_mask(mask: torch.Tensor, shape: torch.Size, query: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor) or not mask.is_floating_point():
        raise TypeError(f"{name} must be a float tensor added to the scores, got {getattr(mask, 'dtype', type(mask))}")
    check_broadcast(shape, mask, name)
    return mask.to(device=query.device, dtype=query.dtype)


def _fused(query, key, value, score, keep, bias, temperature, dropout_p, training) -> torch.Tensor:
    """The same output from PyTorch's fused kernel: softmax(scale · QKᵀ + mask) V."""
    check_temperature(temperature)
    scale = (1 / math.sqrt(query.shape[-1]) if score == "scaled_dot" else 1.0) / temperature
    mask = keep
    if bias is not None and keep is not None:  # one float mask: the bias where kept, the lowest float elsewhere
        mask = bias.masked_fill(~keep, torch.finfo(bias.dtype).min)
    elif bias is not None:
        mask = bias
    lead = broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    query, key, value = (x.expand(lead + x.shape[-2:]) for x in (query, key, value))  # the kernel wants equal leads
    output = F.scaled_dot_product_attention(query, key, value, attn_mask=mask,
                                            dropout_p=dropout_p if training else 0.0, scale=scale)  # (..., Tq, Dv)
    if keep is not None and bias is not None:
        output = output * keep.any(-1, keepdim=True)  # a query with no key left attends to nothing
    return output
