"""Fusion, and attention composed from its three steps: score → align → fuse.

Step 3 of the framework of chapter 2 mixes the values with the attention weights into one
context vector per query,

    c_i = Σ_j α_ij v_j                                  (Bahdanau et al. 2015, eq. 5, arXiv:1409.0473)

and :func:`attention` chains the three steps,

    e_ij = a(q_i, k_j)               score  (solutions.scores)
    α_ij = softmax_j(e_ij / τ)       align  (solutions.masking.masked_softmax, with masks)
    c_i  = Σ_j α_ij v_j              fuse   (weighted_sum)

which with the scaled dot score and τ = 1 is Vaswani et al. 2017, eq. 1 (arXiv:1706.03762),
``Attention(Q, K, V) = softmax(QKᵀ / √d_k) V``, the computation PyTorch fuses into
``F.scaled_dot_product_attention`` (tested to agree).

Shape letters:
    ...  any leading dimensions (batch B, heads H, ...), broadcast between the inputs
    Tq   number of queries          Tk   number of keys (= number of values)
    Dq   query feature size         Dk   key feature size          Dv   value feature size
"""
from typing import Callable

import torch

from .masking import masked_softmax
from .scores import SCORES, _broadcast_leading, _require_sequence, dot_score, scaled_dot_score

__all__ = ["weighted_sum", "attention"]

#: Scores that need no parameters and can be named by a string in :func:`attention`.
_PARAMETER_FREE = {"dot": dot_score, "scaled_dot": scaled_dot_score}


def weighted_sum(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Context vectors ``c_i = Σ_j α_ij v_j`` (Bahdanau et al. 2015, eq. 5, arXiv:1409.0473).

    weights (..., Tq, Tk), values (..., Tk, Dv) → context (..., Tq, Dv); leading dims broadcast.
    """
    _require_sequence(weights, "weights")
    _require_sequence(values, "values")
    if weights.shape[-1] != values.shape[-2]:
        raise ValueError(
            f"weights cover {weights.shape[-1]} keys but values have {values.shape[-2]} positions "
            f"(weights {tuple(weights.shape)}, values {tuple(values.shape)})"
        )
    _broadcast_leading(weights, values, names=("weights", "values"))
    return weights @ values  # (..., Tq, Tk) @ (..., Tk, Dv) -> (..., Tq, Dv)


def _resolve_score(score) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if isinstance(score, str):
        if score in _PARAMETER_FREE:
            return _PARAMETER_FREE[score]
        if score in SCORES:
            raise ValueError(
                f"the {score!r} score has learned parameters, so it cannot be named by a string; "
                f"pass a module instance instead, e.g. score=make_score({score!r}, Dq, Dk) "
                f"from solutions.scores"
            )
        raise ValueError(
            f"unknown score {score!r}; name one of {sorted(_PARAMETER_FREE)} "
            f"or pass a callable score(query, keys) -> scores"
        )
    if callable(score):
        return score
    raise TypeError(f"score must be a name or a callable score(query, keys), got {type(score).__name__}")


def attention(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    score="scaled_dot",
    mask: torch.Tensor | None = None,
    valid_lens: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention in three steps: score → align → fuse.

    1. score: ``e_ij = a(q_i, k_j)`` — e.g. ``q_iᵀ k_j / √D`` (Vaswani et al. 2017, eq. 1,
       arXiv:1706.03762) or ``vᵀ tanh(W_q q_i + W_k k_j)`` (Bahdanau et al. 2015, eq. 6 and
       Appendix A.1.2, arXiv:1409.0473).
    2. align: ``α_ij = exp(e_ij / τ) / Σ_j' exp(e_ij' / τ)`` over the kept keys, 0 for masked keys
       (Bahdanau eq. 6; Luong et al. 2015, eq. 7, arXiv:1508.04025).
    3. fuse: ``c_i = Σ_j α_ij v_j`` (Bahdanau eq. 5).

    Args:
        query: (..., Tq, Dq).  keys: (..., Tk, Dk).  values: (..., Tk, Dv).
        score: "dot", "scaled_dot", or any callable ``score(query, keys) -> (..., Tq, Tk)``, such
            as a ``GeneralScore`` / ``AdditiveScore`` module (which own their parameters).
        mask: bool, broadcastable to (..., Tq, Tk); **True = may attend** (as in
            ``F.scaled_dot_product_attention``; opposite of ``nn.MultiheadAttention``).
        valid_lens: integer (B,) or (B, Tq): only keys [0, len) are attended; AND with ``mask``.
        temperature: τ > 0 dividing the scores before the softmax.

    Returns:
        ``(context, weights)``: context (..., Tq, Dv) and weights (..., Tq, Tk). A query whose keys
        are all masked gets zero weights and a zero context vector.
    """
    score_fn = _resolve_score(score)
    _require_sequence(query, "query")
    _require_sequence(keys, "keys")
    _require_sequence(values, "values")
    if keys.shape[-2] != values.shape[-2]:
        raise ValueError(
            f"keys have {keys.shape[-2]} positions but values have {values.shape[-2]} "
            f"(keys {tuple(keys.shape)}, values {tuple(values.shape)})"
        )
    _broadcast_leading(query, keys, names=("query", "keys"))
    _broadcast_leading(keys, values, names=("keys", "values"))

    scores = score_fn(query, keys)  # (..., Tq, Tk)
    expected = (query.shape[-2], keys.shape[-2])
    if scores.dim() < 2 or tuple(scores.shape[-2:]) != expected:
        raise ValueError(
            f"score function returned shape {tuple(scores.shape)}, expected (..., Tq, Tk) = "
            f"(..., {expected[0]}, {expected[1]}) for query {tuple(query.shape)} and keys {tuple(keys.shape)}"
        )
    weights = masked_softmax(scores, mask, valid_lens, temperature)  # (..., Tq, Tk)
    context = weighted_sum(weights, values)  # (..., Tq, Dv)
    return context, weights
