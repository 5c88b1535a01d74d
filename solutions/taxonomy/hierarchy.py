"""Attention by hierarchy: in depth (stacked attention layers that compose) and over the structure of a
document (word → sentence → document).

**Depth.** An attention-only Transformer (Elhage et al. 2021; Olsson et al. 2022, arXiv:2209.11895): token and
position embeddings, L layers of causal multi-head self-attention added to a residual stream, an unembedding,

    x_0 = W_E t + p,      x_l = x_{l-1} + Σ_h h_{l,h}(x_{l-1}),      logits = W_U x_L,

with no MLPs and no layer norm, so whatever the model computes is attention composed with attention. An
*induction head* completes "[A][B] … [A] → [B]": it needs a head of an earlier layer that writes into each
position the token before it (a *previous-token head*), whose output the induction head's keys read (K-composition),
so one layer cannot do it and two can. :func:`previous_token_score` and :func:`induction_score` measure how much
a head does each.

**Structure.** The hierarchical attention network of Yang et al. 2016 (HAN, NAACL, "Hierarchical Attention
Networks for Document Classification"): a word encoder (a bidirectional GRU, whose cell is their eqs. 1–4),
word attention pooling into sentence vectors (eqs. 5–7), a sentence encoder and sentence attention pooling into
a document vector (eqs. 8–10), then a softmax classifier (eq. 11) trained by cross-entropy (eq. 12).
Each pooling is attention with one learned query, the *context vector* u (the structured self-attention of
Lin et al. 2017, arXiv:1703.03130, with r = 1):

    u_t = tanh(W h_t + b),      α_t = exp(u_tᵀ u) / Σ_t' exp(u_t'ᵀ u),      s = Σ_t α_t h_t.

``pooling="average"`` replaces the scores by a constant, so α_t = 1 / (number of real positions): the masked
mean, Yang et al.'s HN-AVE. :class:`FlatAttentionNetwork` pools the words of the whole document in one step
(one level). Every pooling runs the course's :func:`~solutions.attention.attention`.

Shape letters (see :mod:`solutions`): B batch, T positions, D model size, H heads, L layers, V vocabulary;
here also S sentences per document, W words per sentence, E embedding size, N GRU size per direction,
A attention size (of u), C classes.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import MultiHeadAttention, attention
from ..attention.shapes import broadcast_shapes

__all__ = [
    "AttentionOnlyConfig", "AttentionOnlyTransformer", "induction_loss", "induction_accuracy",
    "previous_token_score", "induction_score",
    "AttentionPooling", "HANConfig", "HierarchicalAttentionNetwork", "FlatAttentionNetwork",
    "document_loss", "document_accuracy", "planted_sentence_scores",
]


# ============================================================================== depth
@dataclass
class AttentionOnlyConfig:
    vocab_size: int = 24   # V
    max_len: int = 24      # the longest sequence (learned position embeddings)
    d_model: int = 32      # D, the width of the residual stream
    num_heads: int = 2     # H per layer
    num_layers: int = 2    # L

    @classmethod
    def tiny(cls, **overrides) -> AttentionOnlyConfig:
        return replace(cls(vocab_size=8, max_len=10, d_model=8, num_heads=2, num_layers=2), **overrides)


class AttentionOnlyTransformer(nn.Module):
    """Embeddings, L residual layers of causal multi-head self-attention, an unembedding; no MLP, no LayerNorm.

    ``forward(tokens (B, T))`` returns ``(logits (B, T, V), weights)`` with ``weights`` a list of L tensors
    (B, H, T, T), the attention of every head of every layer.
    """

    def __init__(self, config: AttentionOnlyConfig) -> None:
        super().__init__()
        self.config = config
        D = config.d_model
        self.embed = nn.Embedding(config.vocab_size, D)       # W_E
        self.position = nn.Embedding(config.max_len, D)       # p, learned
        self.layers = nn.ModuleList(MultiHeadAttention(D, config.num_heads) for _ in range(config.num_layers))
        self.unembed = nn.Linear(D, config.vocab_size)        # W_U

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if tokens.dim() != 2 or tokens.shape[1] > self.config.max_len:
            raise ValueError(f"tokens must be (B, T) with T <= max_len = {self.config.max_len}, got {tuple(tokens.shape)}")
        B, T = tokens.shape
        x = self.embed(tokens) + self.position(torch.arange(T, device=tokens.device))  # (B, T, D)
        weights = []
        for layer in self.layers:
            out, w = layer(x, x, x, is_causal=True, average_weights=False)  # (B, T, D), (B, H, T, T)
            x = x + out  # the residual stream: every head adds its output
            weights.append(w)
        return self.unembed(x), weights  # (B, T, V)


def induction_loss(model: AttentionOnlyTransformer, batch) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of the next token at the scored positions of an :class:`~solutions.data.induction.InductionData` batch."""
    logits, _ = model(batch.tokens)  # (B, T, V)
    loss = F.cross_entropy(logits[batch.scored], batch.targets[batch.scored])
    return loss, {"size": int(batch.scored.sum())}


