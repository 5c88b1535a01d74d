"""The attention core: every mechanism of the course composes these pieces, and this package imports
nothing else from :mod:`solutions`.

* :mod:`~solutions.attention.scores` — score functions a(q, k): dot, scaled dot, general, additive;
* :mod:`~solutions.attention.masking` — masks (lengths, causal) and the masked softmax (align);
* :mod:`~solutions.attention.fusion` — the weighted sum of the values (fuse);
* :mod:`~solutions.attention.core` — :func:`attention`, the three steps in one function (eq. 1 of
  Vaswani et al. for the scaled dot score), with a ``fused`` switch to PyTorch's kernel;
* :mod:`~solutions.attention.multihead` — multi-head attention.
"""
from .core import attention, scaled_dot_product_attention
from .fusion import weighted_sum
from .masking import causal_mask, lengths_to_mask, masked_softmax
from .multihead import MultiHeadAttention, merge_heads, split_heads
from .scores import (SCORE_FUNCTIONS, SCORES, AdditiveScore, DotScore, GeneralScore, ScaledDotScore,
                     additive_score, dot_score, general_score, make_score, scaled_dot_score)

__all__ = [
    "attention", "scaled_dot_product_attention", "weighted_sum", "causal_mask", "lengths_to_mask",
    "masked_softmax", "MultiHeadAttention", "merge_heads", "split_heads", "SCORE_FUNCTIONS", "SCORES",
    "AdditiveScore", "DotScore", "GeneralScore", "ScaledDotScore", "additive_score", "dot_score",
    "general_score", "make_score", "scaled_dot_score",
]
