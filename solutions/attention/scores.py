"""Score functions: how well does each key match each query?

Step 1 of the *score → align → fuse* framework (chapter 2). A score function compares every
query with every key and returns one real number per pair, ``e_ij = a(q_i, k_j)``; the alignment
step (:func:`solutions.attention.masking.masked_softmax`) turns the scores into attention weights and the
fusion step (:func:`solutions.attention.fusion.weighted_sum`) mixes the values with them.

==========  =========================  =====================================================
name        a(q, k)                    source
==========  =========================  =====================================================
dot         qᵀk                        Luong et al. 2015, eq. (8) "dot", arXiv:1508.04025
scaled_dot  qᵀk / √D                   Vaswani et al. 2017, eq. (1), arXiv:1706.03762
general     qᵀ W k                     Luong et al. 2015, eq. (8) "general", arXiv:1508.04025
additive    vᵀ tanh(W_q q + W_k k)     Bahdanau et al. 2015, eq. (6) with the alignment model
                                       of Appendix A.1.2, arXiv:1409.0473 (Luong's "concat")
==========  =========================  =====================================================

Each score exists as a plain function of tensors and as a small ``nn.Module`` that owns its
parameters. All of them are batched over any leading dimensions, and the leading dimensions of
the query and the keys broadcast (one query set against a batch of key sets, or per head).

Shape letters:
    ...  any leading dimensions (batch, heads, ...), broadcast between query and keys
    Tq   number of queries            Tk   number of keys
    Dq   query feature size           Dk   key feature size (D when both must be equal)
    A    hidden size of the additive score (the alignment model)

Weights of the additive score follow the ``nn.Linear`` convention (out_features, in_features),
so a projection is ``x @ w.T``.
"""
import math

import torch
from torch import nn
from .shapes import broadcast_shapes

__all__ = [
    "dot_score",
    "scaled_dot_score",
    "general_score",
    "additive_score",
    "DotScore",
    "ScaledDotScore",
    "GeneralScore",
    "AdditiveScore",
    "SCORES",
    "SCORE_FUNCTIONS",
    "make_score",
]


# --------------------------------------------------------------------------- argument checks
def _require_sequence(x: torch.Tensor, name: str) -> None:
    """``x`` must be a tensor of shape (..., T, D)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(
            f"{name} must have at least 2 dimensions (..., positions, features), "
            f"got shape {tuple(x.shape)}"
        )


def _broadcast_leading(query: torch.Tensor, key: torch.Tensor, names=("query", "key")) -> torch.Size:
    """Leading (batch-like) shape shared by ``query`` (..., Tq, Dq) and ``keys`` (..., Tk, Dk)."""
    try:
        return broadcast_shapes(query.shape[:-2], key.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"leading dimensions of {names[0]} {tuple(query.shape)} and {names[1]} {tuple(key.shape)} "
            f"do not broadcast: {tuple(query.shape[:-2])} vs {tuple(key.shape[:-2])}"
        ) from None


def _check_query_keys(query: torch.Tensor, key: torch.Tensor, same_dim: bool) -> None:
    _require_sequence(query, "query")
    _require_sequence(key, "key")
    if same_dim and query.shape[-1] != key.shape[-1]:
        raise ValueError(
            f"query has {query.shape[-1]} features but keys have {key.shape[-1]} "
            f"(query {tuple(query.shape)}, keys {tuple(key.shape)}); this score needs equal sizes, "
            f"use 'general' or 'additive' to compare vectors of different sizes"
        )
    _broadcast_leading(query, key)


# --------------------------------------------------------------------------- score functions
def dot_score(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """Dot-product score ``e_ij = q_iᵀ k_j`` (Luong et al. 2015, eq. 8 "dot", arXiv:1508.04025).

    query (..., Tq, D), keys (..., Tk, D) → scores (..., Tq, Tk).
    """
    _check_query_keys(query, key, same_dim=True)
    return query @ key.transpose(-2, -1)  # (..., Tq, D) @ (..., D, Tk) -> (..., Tq, Tk)


def scaled_dot_score(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """Scaled dot-product score ``e_ij = q_iᵀ k_j / √D`` (Vaswani et al. 2017, eq. 1, arXiv:1706.03762).

    With entries of unit variance, ``qᵀk`` has variance D; dividing by √D brings it back to 1 so
    the softmax does not saturate as D grows. query (..., Tq, D), keys (..., Tk, D) → (..., Tq, Tk).
    """
    _check_query_keys(query, key, same_dim=True)
    return query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])  # (..., Tq, Tk)


def general_score(query: torch.Tensor, key: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Bilinear ("general") score ``e_ij = q_iᵀ W k_j`` (Luong et al. 2015, eq. 8, arXiv:1508.04025).

    query (..., Tq, Dq), keys (..., Tk, Dk), weight W (Dq, Dk) → scores (..., Tq, Tk).
    With ``W = I`` it is the dot score.
    """
    _check_query_keys(query, key, same_dim=False)
    d_q, d_k = query.shape[-1], key.shape[-1]
    if weight.dim() != 2 or tuple(weight.shape) != (d_q, d_k):
        raise ValueError(
            f"weight must have shape (Dq, Dk) = ({d_q}, {d_k}) for query {tuple(query.shape)} "
            f"and keys {tuple(key.shape)}, got {tuple(weight.shape)}"
        )
    projected = query @ weight  # (..., Tq, Dq) @ (Dq, Dk) -> (..., Tq, Dk)
    return projected @ key.transpose(-2, -1)  # (..., Tq, Dk) @ (..., Dk, Tk) -> (..., Tq, Tk)


