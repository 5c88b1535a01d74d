"""Bahdanau attention: RNNsearch, the encoder–decoder that learns to align and translate, and its baseline.

Bahdanau, Cho & Bengio, *Neural machine translation by jointly learning to align and translate*,
ICLR 2015, arXiv:1409.0473. Equation numbers below are the paper's.

The basic encoder–decoder of Cho et al. (2014, arXiv:1406.1078) reads the source into ONE vector c
and generates every target word from it. Bahdanau et al. give the decoder a *different* context
c_i for every target word i, a weighted average of the encoder's annotations h_j:

    p(y_i | y_1, …, y_{i−1}, x) = g(y_{i−1}, s_i, c_i)                  (eq. 4, the output layer)
    s_i = f(s_{i−1}, y_{i−1}, c_i)                                       (eq. 4, a GRU, Appendix A.2.2)
    c_i = Σ_j α_ij h_j                                                   (eq. 5)
    α_ij = exp(e_ij) / Σ_k exp(e_ik),    e_ij = a(s_{i−1}, h_j)           (eq. 6)
    a(s_{i−1}, h_j) = v_aᵀ tanh(W_a s_{i−1} + U_a h_j)                   (Appendix A.1.2)
    s_0 = tanh(W_s h←_1)                                                 (Appendix A.2.2)

The annotations h_j = [h→_j ; h←_j] come from the bidirectional GRU of
:class:`solutions.history.seq2seq.RNNEncoder` (Section 3.2). U_a h_j does not depend on i, so it is computed
once per sentence in :meth:`RNNsearch.encode` (the paper's remark in Appendix A.1.2); each decoder
step then costs one projection of s_{i−1} and a tanh over the source positions.

:class:`RNNsearch` is the attention model and :class:`RNNencdec` the baseline without attention, both
with the same encoder and the interface of :mod:`solutions.history.seq2seq` (``encode``, then ``step`` per
target word), so that ``train_seq2seq``, ``greedy_decode`` and ``evaluate`` work on either.

Simplifications, all small: the output layer g is one hidden layer (maxout of pairs as in the paper,
or tanh) on [s_i ; E y_{i−1} ; c_i] — the main text's eq. (4) uses s_i; Appendix A.2.2 writes s_{i−1}
there. ``nn.GRUCell`` applies the reset gate after the recurrent matrix, r ∘ (U s), where the paper
writes U (r ∘ s) (the cuDNN form of the GRU; the encoder's ``nn.GRU`` does the same). Embeddings and
decoder states are small and there is no dropout by default; the paper trains 620-dimensional
embeddings and 1000 units with SGD/Adadelta on 348M words.

Shape letters:
    B  batch              S  source positions (tokens + EOS)      V  target vocabulary size
    E  embedding size m   N  GRU state size n (each encoder direction, and the decoder)
    D  annotation size 2N A  alignment model size n'               O  output layer size l
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from ..data import Vocab
from ..attention.fusion import weighted_sum
from ..attention.masking import lengths_to_mask, masked_softmax
from ..attention.scores import AdditiveScore
from .seq2seq import RNNEncoder

__all__ = [
    "BahdanauConfig",
    "project_annotations",
    "alignment_energies",
    "additive_attention",
    "initial_state",
    "DeepOutput",
    "AttentionState",
    "RNNsearch",
    "FixedContextState",
    "RNNencdec",
]


@dataclass
class BahdanauConfig:
    """Sizes of :class:`RNNsearch` and :class:`RNNencdec`.

    The comments give the paper's symbol and value (Appendix A.2 and B.2).
    """

    src_vocab: int  # K_x, source vocabulary size (30,000 in the paper)
    tgt_vocab: int  # K_y, target vocabulary size (30,000)
    embed_dim: int = 64  # m, word embedding size (620)
    hidden_dim: int = 64  # n, GRU state size of each encoder direction and of the decoder (1,000)
    align_dim: int = 64  # n', hidden units of the alignment model a (1,000); unused by RNNencdec
    output_dim: int = 64  # l, hidden units of the deep output layer (500 maxout units)
    maxout: bool = True  # maxout over pairs of units (the paper) or tanh in the output layer
    dropout: float = 0.0  # dropout on the source and target embeddings (the paper uses none)

    def __post_init__(self) -> None:
        for name in ("src_vocab", "tgt_vocab", "embed_dim", "hidden_dim", "align_dim", "output_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def tiny(cls, **overrides) -> BahdanauConfig:
        """A few units everywhere, vocabularies of 11 and 13 words: for tests and gradient checks."""
        values = dict(src_vocab=11, tgt_vocab=13, embed_dim=6, hidden_dim=5, align_dim=4, output_dim=3)
        return cls(**{**values, **overrides})


# --------------------------------------------------------------------------- the attention, eqs. (5)-(6)
def project_annotations(score: AdditiveScore, annotations: torch.Tensor) -> torch.Tensor:
    """U_a h_j for every source position, once per sentence (Appendix A.1.2).

    annotations (B, S, D) → (B, S, A), with U_a = ``score.w_key`` (A, D).
    """
    if annotations.dim() != 3 or annotations.shape[-1] != score.key_dim:
        raise ValueError(f"annotations must be (B, S, D) with D = {score.key_dim}, got {tuple(annotations.shape)}")
    return annotations @ score.w_key.T  # (B, S, D) @ (D, A) -> (B, S, A)


def alignment_energies(state: torch.Tensor, projected: torch.Tensor, score: AdditiveScore) -> torch.Tensor:
    """e_ij = a(s_{i−1}, h_j) = v_aᵀ tanh(W_a s_{i−1} + U_a h_j) (eq. 6 with Appendix A.1.2).

    state s_{i−1} (B, N), projected U_a h_j (B, S, A) from :func:`project_annotations` → energies (B, S).
    Equals ``score(state.unsqueeze(1), annotations).squeeze(1)`` without projecting the annotations again.
    """
    if state.dim() != 2 or state.shape[-1] != score.query_dim:
        raise ValueError(f"state must be (B, N) with N = {score.query_dim}, got {tuple(state.shape)}")
    if projected.dim() != 3 or projected.shape[0] != state.shape[0] or projected.shape[-1] != score.hidden_dim:
        raise ValueError(f"projected annotations must be (B, S, A) = ({state.shape[0]}, S, {score.hidden_dim}), "
                         f"got {tuple(projected.shape)}")
    query = state @ score.w_query.T  # (B, N) @ (N, A) -> (B, A): W_a s_{i−1}
    hidden = torch.tanh(query.unsqueeze(1) + projected)  # (B, 1, A) + (B, S, A) -> (B, S, A)
    return hidden @ score.v  # (B, S, A) @ (A,) -> (B, S)


def additive_attention(state: torch.Tensor, annotations: torch.Tensor, projected: torch.Tensor,
                       mask: torch.Tensor, score: AdditiveScore) -> tuple[torch.Tensor, torch.Tensor]:
    """The context c_i = Σ_j α_ij h_j (eq. 5) with α_ij = softmax_j(e_ij) over the real source words (eq. 6).

    state s_{i−1} (B, N), annotations h_j (B, S, D), projected U_a h_j (B, S, A), mask (B, S) bool with
    True at real positions → context (B, D) and weights α_i (B, S), exactly 0 at padding.
    """
    if mask.shape != projected.shape[:2] or annotations.shape[:2] != projected.shape[:2]:
        raise ValueError(f"annotations {tuple(annotations.shape)}, projected annotations {tuple(projected.shape)} "
                         f"and mask {tuple(mask.shape)} must agree on (B, S)")
    energies = alignment_energies(state, projected, score)  # (B, S)
    weights = masked_softmax(energies, mask)  # (B, S)
    context = weighted_sum(weights.unsqueeze(1), annotations).squeeze(1)  # (B, 1, S) @ (B, S, D) -> (B, D)
    return context, weights


def initial_state(annotations: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """s_0 = tanh(W_s h←_1) (Appendix A.2.2): from the backward RNN's state at the FIRST source word.

    The backward RNN reads the sentence right to left, so h←_1 is its last state, a summary of the
    whole sentence (padding lies after the last word, so position 1 is real in every sentence).
    annotations (B, S, 2N) with h←_j in the second half, ``layer`` W_s (with a bias) → s_0 (B, N).
    """
    if annotations.dim() != 3 or annotations.shape[-1] % 2 or annotations.shape[1] < 1:
        raise ValueError(f"annotations must be (B, S, 2N) from a bidirectional encoder, got {tuple(annotations.shape)}")
    half = annotations.shape[-1] // 2
    if layer.in_features != half:
        raise ValueError(f"W_s takes {layer.in_features} features but h←_1 has N = {half} "
                         f"(annotations {tuple(annotations.shape)})")
    backward_first = annotations[:, 0, half:]  # (B, 2N) at j = 1 -> (B, N): h←_1
    return torch.tanh(layer(backward_first))  # (B, N)


# --------------------------------------------------------------------------- the output layer, eq. (4)
class DeepOutput(nn.Module):
    """g(y_{i−1}, s_i, c_i) of eq. (4): one hidden layer, then a linear map to the vocabulary (Appendix A.2.2).

    t̃_i = U_o s_i + V_o E y_{i−1} + C_o c_i (one ``nn.Linear`` on the concatenation), t_i = max over pairs
    of t̃_i (maxout, the paper) or tanh(t̃_i), and logits W_o t_i (B, V).
    """

    def __init__(self, state_dim: int, embed_dim: int, context_dim: int, output_dim: int, vocab_size: int,
                 maxout: bool = True) -> None:
        super().__init__()
        self.maxout = maxout
        self.hidden = nn.Linear(state_dim + embed_dim + context_dim, output_dim * (2 if maxout else 1))
        self.out = nn.Linear(output_dim, vocab_size)

    def forward(self, state: torch.Tensor, embedded: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        pre = self.hidden(torch.cat([state, embedded, context], dim=-1))  # (B, 2O) or (B, O): t̃_i
        if self.maxout:
            t = pre.unflatten(-1, (-1, 2)).amax(dim=-1)  # (B, 2O) -> (B, O, 2) -> (B, O)
        else:
            t = torch.tanh(pre)  # (B, O)
        return self.out(t)  # (B, V)


def _check_step(prev_tokens: torch.Tensor, hidden: torch.Tensor) -> None:
    if prev_tokens.dim() != 1 or prev_tokens.shape[0] != hidden.shape[0]:
        raise ValueError(f"prev_tokens must be (B,) = ({hidden.shape[0]},) token ids, "
                         f"got shape {tuple(prev_tokens.shape)}")


# --------------------------------------------------------------------------- RNNsearch
class AttentionState(NamedTuple):
    """What :class:`RNNsearch` carries from step to step: the sentence, read once, and s_{i−1}."""

    annotations: torch.Tensor  # (B, S, D) h_j
    projected: torch.Tensor  # (B, S, A) U_a h_j
    mask: torch.Tensor  # (B, S) True at real source positions
    hidden: torch.Tensor  # (B, N) the decoder state s_{i−1}


class RNNsearch(nn.Module):
    """The attention model of Bahdanau et al. (2015): bidirectional GRU encoder, attentive GRU decoder.

    ``encode(src (B, S), src_lens (B,))`` returns an :class:`AttentionState` with s_0;
    ``step(prev_tokens (B,), state)`` computes, for target word i,

        α_i, c_i = attention(s_{i−1}, h)          eqs. (5)-(6), Appendix A.1.2
        s_i      = GRU([E y_{i−1} ; c_i], s_{i−1})  eq. (4), Appendix A.2.2
        logits   = g(y_{i−1}, s_i, c_i)           eq. (4)

    and returns ``(logits (B, V), α_i (B, S), state with s_i)``.
    """

    def __init__(self, config: BahdanauConfig) -> None:
        super().__init__()
        self.config = c = config
        self.encoder = RNNEncoder(c.src_vocab, c.embed_dim, c.hidden_dim, bidirectional=True, dropout=c.dropout)
        annotation_dim = self.encoder.output_dim  # D = 2n
        self.init_state = nn.Linear(c.hidden_dim, c.hidden_dim)  # W_s
        self.score = AdditiveScore(c.hidden_dim, annotation_dim, c.align_dim)  # W_a, U_a, v_a
        self.embedding = nn.Embedding(c.tgt_vocab, c.embed_dim, padding_idx=Vocab.pad_id)  # E
        self.dropout = nn.Dropout(c.dropout)
        self.cell = nn.GRUCell(c.embed_dim + annotation_dim, c.hidden_dim)  # f: input [E y_{i−1} ; c_i]
        self.output = DeepOutput(c.hidden_dim, c.embed_dim, annotation_dim, c.output_dim, c.tgt_vocab, c.maxout)

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> AttentionState:
        annotations, _ = self.encoder(src, src_lens)  # (B, S, D), zeros at padding
        mask = lengths_to_mask(src_lens, src.shape[1])  # (B, S)
        projected = project_annotations(self.score, annotations)  # (B, S, A), once per sentence
        return AttentionState(annotations, projected, mask, initial_state(annotations, self.init_state))

    def step(self, prev_tokens: torch.Tensor,
             state: AttentionState) -> tuple[torch.Tensor, torch.Tensor, AttentionState]:
        _check_step(prev_tokens, state.hidden)
        embedded = self.dropout(self.embedding(prev_tokens))  # (B, E)
        context, weights = additive_attention(state.hidden, state.annotations, state.projected, state.mask,
                                              self.score)  # (B, D), (B, S)
        hidden = self.cell(torch.cat([embedded, context], dim=-1), state.hidden)  # (B, N): s_i
        logits = self.output(hidden, embedded, context)  # (B, V)
        return logits, weights, state._replace(hidden=hidden)


# --------------------------------------------------------------------------- RNNencdec
class FixedContextState(NamedTuple):
    """What :class:`RNNencdec` carries: the fixed summary c of the sentence and the decoder state."""

    context: torch.Tensor  # (B, D) c = [h→_{T_x} ; h←_1]
    hidden: torch.Tensor  # (B, N)


class RNNencdec(nn.Module):
    """The encoder–decoder without attention (Cho et al. 2014, arXiv:1406.1078; Bahdanau et al.'s baseline).

    The same bidirectional encoder as :class:`RNNsearch`, but the decoder sees one fixed vector
    c = [h→_{T_x} ; h←_1] (the final states of both directions) at every step:

        s_0 = tanh(W_s c),   s_i = GRU([E y_{i−1} ; c], s_{i−1}),   logits = g(y_{i−1}, s_i, c)

    (Cho et al.'s eqs. for the decoder, with c in place of every c_i). ``step`` returns weights None.
    Bahdanau et al.'s RNNencdec used a unidirectional encoder; a bidirectional one only helps it.
    """

    def __init__(self, config: BahdanauConfig) -> None:
        super().__init__()
        self.config = c = config
        self.encoder = RNNEncoder(c.src_vocab, c.embed_dim, c.hidden_dim, bidirectional=True, dropout=c.dropout)
        summary_dim = self.encoder.output_dim  # D = 2n
        self.init_state = nn.Linear(summary_dim, c.hidden_dim)  # W_s
        self.embedding = nn.Embedding(c.tgt_vocab, c.embed_dim, padding_idx=Vocab.pad_id)
        self.dropout = nn.Dropout(c.dropout)
        self.cell = nn.GRUCell(c.embed_dim + summary_dim, c.hidden_dim)
        self.output = DeepOutput(c.hidden_dim, c.embed_dim, summary_dim, c.output_dim, c.tgt_vocab, c.maxout)

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> FixedContextState:
        _, summary = self.encoder(src, src_lens)  # (B, D): last forward state, first backward state
        return FixedContextState(summary, torch.tanh(self.init_state(summary)))  # c, s_0 (B, N)

    def step(self, prev_tokens: torch.Tensor,
             state: FixedContextState) -> tuple[torch.Tensor, None, FixedContextState]:
        _check_step(prev_tokens, state.hidden)
        embedded = self.dropout(self.embedding(prev_tokens))  # (B, E)
        hidden = self.cell(torch.cat([embedded, state.context], dim=-1), state.hidden)  # (B, N)
        logits = self.output(hidden, embedded, state.context)  # (B, V)
        return logits, None, state._replace(hidden=hidden)