def induction_accuracy(model: AttentionOnlyTransformer, data, batch_size: int = 512) -> float:
    """Fraction of the scored positions whose next token the model predicts (greedy)."""
    hits = total = 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in data.batches(batch_size):
            logits, _ = model(batch.tokens)
            hits += int((logits.argmax(-1) == batch.targets)[batch.scored].sum())
            total += int(batch.scored.sum())
    model.train(was_training)
    return hits / max(total, 1)


def previous_token_score(weights: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
    """(H,) the mean weight each head puts on the previous position, over the query positions 1 … T−1, or
    over those of them that ``where`` (B, T) bool selects (e.g. the first copy of the segment).

    ``weights`` (B, H, T, T). A perfect previous-token head scores 1.
    """
    if weights.dim() != 4 or weights.shape[-1] != weights.shape[-2] or weights.shape[-1] < 2:
        raise ValueError(f"weights must be (B, H, T, T) with T >= 2, got {tuple(weights.shape)}")
    previous = weights.diagonal(offset=-1, dim1=-2, dim2=-1)  # (B, H, T-1): w[t, t-1] for t = 1 .. T-1
    if where is None:
        return previous.mean(dim=(0, 2))
    if where.shape != (weights.shape[0], weights.shape[-1]):
        raise ValueError(f"where must be (B, T) = {(weights.shape[0], weights.shape[-1])}, got {tuple(where.shape)}")
    kept = where[:, None, 1:].to(previous.dtype)  # (B, 1, T-1): the selected queries t >= 1
    return (previous * kept).sum(dim=(0, 2)) / kept.sum()


def induction_score(weights: torch.Tensor, batch) -> torch.Tensor:
    """(H,) the mean weight each head puts, at a scored position t = n + i of the repeat, on position i + 1:
    the token that *followed* the earlier occurrence of the current token. A perfect induction head scores 1.

    ``weights`` (B, H, T, T) for the sequences of ``batch`` (an ``InductionData``).
    """
    B, H, T, _ = weights.shape
    source = torch.arange(T, device=weights.device) - batch.segment[:, None] + 1  # (B, T): i + 1 for t = n + i
    picked = weights.gather(-1, source.clamp(0, T - 1)[:, None, :, None].expand(B, H, T, 1))[..., 0]  # (B, H, T)
    scored = batch.scored[:, None, :].expand(B, H, T)  # (B, H, T)
    return (picked * scored).sum(dim=(0, 2)) / scored[:, 0].sum()


# ============================================================================== structure
def _constant_score(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """Scores of 0 for every key: the softmax then gives every real key the same weight (the masked mean)."""
    return query.new_zeros(broadcast_shapes(query.shape[:-2], key.shape[:-2]) + (query.shape[-2], key.shape[-2]))


class AttentionPooling(nn.Module):
    """``u_t = tanh(W h_t + b)``, ``α_t = softmax_t(u_tᵀ u)``, ``s = Σ_t α_t h_t`` — Yang et al. 2016, eqs. 5–7 / 8–10.

    ``forward(h (..., T, D), mask (..., T) bool True = a real position)`` returns
    ``(pooled (..., D), weights (..., T))``. With ``average=True`` every real position gets the same weight
    (the masked mean). A sequence with no real position pools to zeros with zero weights.
    """

    def __init__(self, dim: int, attention_size: int, average: bool = False) -> None:
        super().__init__()
        self.average = average
        self.proj = nn.Linear(dim, attention_size)                     # W, b
        self.context = nn.Parameter(torch.randn(attention_size) * 0.1)  # u, the learned query

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if mask is not None and mask.shape != h.shape[:-1]:
            raise ValueError(f"mask must be h's shape without the features, {tuple(h.shape[:-1])}, "
                             f"got {tuple(mask.shape)}")
        keys = torch.tanh(self.proj(h))  # (..., T, A): u_t
        query = self.context.to(h.dtype).expand(*h.shape[:-2], 1, keys.shape[-1])  # (..., 1, A): u
        keep = None if mask is None else mask.unsqueeze(-2)  # (..., 1, T)
        score = _constant_score if self.average else "dot"
        pooled, weights = attention(query, keys, h, score, keep)  # (..., 1, D), (..., 1, T)
        return pooled.squeeze(-2), weights.squeeze(-2)  # (..., D), (..., T)


@dataclass
class HANConfig:
    vocab_size: int = 40         # V
    num_classes: int = 4         # C
    embed_dim: int = 16          # E
    hidden_size: int = 16        # N per direction (the encoders' outputs have 2N features)
    attention_size: int = 16     # A, the size of u_t and of the context vector
    encoder: str = "gru"         # "gru": bidirectional GRUs as Yang et al.; "none": embeddings pooled directly
    pooling: str = "attention"   # "attention" (HN-ATT) or "average" (HN-AVE), at both levels

    @classmethod
    def tiny(cls, **overrides) -> HANConfig:
        return replace(cls(vocab_size=12, num_classes=3, embed_dim=4, hidden_size=3, attention_size=5), **overrides)

    def __post_init__(self) -> None:
        if self.encoder not in ("gru", "none"):
            raise ValueError(f"encoder must be 'gru' or 'none', got {self.encoder!r}")
        if self.pooling not in ("attention", "average"):
            raise ValueError(f"pooling must be 'attention' or 'average', got {self.pooling!r}")


class _Encoder(nn.Module):
    """A bidirectional GRU over padded sequences (Yang et al. eqs. 2–4), or nothing (``kind="none"``)."""

    def __init__(self, kind: str, in_size: int, hidden_size: int) -> None:
        super().__init__()
        self.gru = nn.GRU(in_size, hidden_size, batch_first=True, bidirectional=True) if kind == "gru" else None
        self.out_size = 2 * hidden_size if kind == "gru" else in_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.gru is None:
            return x
        lead, (T, _) = x.shape[:-2], x.shape[-2:]
        flat = x.reshape(-1, T, x.shape[-1])  # (B', T, in)
        packed = nn.utils.rnn.pack_padded_sequence(flat, lengths.reshape(-1).clamp(min=1).cpu(), batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)  # (B', T, 2N)
        return out.reshape(*lead, T, self.out_size)


class HierarchicalAttentionNetwork(nn.Module):
    """HAN (Yang et al. 2016): words → sentence vectors → document vector → class scores.

    ``forward(words (B, S, W), sentence_lengths (B, S))`` returns ``(logits (B, C), word_weights (B, S, W),
    sentence_weights (B, S))``; padding words and padding sentences (length 0) get weight 0.
    """

    def __init__(self, config: HANConfig) -> None:
        super().__init__()
        self.config = config
        average = config.pooling == "average"
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=0)
        self.word_encoder = _Encoder(config.encoder, config.embed_dim, config.hidden_size)
        self.word_pool = AttentionPooling(self.word_encoder.out_size, config.attention_size, average)
        self.sentence_encoder = _Encoder(config.encoder, self.word_encoder.out_size, config.hidden_size)
        self.sentence_pool = AttentionPooling(self.sentence_encoder.out_size, config.attention_size, average)
        self.classifier = nn.Linear(self.sentence_encoder.out_size, config.num_classes)

    def forward(self, words: torch.Tensor,
                sentence_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        _check_documents(words, sentence_lengths)
        B, S, W = words.shape
        word_mask = torch.arange(W, device=words.device) < sentence_lengths[..., None]  # (B, S, W)
        sentence_mask = sentence_lengths > 0  # (B, S)
        h = self.word_encoder(self.embed(words), sentence_lengths)  # (B, S, W, 2N): h_it
        s, word_weights = self.word_pool(h, word_mask)  # (B, S, 2N): s_i,  (B, S, W): α_it
        hs = self.sentence_encoder(s, sentence_mask.sum(-1))  # (B, S, 2N): h_i
        v, sentence_weights = self.sentence_pool(hs, sentence_mask)  # (B, 2N): v,  (B, S): α_i
        return self.classifier(v), word_weights, sentence_weights  # (B, C)


class FlatAttentionNetwork(nn.Module):
    """One level: the words of the whole document, sentence boundaries dropped, encoded and pooled at once.

    Takes the same ``(words (B, S, W), sentence_lengths (B, S))`` as :class:`HierarchicalAttentionNetwork`;
    returns ``(logits (B, C), weights (B, L))`` over the document's L = Σ lengths words in reading order
    (padded to the longest document).
    """

    def __init__(self, config: HANConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=0)
        self.encoder = _Encoder(config.encoder, config.embed_dim, config.hidden_size)
        self.pool = AttentionPooling(self.encoder.out_size, config.attention_size, config.pooling == "average")
        self.classifier = nn.Linear(self.encoder.out_size, config.num_classes)

    def forward(self, words: torch.Tensor, sentence_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_documents(words, sentence_lengths)
        flat, lengths = flatten_documents(words, sentence_lengths)  # (B, L), (B,)
        mask = torch.arange(flat.shape[1], device=words.device) < lengths[:, None]  # (B, L)
        h = self.encoder(self.embed(flat), lengths)  # (B, L, 2N)
        v, weights = self.pool(h, mask)  # (B, 2N), (B, L)
        return self.classifier(v), weights


def flatten_documents(words: torch.Tensor, sentence_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S, W) padded documents → their words in reading order, (B, L) padded with 0, and the lengths (B,)."""
    B, S, W = words.shape
    real = (torch.arange(W, device=words.device) < sentence_lengths[..., None]).reshape(B, S * W)  # (B, S·W)
    order = torch.argsort((~real).to(torch.uint8), dim=1, stable=True)  # real words first, in reading order
    lengths = real.sum(dim=1)  # (B,)
    L = max(int(lengths.max()), 1) if B else 1
    flat = words.reshape(B, S * W).gather(1, order[:, :L])  # (B, L)
    return flat * (torch.arange(L, device=words.device) < lengths[:, None]), lengths


def _check_documents(words: torch.Tensor, sentence_lengths: torch.Tensor) -> None:
    if words.dim() != 3 or sentence_lengths.shape != words.shape[:2]:
        raise ValueError(f"words must be (B, S, W) and sentence_lengths (B, S); got {tuple(words.shape)} "
                         f"and {tuple(sentence_lengths.shape)}")


def _logits(model: nn.Module, batch) -> torch.Tensor:
    return model(batch.words, batch.sentence_lengths)[0]


def document_loss(model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of the labels of a :class:`~solutions.data.documents.DocumentData` batch (Yang et al. eq. 12)."""
    return F.cross_entropy(_logits(model, batch), batch.labels), {"size": len(batch)}


def document_accuracy(model: nn.Module, data, batch_size: int = 512) -> float:
    """Fraction of the documents whose label the model predicts."""
    hits = 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in data.batches(batch_size):
            hits += int((_logits(model, batch).argmax(-1) == batch.labels).sum())
    model.train(was_training)
    return hits / max(len(data), 1)


def planted_sentence_scores(model: HierarchicalAttentionNetwork, data, batch_size: int = 512) -> dict[str, float]:
    """The sentence attention scored against the planted sentence: how often it is the sentence of largest
    weight (``"top1"``), and the mean weight it gets (``"weight"``); ``"chance"`` is the mean of 1 / S."""
    top1 = weight = 0.0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in data.batches(batch_size):
            _, _, beta = model(batch.words, batch.sentence_lengths)  # (B, S)
            top1 += float((beta.argmax(-1) == batch.planted).sum())
            weight += float(beta.gather(1, batch.planted[:, None]).sum())
    model.train(was_training)
    n = max(len(data), 1)
    return {"top1": top1 / n, "weight": weight / n, "chance": float((1 / data.num_sentences.double()).mean())}
