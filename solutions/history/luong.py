"""Luong attention: global and local attention, four score functions and input feeding.

Luong, Pham & Manning 2015, "Effective Approaches to Attention-based Neural Machine Translation"
(EMNLP 2015, arXiv:1508.04025). At decoder step t the *current* top decoder state h_t (not the
previous one, as in Bahdanau et al.) is compared with the source states h̄_s:

    a_t(s) = exp(score(h_t, h̄_s)) / Σ_s' exp(score(h_t, h̄_s'))              eq. (7)
    score(h_t, h̄_s) = h_tᵀ h̄_s                    dot                        eq. (8)
                     = h_tᵀ W_a h̄_s                general
                     = v_aᵀ tanh(W_a [h_t; h̄_s])   concat
    a_t = softmax(W_a h_t)                         location                   eq. (9)
    c_t = Σ_s a_t(s) h̄_s                           context vector             (Section 3)
    h̃_t = tanh(W_c [c_t; h_t])                    attentional hidden state   eq. (5)
    p(y_t | y_<t, x) = softmax(W_s h̃_t)                                       eq. (6)

*Global* attention (Section 3.1) weighs every source position. *Local* attention (Section 3.2)
only looks at the window [p_t − D, p_t + D]: *local-m* assumes monotonic alignment, p_t = t;
*local-p* predicts the centre and favours the positions near it,

    p_t = S · sigmoid(v_pᵀ tanh(W_p h_t))                                      eq. (10)
    a_t(s) = align(h_t, h̄_s) · exp(−(s − p_t)² / (2σ²)),   σ = D / 2          eq. (11)

where align is eq. (7) over the positions of the window and S is the source length. *Input feeding*
(Section 3.3) concatenates h̃_{t−1} with the embedding of the previous target word, so the decoder
knows where it attended before.

Differences from the paper, to keep the chapter comparable with chapter 4 (Bahdanau): the encoder is
:class:`solutions.history.seq2seq.RNNEncoder` (one bidirectional GRU layer, its annotations projected to the
decoder size N when they differ) instead of stacked LSTMs, and the decoder is one GRU layer instead of
a stack of LSTMs, so its "top state" h_t is its only state. Source positions are 0-based, so a
sentence of S positions (tokens + EOS) has positions 0, …, S − 1 and p_t lies in [0, S]. Positions
outside the window or beyond the sentence get weight exactly 0; for local-p the rows of weights sum
to at most 1 (a softmax multiplied by a Gaussian that is at most 1), for global and local-m to 1
(or to 0 when local-m's window has slid past the end of the sentence).

Shape letters:
    B  batch          S  source positions (tokens + EOS)     E  embedding size
    N  decoder size (h_t, h̃_t, and the projected source states h̄_s)
    D  annotation size of the encoder (2 × its hidden size)    V  target vocabulary size
    P  hidden size of the local-p position network (W_p)       M  most source positions of the location score
The window half-width, the paper's D, is written W here (``LuongConfig.window``); it is not a shape.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
from torch import nn

from ..data import Vocab
from ..attention.fusion import weighted_sum
from ..attention.masking import lengths_to_mask, masked_softmax
from ..attention.scores import _init_uniform, make_score
from .seq2seq import RNNEncoder

__all__ = [
    "ATTENTIONS",
    "SCORE_NAMES",
    "LuongConfig",
    "location_score",
    "predicted_position",
    "window_mask",
    "gaussian_window",
    "local_weights",
    "attentional_hidden",
    "LuongAttention",
    "LuongState",
    "LuongTranslator",
]

ATTENTIONS = ("global", "local-m", "local-p")
"""Where to look: every position (Section 3.1), or a window around p_t = t or a predicted p_t (Section 3.2)."""
SCORE_NAMES = ("dot", "general", "concat", "location")
"""How to score: the three content scores of eq. (8) and the location score of eq. (9)."""


@dataclass(frozen=True)
class LuongConfig:
    """Architecture of a :class:`LuongTranslator` (vocabulary sizes are given to the model)."""

    embed_dim: int = 64  # E: source and target word embeddings
    hidden_dim: int = 64  # N: decoder GRU state h_t, attentional state h̃_t and projected source states h̄_s
    encoder_hidden_dim: int | None = None  # per direction of the bidirectional encoder; None -> N // 2
    attention: str = "global"  # "global" (Section 3.1), "local-m" or "local-p" (Section 3.2)
    score: str = "general"  # "dot", "general", "concat" (eq. 8) or "location" (eq. 9)
    input_feeding: bool = True  # feed h̃_{t-1} to the decoder with the previous word (Section 3.3)
    window: int = 10  # W (the paper's D): local attention looks at [p_t - W, p_t + W]; the paper uses 10
    max_source_len: int = 64  # M: the location score's W_a has one row per source position
    concat_dim: int | None = None  # hidden size of the concat score; None -> N
    position_dim: int | None = None  # P: hidden size of local-p's W_p (eq. 10); None -> N
    dropout: float = 0.0  # on the embeddings and on h̃_t before the output layer (the paper uses 0.2)

    def __post_init__(self) -> None:
        if self.attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {self.attention!r}; choose one of {ATTENTIONS}")
        if self.score not in SCORE_NAMES:
            raise ValueError(f"unknown score {self.score!r}; choose one of {SCORE_NAMES}")
        for name in ("embed_dim", "hidden_dim", "window", "max_source_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("encoder_hidden_dim", "concat_dim", "position_dim"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 or None, got {getattr(self, name)}")
        if self.encoder_hidden_dim is None and self.hidden_dim < 2:
            raise ValueError("hidden_dim must be at least 2 when encoder_hidden_dim is None (it is N // 2)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")

    @classmethod
    def tiny(cls, **overrides) -> LuongConfig:
        """For tests: E = 6, N = 8, W = 2, M = 12 (about 1,300 to 1,500 parameters with vocabularies of 11 and 13)."""
        return replace(cls(embed_dim=6, hidden_dim=8, window=2, max_source_len=12), **overrides)


# --------------------------------------------------------------------------- the pieces, as functions
def _check_states(hidden: torch.Tensor, keys: torch.Tensor) -> None:
    if hidden.dim() != 2:
        raise ValueError(f"decoder states must be (B, N), got shape {tuple(hidden.shape)}")
    if keys.dim() != 3 or keys.shape[0] != hidden.shape[0]:
        raise ValueError(f"source states must be (B, S, N) with B = {hidden.shape[0]}, got {tuple(keys.shape)}")


def _check_lengths(src_lens: torch.Tensor, batch: int, num_positions: int) -> None:
    if src_lens.shape != (batch,):
        raise ValueError(f"src_lens must be (B,) = ({batch},), got shape {tuple(src_lens.shape)}")
    if src_lens.numel() and (int(src_lens.min()) < 1 or int(src_lens.max()) > num_positions):
        raise ValueError(f"source lengths must lie in [1, {num_positions}], got {src_lens.tolist()}")


def location_score(hidden: torch.Tensor, weight: torch.Tensor, num_positions: int) -> torch.Tensor:
    """Location-based scores ``W_a h_t`` of eq. (9), ``a_t = softmax(W_a h_t)`` (arXiv:1508.04025).

    The score of a position depends on the decoder state only, not on the source word there. ``W_a``
    has one row per source position up to M; a batch of S ≤ M positions uses its first S rows.
    hidden (B, N), weight (M, N) → scores (B, S) with S = ``num_positions``.
    """
    if hidden.dim() != 2:
        raise ValueError(f"decoder states must be (B, N), got shape {tuple(hidden.shape)}")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[1]:
        raise ValueError(f"weight must be (M, N) with N = {hidden.shape[1]}, got {tuple(weight.shape)}")
    if not 1 <= num_positions <= weight.shape[0]:
        raise ValueError(f"the location score covers 1 to {weight.shape[0]} source positions (max_source_len), "
                         f"got {num_positions}")
    return hidden @ weight[:num_positions].T  # (B, N) @ (N, S) -> (B, S)


def predicted_position(hidden: torch.Tensor, w_p: torch.Tensor, v_p: torch.Tensor,
                       src_lens: torch.Tensor) -> torch.Tensor:
    """Local-p's aligned position ``p_t = S · sigmoid(v_pᵀ tanh(W_p h_t))``, eq. (10) (arXiv:1508.04025).

    S is each example's own source length (tokens + EOS), not the padded length, so p_t ∈ [0, S].
    hidden (B, N), w_p (P, N), v_p (P,), src_lens (B,) → p_t (B,).
    """
    if hidden.dim() != 2:
        raise ValueError(f"decoder states must be (B, N), got shape {tuple(hidden.shape)}")
    if w_p.dim() != 2 or w_p.shape[1] != hidden.shape[1] or v_p.shape != (w_p.shape[0],):
        raise ValueError(f"w_p must be (P, N) with N = {hidden.shape[1]} and v_p (P,), "
                         f"got {tuple(w_p.shape)} and {tuple(v_p.shape)}")
    if src_lens.shape != (hidden.shape[0],):
        raise ValueError(f"src_lens must be (B,) = ({hidden.shape[0]},), got shape {tuple(src_lens.shape)}")
    features = torch.tanh(hidden @ w_p.T)  # (B, P)
    return src_lens.to(hidden.dtype) * torch.sigmoid(features @ v_p)  # (B,)


def window_mask(centres: torch.Tensor, src_lens: torch.Tensor, num_positions: int,
                half_width: int) -> torch.Tensor:
    """Positions s of the window ``[p_t − D, p_t + D]`` that lie inside the sentence (Section 3.2).

    centres p_t (B,) (integers for local-m, reals for local-p), src_lens (B,), S = ``num_positions``,
    W = ``half_width`` → bool mask (B, S), True where ``|s − p_t| ≤ W`` and ``s < src_len``.
    """
    if centres.dim() != 1:
        raise ValueError(f"centres must be (B,), got shape {tuple(centres.shape)}")
    _check_lengths(src_lens, centres.shape[0], num_positions)
    if half_width < 0:
        raise ValueError(f"the half width D must be >= 0, got {half_width}")
    dtype = centres.dtype if centres.is_floating_point() else torch.get_default_dtype()
    positions = torch.arange(num_positions, device=centres.device, dtype=dtype)  # (S,)
    distance = positions - centres.to(dtype).unsqueeze(-1)  # (S,) - (B, 1) -> (B, S)
    inside = positions < src_lens.to(centres.device).unsqueeze(-1)  # (B, S)
    return (distance.abs() <= half_width) & inside  # (B, S)


def gaussian_window(centres: torch.Tensor, num_positions: int, half_width: int) -> torch.Tensor:
    """Local-p's Gaussian ``exp(−(s − p_t)² / (2σ²))`` with σ = D / 2, the factor of eq. (11).

    centres p_t (B,) float, S = ``num_positions``, W = ``half_width`` → factors (B, S) in (0, 1].
    It is differentiable in p_t: this is how eq. (10)'s W_p and v_p learn.
    """
    if centres.dim() != 1 or not centres.is_floating_point():
        raise ValueError(f"centres must be a float tensor (B,), got {centres.dtype} of shape {tuple(centres.shape)}")
    if half_width < 1:
        raise ValueError(f"the Gaussian needs a half width D >= 1 (σ = D / 2), got {half_width}")
    sigma = half_width / 2
    positions = torch.arange(num_positions, device=centres.device, dtype=centres.dtype)  # (S,)
    distance = positions - centres.unsqueeze(-1)  # (B, S)
    return torch.exp(-distance.square() / (2 * sigma**2))  # (B, S)


def local_weights(scores: torch.Tensor, centres: torch.Tensor, src_lens: torch.Tensor, half_width: int,
                  gaussian: bool) -> torch.Tensor:
    """Local attention weights: eq. (7) over the window, times eq. (11)'s Gaussian for local-p.

    scores (B, S), centres p_t (B,), src_lens (B,), W = ``half_width``; ``gaussian`` False for
    local-m (rows sum to 1, or to 0 when the window holds no position of the sentence), True for
    local-p (rows sum to at most 1). Positions outside the window or the sentence get exactly 0.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be (B, S), got shape {tuple(scores.shape)}")
    if centres.shape != (scores.shape[0],):
        raise ValueError(f"centres must be (B,) = ({scores.shape[0]},), got shape {tuple(centres.shape)}")
    keep = window_mask(centres, src_lens, scores.shape[1], half_width)  # (B, S)
    weights = masked_softmax(scores, keep)  # (B, S), eq. (7) inside the window
    if gaussian:
        weights = weights * gaussian_window(centres.to(scores.dtype), scores.shape[1], half_width)  # eq. (11)
    return weights


