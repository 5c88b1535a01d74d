"""Fusion: mix the values with the attention weights.

Step 3 of the *score → align → fuse* framework (chapter 2) turns the weights of each query into one
context vector,

    c_i = Σ_j α_ij v_j                                  (Bahdanau et al. 2015, eq. 5, arXiv:1409.0473)

:func:`solutions.attention.core.attention` chains the three steps.

Shape letters:
    ...  any leading dimensions (batch B, heads H, ...), broadcast between the inputs
    Tq   number of queries          Tk   number of keys (= number of values)
    Dq   query feature size         Dk   key feature size          Dv   value feature size
"""
import torch

from .scores import _broadcast_leading, _require_sequence

__all__ = ["weighted_sum"]


def weighted_sum(weights: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Context vectors ``c_i = Σ_j α_ij v_j`` (Bahdanau et al. 2015, eq. 5, arXiv:1409.0473).

    weights (..., Tq, Tk), value (..., Tk, Dv) → context (..., Tq, Dv); leading dims broadcast.
    """
    _require_sequence(weights, "weights")
    _require_sequence(value, "value")
    if weights.shape[-1] != value.shape[-2]:
        raise ValueError(
            f"weights cover {weights.shape[-1]} keys but values have {value.shape[-2]} positions "
            f"(weights {tuple(weights.shape)}, values {tuple(value.shape)})"
        )
    _broadcast_leading(weights, value, names=("weights", "values"))
    return weights @ value  # (..., Tq, Tk) @ (..., Tk, Dv) -> (..., Tq, Dv)