def additive_score(
    query: torch.Tensor,
    key: torch.Tensor,
    w_query: torch.Tensor,
    w_key: torch.Tensor,
    v: torch.Tensor,
) -> torch.Tensor:
    """Additive score ``e_ij = vᵀ tanh(W_q q_i + W_k k_j)``.

    Bahdanau et al. 2015 (arXiv:1409.0473), eq. 6 ``e_ij = a(s_{i-1}, h_j)`` with the alignment
    model of Appendix A.1.2, ``v_aᵀ tanh(W_a s_{i-1} + U_a h_j)``: the query is the previous
    decoder state s_{i-1}, the keys are the encoder annotations h_j. Luong et al. 2015 call it
    "concat", since ``W [q; k] = W_q q + W_k k``.

    query (..., Tq, Dq), keys (..., Tk, Dk), w_query (A, Dq), w_key (A, Dk), v (A,)
    → scores (..., Tq, Tk). Each side is projected once; broadcasting forms all Tq × Tk pairs.
    """
    _check_query_keys(query, key, same_dim=False)
    d_q, d_k = query.shape[-1], key.shape[-1]
    if v.dim() != 1:
        raise ValueError(f"v must have shape (A,), got {tuple(v.shape)}")
    d_h = v.shape[0]
    if w_query.dim() != 2 or tuple(w_query.shape) != (d_h, d_q):
        raise ValueError(
            f"w_query must have shape (A, Dq) = ({d_h}, {d_q}) for query {tuple(query.shape)} "
            f"and v {tuple(v.shape)}, got {tuple(w_query.shape)}"
        )
    if w_key.dim() != 2 or tuple(w_key.shape) != (d_h, d_k):
        raise ValueError(
            f"w_key must have shape (A, Dk) = ({d_h}, {d_k}) for keys {tuple(key.shape)} "
            f"and v {tuple(v.shape)}, got {tuple(w_key.shape)}"
        )
    q = query @ w_query.T  # (..., Tq, A)
    k = key @ w_key.T  # (..., Tk, A)
    # every (query, key) pair: (..., Tq, 1, A) + (..., 1, Tk, A) -> (..., Tq, Tk, A)
    features = torch.tanh(q.unsqueeze(-2) + k.unsqueeze(-3))  # (..., Tq, Tk, A)
    return features @ v  # (..., Tq, Tk)


# --------------------------------------------------------------------------- modules
def _init_uniform(tensor: torch.Tensor, fan_in: int) -> None:
    """U(-1/√fan_in, 1/√fan_in): the range ``nn.Linear`` uses for its weights."""
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(tensor, -bound, bound)


class DotScore(nn.Module):
    """Module form of :func:`dot_score` (no parameters)."""

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return dot_score(query, key)


class ScaledDotScore(nn.Module):
    """Module form of :func:`scaled_dot_score` (no parameters)."""

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return scaled_dot_score(query, key)


class GeneralScore(nn.Module):
    """Module form of :func:`general_score`; owns ``weight`` W of shape (Dq, Dk)."""

    def __init__(self, query_dim: int, key_dim: int):
        super().__init__()
        self.query_dim, self.key_dim = query_dim, key_dim
        self.weight = nn.Parameter(torch.empty(query_dim, key_dim))  # (Dq, Dk)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # W k is a linear map from Dk to Dq features, so fan_in is Dk (as nn.Linear(Dk, Dq) would use).
        _init_uniform(self.weight, self.key_dim)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return general_score(query, key, self.weight)

    def extra_repr(self) -> str:
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}"


class AdditiveScore(nn.Module):
    """Module form of :func:`additive_score`; owns ``w_query`` (A, Dq), ``w_key`` (A, Dk), ``v`` (A,)."""

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int):
        super().__init__()
        self.query_dim, self.key_dim, self.hidden_dim = query_dim, key_dim, hidden_dim
        self.w_query = nn.Parameter(torch.empty(hidden_dim, query_dim))  # (A, Dq)
        self.w_key = nn.Parameter(torch.empty(hidden_dim, key_dim))  # (A, Dk)
        self.v = nn.Parameter(torch.empty(hidden_dim))  # (A,)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init_uniform(self.w_query, self.query_dim)
        _init_uniform(self.w_key, self.key_dim)
        _init_uniform(self.v, self.hidden_dim)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return additive_score(query, key, self.w_query, self.w_key, self.v)

    def extra_repr(self) -> str:
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}, hidden_dim={self.hidden_dim}"


# --------------------------------------------------------------------------- registry
#: Score modules by name (build one with :func:`make_score`).
SCORES = {
    "dot": DotScore,
    "scaled_dot": ScaledDotScore,
    "general": GeneralScore,
    "additive": AdditiveScore,
}

#: Score functions by name; "general" and "additive" also take their weight tensors.
SCORE_FUNCTIONS = {
    "dot": dot_score,
    "scaled_dot": scaled_dot_score,
    "general": general_score,
    "additive": additive_score,
}


def make_score(name: str, query_dim: int, key_dim: int, hidden_dim: int | None = None) -> nn.Module:
    """Build the score module called ``name`` (a key of :data:`SCORES`).

    ``hidden_dim`` is A of the additive score (default: ``key_dim``); the other scores ignore it,
    so one call can loop over every name. "dot" and "scaled_dot" need ``query_dim == key_dim``.
    """
    if name not in SCORES:
        raise ValueError(f"unknown score {name!r}; choose one of {sorted(SCORES)}")
    if name in ("dot", "scaled_dot"):
        if query_dim != key_dim:
            raise ValueError(
                f"the {name!r} score needs query_dim == key_dim, got {query_dim} and {key_dim}; "
                f"use 'general' or 'additive' for different sizes"
            )
        return SCORES[name]()
    if name == "general":
        return GeneralScore(query_dim, key_dim)
    return AdditiveScore(query_dim, key_dim, key_dim if hidden_dim is None else hidden_dim)