def attentional_hidden(context: torch.Tensor, hidden: torch.Tensor, w_c: torch.Tensor) -> torch.Tensor:
    """The attentional hidden state ``h̃_t = tanh(W_c [c_t; h_t])``, eq. (5) (arXiv:1508.04025).

    context c_t (B, Dc), hidden h_t (B, N), w_c (Ho, Dc + N) → h̃_t (B, Ho).
    """
    if context.dim() != 2 or hidden.dim() != 2 or context.shape[0] != hidden.shape[0]:
        raise ValueError(f"context and hidden must be (B, Dc) and (B, N), got {tuple(context.shape)} "
                         f"and {tuple(hidden.shape)}")
    if w_c.dim() != 2 or w_c.shape[1] != context.shape[1] + hidden.shape[1]:
        raise ValueError(f"w_c must be (Ho, Dc + N) = (Ho, {context.shape[1] + hidden.shape[1]}), "
                         f"got {tuple(w_c.shape)}")
    joined = torch.cat([context, hidden], dim=-1)  # (B, Dc + N), the order [c_t; h_t] of eq. (5)
    return torch.tanh(joined @ w_c.T)  # (B, Ho)


# --------------------------------------------------------------------------- the attention layer
class LuongAttention(nn.Module):
    """Global or local attention of the decoder state h_t over the source states h̄_s (Section 3).

    forward(hidden h_t (B, N), keys h̄_s (B, S, N), src_lens (B,), step t) → context c_t (B, N) and
    weights a_t (B, S). ``step`` is the 0-based decoder step, local-m's centre p_t = t.
    """

    def __init__(self, config: LuongConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden_dim
        if config.score == "location":
            self.location = nn.Parameter(torch.empty(config.max_source_len, h))  # W_a (M, N), eq. (9)
            _init_uniform(self.location, h)
        else:  # eq. (8); "concat" v_aᵀ tanh(W_a [h_t; h̄_s]) is the additive score v_aᵀ tanh(W_q h_t + W_k h̄_s)
            name = "additive" if config.score == "concat" else config.score
            self.score = make_score(name, h, h, hidden_dim=config.concat_dim or h)
        if config.attention == "local-p":
            p = config.position_dim or h
            self.w_p = nn.Parameter(torch.empty(p, h))  # W_p (P, N), eq. (10)
            self.v_p = nn.Parameter(torch.empty(p))  # v_p (P,)
            _init_uniform(self.w_p, h)
            _init_uniform(self.v_p, p)

    def scores(self, hidden: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """score(h_t, h̄_s) for every source position: hidden (B, N), keys (B, S, N) → (B, S)."""
        if self.config.score == "location":
            return location_score(hidden, self.location, keys.shape[1])  # (B, S)
        return self.score(hidden.unsqueeze(1), keys).squeeze(1)  # (B, 1, N) vs (B, S, N) -> (B, S)

    def forward(self, hidden: torch.Tensor, keys: torch.Tensor, src_lens: torch.Tensor,
                step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        _check_states(hidden, keys)
        if hidden.shape[1] != self.config.hidden_dim or keys.shape[2] != self.config.hidden_dim:
            raise ValueError(f"decoder and source states must have N = {self.config.hidden_dim} features, "
                             f"got {tuple(hidden.shape)} and {tuple(keys.shape)}")
        batch, num_positions = keys.shape[:2]
        _check_lengths(src_lens, batch, num_positions)
        scores = self.scores(hidden, keys)  # (B, S)
        d = self.config.window
        if self.config.attention == "global":
            weights = masked_softmax(scores, lengths_to_mask(src_lens, num_positions))  # (B, S), eq. (7)
        elif self.config.attention == "local-m":
            centres = torch.full((batch,), step, device=hidden.device, dtype=hidden.dtype)  # p_t = t, (B,)
            weights = local_weights(scores, centres, src_lens, d, gaussian=False)  # (B, S)
        else:
            centres = predicted_position(hidden, self.w_p, self.v_p, src_lens)  # (B,), eq. (10)
            weights = local_weights(scores, centres, src_lens, d, gaussian=True)  # (B, S), eq. (11)
        context = weighted_sum(weights.unsqueeze(1), keys).squeeze(1)  # (B, 1, S) @ (B, S, N) -> (B, N)
        return context, weights


# --------------------------------------------------------------------------- the translator
class LuongState(NamedTuple):
    """What the decoder carries from one step to the next."""

    keys: torch.Tensor  # h̄_s (B, S, N): the source states, projected to the decoder size
    src_lens: torch.Tensor  # (B,)
    hidden: torch.Tensor  # h_{t-1} (B, N): the GRU state
    feed: torch.Tensor  # h̃_{t-1} (B, N): the attentional state of the previous step (zeros at t = 0)
    step: int  # t: how many target words have been read so far


class LuongTranslator(nn.Module):
    """Encoder–decoder with Luong attention, in the ``encode`` / ``step`` interface of :mod:`solutions.history.seq2seq`.

    One step reads the previous target word y_{t−1} (BOS at first) and, with input feeding, h̃_{t−1}:

        h_t = GRU([emb(y_{t−1}); h̃_{t−1}], h_{t−1})       input feeding, Section 3.3
        a_t, c_t = attention(h_t, h̄)                     eq. (7)–(11)
        h̃_t = tanh(W_c [c_t; h_t])                      eq. (5)
        logits = W_s h̃_t + b_s                          eq. (6) before its softmax

    The encoder is :class:`~solutions.history.seq2seq.RNNEncoder`; its annotations (B, S, D) are projected to
    the decoder size N (no projection when A = N) and its final state initialises h_0 = tanh(W_0 ·).
    The output layer keeps a bias, which eq. (6) leaves out of its notation.
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, config: LuongConfig | None = None) -> None:
        super().__init__()
        config = config or LuongConfig()
        self.config = config
        h, e = config.hidden_dim, config.embed_dim
        enc_h = config.encoder_hidden_dim or h // 2
        self.encoder = RNNEncoder(src_vocab_size, e, enc_h, bidirectional=True, dropout=config.dropout)
        a = self.encoder.output_dim
        # annotations (B, S, D) -> source states h̄_s (B, S, N)
        self.bridge = nn.Identity() if a == h else nn.Linear(a, h, bias=False)
        self.init_state = nn.Linear(a, h)  # final encoder state (B, D) -> h_0 (B, N)
        self.embedding = nn.Embedding(tgt_vocab_size, e, padding_idx=Vocab.pad_id)
        self.cell = nn.GRUCell(e + h if config.input_feeding else e, h)
        self.attention = LuongAttention(config)
        self.w_c = nn.Linear(2 * h, h, bias=False)  # W_c of eq. (5), acting on [c_t; h_t]
        self.w_s = nn.Linear(h, tgt_vocab_size)  # W_s of eq. (6)
        self.dropout = nn.Dropout(config.dropout)

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> LuongState:
        """Read the source: src (B, S) token ids with EOS, src_lens (B,) → the decoder's first state."""
        if self.config.score == "location" and src.shape[1] > self.config.max_source_len:
            raise ValueError(f"the location score covers {self.config.max_source_len} source positions "
                             f"(max_source_len) but the batch has {src.shape[1]}")
        annotations, final = self.encoder(src, src_lens)  # (B, S, D), (B, D)
        keys = self.bridge(annotations)  # (B, S, N)
        hidden = torch.tanh(self.init_state(final))  # (B, N)
        return LuongState(keys, src_lens, hidden, torch.zeros_like(hidden), 0)

    def step(self, prev_tokens: torch.Tensor, state: LuongState) -> tuple[torch.Tensor, torch.Tensor, LuongState]:
        """One decoder step: prev_tokens (B,) → logits (B, V), weights a_t (B, S), the next state."""
        if prev_tokens.shape != (state.hidden.shape[0],):
            raise ValueError(f"prev_tokens must be (B,) = ({state.hidden.shape[0]},), got {tuple(prev_tokens.shape)}")
        inputs = self.dropout(self.embedding(prev_tokens))  # (B, E)
        if self.config.input_feeding:
            inputs = torch.cat([inputs, state.feed], dim=-1)  # (B, E + N): Section 3.3
        hidden = self.cell(inputs, state.hidden)  # h_t (B, N)
        context, weights = self.attention(hidden, state.keys, state.src_lens, state.step)  # (B, N), (B, S)
        attentional = attentional_hidden(context, hidden, self.w_c.weight)  # h̃_t (B, N), eq. (5)
        logits = self.w_s(self.dropout(attentional))  # (B, V), eq. (6)
        return logits, weights, LuongState(state.keys, state.src_lens, hidden, attentional, state.step + 1)
