"""The Transformer encoder–decoder of Vaswani et al. 2017, "Attention Is All You Need" (arXiv:1706.03762).

Built from :mod:`solutions.attention` (eq. (1) and multi-head attention, Section 3.2) plus

* the position-wise feed-forward network, eq. (2):  FFN(x) = max(0, x W_1 + b_1) W_2 + b_2;
* the sinusoidal positional encoding, Section 3.5:
      PE(pos, 2i) = sin(pos / 10000^{2i / d_model}),   PE(pos, 2i+1) = cos(pos / 10000^{2i / d_model});
* residual connections with layer normalisation around every sub-layer, Section 3.1:
      post-LN (the paper):  x ← LayerNorm(x + Sublayer(x))
      pre-LN  (Xiong et al. 2020, arXiv:2002.04745):  x ← x + Sublayer(LayerNorm(x)), plus a final LayerNorm;
* embeddings multiplied by √d_model, Section 3.4, and the learning-rate schedule of eq. (3),
      lrate = d_model^-0.5 · min(step^-0.5, step · warmup^-1.5).

The layers match ``nn.TransformerEncoderLayer`` / ``nn.TransformerDecoderLayer`` (relu, ``norm_first``
False or True) when their weights are copied (tests/test_transformer.py). :class:`Transformer` follows
the ``encode``/``step`` interface of :mod:`solutions.history.seq2seq`, so ``greedy_decode`` and ``evaluate``
work on it; ``step`` keeps the tokens decoded so far and re-runs the decoder stack on all of them
(no key/value cache — fine for short sentences). Training uses the parallel teacher-forced
:meth:`Transformer.forward` (:func:`train_transformer`).

Shape letters:
    B  batch      S  source positions      T  target positions      D  d_model
    H  heads      F  feed-forward size d_ff      V  vocabulary size      L  layers
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import MultiHeadAttention, lengths_to_mask
from ..data import Batch, TranslationData, Vocab
from ..train import fit
from .seq2seq import sequence_loss, stopping_rule, validation_epochs
from ..seeding import or_default

__all__ = [
    "sinusoidal_positional_encoding",
    "PositionalEncoding",
    "PositionwiseFeedForward",
    "EncoderLayer",
    "DecoderLayer",
    "TransformerConfig",
    "TransformerWeights",
    "DecoderState",
    "Transformer",
    "transformer_lr",
    "train_transformer",
]


# ------------------------------------------------------------------------------ positions
def sinusoidal_positional_encoding(num_positions: int, d_model: int, dtype: torch.dtype = torch.float32,
                                   device: torch.device | str | None = None) -> torch.Tensor:
    """(num_positions, d_model) table of Section 3.5: even columns sin, odd columns cos.

    Column pair (2i, 2i+1) is a sinusoid of wavelength 2π · 10000^{2i/d_model}, from 2π to 10000 · 2π.
    """
    if d_model <= 0 or d_model % 2 != 0:
        raise ValueError(f"d_model must be a positive even number (sin/cos pairs), got {d_model}")
    if num_positions < 0:
        raise ValueError(f"num_positions must be >= 0, got {num_positions}")
    pos = torch.arange(num_positions, dtype=torch.float64, device=device).unsqueeze(1)  # (P, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64, device=device)  # (D/2,)
    angles = pos / (10000.0 ** (two_i / d_model))  # (P, 1) / (D/2,) -> (P, D/2)
    table = torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1)  # (P, D/2, 2)
    return table.reshape(num_positions, d_model).to(dtype)  # (P, D/2, 2) -> (P, D): sin, cos, sin, cos, ...


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal table to (B, T, D) inputs, then dropout (Section 5.4 applies it here too)."""

    def __init__(self, d_model: int, max_len: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal_positional_encoding(max_len, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.table.shape[0]:
            raise ValueError(f"the sequence has {x.shape[1]} positions but max_len is {self.table.shape[0]}")
        return self.dropout(x + self.table[: x.shape[1]].to(x.dtype))  # (B, T, D) + (T, D)


# ------------------------------------------------------------------------------ feed-forward
ACTIVATIONS = {"relu": torch.relu, "gelu": F.gelu}
"""The feed-forward nonlinearity by name: ReLU (Vaswani et al., eq. 2) or GELU (BERT, GPT)."""


class PositionwiseFeedForward(nn.Module):
    """``FFN(x) = max(0, x W_1 + b_1) W_2 + b_2``, eq. (2): the same two layers at every position.

    ``activation="gelu"`` replaces max(0, ·) by GELU (Hendrycks & Gimpel 2016, arXiv:1606.08415), as BERT does.
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "relu") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
        self.activation = ACTIVATIONS[activation]
        self.linear1 = nn.Linear(d_model, d_ff)  # W_1, b_1
        self.linear2 = nn.Linear(d_ff, d_model)  # W_2, b_2
        self.dropout = nn.Dropout(dropout)       # inside, as nn.TransformerEncoderLayer does

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))  # (B, T, D) -> (B, T, F) -> (B, T, D)


# ------------------------------------------------------------------------------ layers
class EncoderLayer(nn.Module):
    """Self-attention then feed-forward, each wrapped in a residual connection and LayerNorm (Section 3.1).

    ``forward(x (B, S, D), key_padding_mask (B, S) bool True = real token, attn_mask=None, need_weights=True)``
    returns ``(x (B, S, D), weights (B, H, S, S))``. ``activation`` is the feed-forward's ("gelu" for BERT);
    with ``fused`` and ``need_weights=False`` the attention runs on PyTorch's fused kernel (weights None).
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0,
                 norm_first: bool = False, eps: float = 1e-5, activation: str = "relu", fused: bool = False) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout, fused=fused)
        self.ff = PositionwiseFeedForward(d_model, d_ff, dropout, activation)
        self.norm1 = nn.LayerNorm(d_model, eps=eps)
        self.norm2 = nn.LayerNorm(d_model, eps=eps)
        self.dropout1 = nn.Dropout(dropout)  # residual dropout, Section 5.4
        self.dropout2 = nn.Dropout(dropout)

    def _sa(self, x, key_padding_mask, attn_mask, need_weights):
        out, weights = self.self_attn(x, x, x, key_padding_mask=key_padding_mask, attn_mask=attn_mask,
                                      average_weights=False, need_weights=need_weights)
        return self.dropout1(out), weights

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None,
                need_weights: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.norm_first:  # pre-LN: x + Sublayer(LayerNorm(x))
            out, weights = self._sa(self.norm1(x), key_padding_mask, attn_mask, need_weights)
            x = x + out
            x = x + self.dropout2(self.ff(self.norm2(x)))
        else:  # post-LN, the paper: LayerNorm(x + Sublayer(x))
            out, weights = self._sa(x, key_padding_mask, attn_mask, need_weights)
            x = self.norm1(x + out)
            x = self.norm2(x + self.dropout2(self.ff(x)))
        return x, weights


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention over the encoder output ("memory"), feed-forward (Section 3.1).

    ``forward(x (B, T, D), memory (B, S, D), memory_key_padding_mask (B, S) True = real token,
    tgt_mask=None, tgt_key_padding_mask=None, causal=True)`` returns ``(x, self_weights (B, H, T, T),
    cross_weights (B, H, T, S))``. With ``causal`` position t attends to target positions ≤ t only.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0,
                 norm_first: bool = False, eps: float = 1e-5, activation: str = "relu", fused: bool = False) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout, fused=fused)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout, fused=fused)
        self.ff = PositionwiseFeedForward(d_model, d_ff, dropout, activation)
        self.norm1 = nn.LayerNorm(d_model, eps=eps)
        self.norm2 = nn.LayerNorm(d_model, eps=eps)
        self.norm3 = nn.LayerNorm(d_model, eps=eps)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_key_padding_mask: torch.Tensor | None = None,
                tgt_mask: torch.Tensor | None = None, tgt_key_padding_mask: torch.Tensor | None = None,
                causal: bool = True, need_weights: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        def self_block(h):
            out, w = self.self_attn(h, h, h, key_padding_mask=tgt_key_padding_mask, attn_mask=tgt_mask,
                                    is_causal=causal, average_weights=False, need_weights=need_weights)
            return self.dropout1(out), w

        def cross_block(h):
            out, w = self.cross_attn(h, memory, memory, key_padding_mask=memory_key_padding_mask,
                                     average_weights=False, need_weights=need_weights)
            return self.dropout2(out), w

        if self.norm_first:
            out, self_w = self_block(self.norm1(x))
            x = x + out
            out, cross_w = cross_block(self.norm2(x))
            x = x + out
            x = x + self.dropout3(self.ff(self.norm3(x)))
        else:
            out, self_w = self_block(x)
            x = self.norm1(x + out)
            out, cross_w = cross_block(x)
            x = self.norm2(x + out)
            x = self.norm3(x + self.dropout3(self.ff(x)))
        return x, self_w, cross_w


# ------------------------------------------------------------------------------ the model
@dataclass
class TransformerConfig:
    """Sizes of a :class:`Transformer`; the defaults are the paper's base model (Table 3, "base")."""

    d_model: int = 512        # D, width of every residual stream
    num_heads: int = 8        # H; each head has d_k = d_v = D / H
    d_ff: int = 2048          # F, inner size of the feed-forward network, eq. (2)
    num_encoder_layers: int = 6   # N for the encoder
    num_decoder_layers: int = 6   # N for the decoder
    dropout: float = 0.1      # P_drop: residual, embedding and attention dropout
    norm_first: bool = False  # False = post-LN (the paper); True = pre-LN (Xiong et al. 2020)
    max_len: int = 256        # longest sequence the positional table covers
    tie_target_embeddings: bool = True  # share the target embedding with the output layer (Section 3.4)
    fused: bool = False       # attention on F.scaled_dot_product_attention when no weights are asked for

    @classmethod
    def tiny(cls, **overrides) -> TransformerConfig:
        """A model small enough for unit tests: D = 16, H = 2, F = 32, one layer each, no dropout."""
        return replace(cls(d_model=16, num_heads=2, d_ff=32, num_encoder_layers=1, num_decoder_layers=1,
                           dropout=0.0, max_len=64), **overrides)

    @classmethod
    def small(cls, **overrides) -> TransformerConfig:
        """The chapter's model for the dates corpus: D = 64, H = 4, F = 128, two layers each, no dropout
        (thousands of noise-free examples for a few hundred parameters per token type)."""
        return replace(cls(d_model=64, num_heads=4, d_ff=128, num_encoder_layers=2, num_decoder_layers=2,
                           dropout=0.0, max_len=64), **overrides)


@dataclass
class TransformerWeights:
    """Per-layer attention weights of one forward pass, each per head."""

    encoder: list[torch.Tensor] = field(default_factory=list)        # L × (B, H, S, S)
    decoder_self: list[torch.Tensor] = field(default_factory=list)   # L × (B, H, T, T)
    cross: list[torch.Tensor] = field(default_factory=list)          # L × (B, H, T, S)


class DecoderState(NamedTuple):
    """What :meth:`Transformer.step` carries from one step to the next."""

    memory: torch.Tensor        # (B, S, D) encoder output
    memory_keep: torch.Tensor   # (B, S) True at real source positions
    tokens: torch.Tensor        # (B, t) the decoder inputs so far, BOS first


class Transformer(nn.Module):
    """Encoder–decoder Transformer (Vaswani et al. 2017, Figure 1) for token-to-token translation.

    ``forward(src (B, S), src_lens (B,), tgt_in (B, T))`` → logits (B, T, V) and
    :class:`TransformerWeights`; ``encode`` / ``step`` serve :func:`solutions.history.seq2seq.greedy_decode`.
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, config: TransformerConfig | None = None,
                 pad_id: int = Vocab.pad_id) -> None:
        super().__init__()
        self.config = config = config or TransformerConfig()
        if config.d_model % config.num_heads != 0:
            raise ValueError(f"d_model = {config.d_model} must be divisible by num_heads = {config.num_heads}")
        self.pad_id = pad_id
        D = config.d_model
        self.src_embed = nn.Embedding(src_vocab_size, D, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, D, padding_idx=pad_id)
        self.positions = PositionalEncoding(D, config.max_len, config.dropout)
        layer_args = dict(d_model=D, num_heads=config.num_heads, d_ff=config.d_ff, dropout=config.dropout,
                          norm_first=config.norm_first, fused=config.fused)
        self.encoder_layers = nn.ModuleList(EncoderLayer(**layer_args) for _ in range(config.num_encoder_layers))
        self.decoder_layers = nn.ModuleList(DecoderLayer(**layer_args) for _ in range(config.num_decoder_layers))
        # pre-LN leaves the residual stream un-normalised, so a final LayerNorm closes each stack
        self.encoder_norm = nn.LayerNorm(D) if config.norm_first else nn.Identity()
        self.decoder_norm = nn.LayerNorm(D) if config.norm_first else nn.Identity()
        self.output = nn.Linear(D, tgt_vocab_size)
        # embeddings ~ N(0, 1/D), so that after the √D scaling of Section 3.4 they have unit variance
        for emb in (self.src_embed, self.tgt_embed):
            nn.init.normal_(emb.weight, std=D ** -0.5)
            with torch.no_grad():
                emb.weight[pad_id].zero_()
        if config.tie_target_embeddings:
            self.output.weight = self.tgt_embed.weight  # (V, D) shared, Section 3.4

    def _embed(self, embedding: nn.Embedding, tokens: torch.Tensor) -> torch.Tensor:
        return self.positions(embedding(tokens) * math.sqrt(self.config.d_model))  # (B, T) -> (B, T, D)

    def encode_memory(self, src: torch.Tensor, src_lens: torch.Tensor, need_weights: bool = True
                      ) -> tuple[torch.Tensor, torch.Tensor, list]:
        """Encoder output (B, S, D), the source keep-mask (B, S) and each layer's weights (B, H, S, S)."""
        if src.dim() != 2 or src_lens.shape != (src.shape[0],):
            raise ValueError(f"src must be (B, S) and src_lens (B,), got {tuple(src.shape)} and {tuple(src_lens.shape)}")
        keep = lengths_to_mask(src_lens.to(src.device), src.shape[1])  # (B, S)
        x = self._embed(self.src_embed, src)  # (B, S, D)
        weights = []
        for layer in self.encoder_layers:
            x, w = layer(x, key_padding_mask=keep, need_weights=need_weights)
            weights.append(w)
        return self.encoder_norm(x), keep, weights

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, memory_keep: torch.Tensor,
               need_weights: bool = True) -> tuple[torch.Tensor, list, list]:
        """Logits (B, T, V) for every target position at once (causal), with per-layer weights."""
        if tgt_in.dim() != 2 or tgt_in.shape[0] != memory.shape[0]:
            raise ValueError(f"tgt_in must be (B, T) with B = {memory.shape[0]}, got {tuple(tgt_in.shape)}")
        x = self._embed(self.tgt_embed, tgt_in)  # (B, T, D)
        self_weights, cross_weights = [], []
        for layer in self.decoder_layers:
            x, sw, cw = layer(x, memory, memory_key_padding_mask=memory_keep, causal=True, need_weights=need_weights)
            self_weights.append(sw)
            cross_weights.append(cw)
        return self.output(self.decoder_norm(x)), self_weights, cross_weights  # (B, T, V)

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor, need_weights: bool = True
                ) -> tuple[torch.Tensor, TransformerWeights]:
        """Logits (B, T, V) and every layer's weights; with ``need_weights=False`` (training) the weights are
        None and a ``fused`` model runs PyTorch's attention kernel."""
        memory, keep, enc_w = self.encode_memory(src, src_lens, need_weights)
        logits, self_w, cross_w = self.decode(tgt_in, memory, keep, need_weights)
        return logits, TransformerWeights(enc_w, self_w, cross_w)

    # the solutions.history.seq2seq interface -------------------------------------------------------
    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> DecoderState:
        memory, keep, _ = self.encode_memory(src, src_lens)
        empty = torch.empty(src.shape[0], 0, dtype=torch.long, device=src.device)  # (B, 0)
        return DecoderState(memory, keep, empty)

    def step(self, prev_tokens: torch.Tensor, state: DecoderState
             ) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:
        """Append ``prev_tokens`` (B,) and re-run the decoder: logits (B, V) of the next token and the
        last layer's cross-attention of the newest position, averaged over heads (B, S)."""
        tokens = torch.cat([state.tokens, prev_tokens.unsqueeze(1)], dim=1)  # (B, t) -> (B, t+1)
        logits, _, cross = self.decode(tokens, state.memory, state.memory_keep)  # (B, t+1, V)
        weights = cross[-1][:, :, -1].mean(dim=1)  # (B, H, t+1, S) -> (B, H, S) -> (B, S)
        return logits[:, -1], weights, DecoderState(state.memory, state.memory_keep, tokens)


# ------------------------------------------------------------------------------ training
def transformer_lr(step: int, d_model: int, warmup: int = 4000) -> float:
    """Eq. (3): ``d_model^-0.5 · min(step^-0.5, step · warmup^-1.5)`` (step counts from 1)."""
    if step < 1 or warmup < 1:
        raise ValueError(f"step and warmup must be >= 1, got step={step}, warmup={warmup}")
    return d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)


def train_transformer(model: Transformer, data: TranslationData, epochs: int, batch_size: int = 64,
                      lr: float = 1e-3, warmup: int = 200, clip: float = 1.0, seed: int | None = None,
                      progress: bool | None = None, valid: TranslationData | None = None,
                      patience: int | None = None, enough: float | None = None) -> list[dict[str, float]]:
    """Adam(β = 0.9, 0.98) on the teacher-forced cross-entropy, all target positions at once.

    The learning rate follows the shape of eq. (3) — linear warm-up for ``warmup`` steps, then
    decay ∝ step^-0.5 — scaled so that its peak is ``lr``. Batches are shuffled as in
    :func:`solutions.history.seq2seq.train_seq2seq` with the same ``seed``. Returns ``[{"epoch", "loss"}]``,
    with ``"valid_accuracy"``, ``"valid_loss"`` and ``"train_seconds"`` when ``valid`` is given; ``patience``
    and ``enough`` stop early on the validation loss as in :func:`~solutions.history.seq2seq.train_seq2seq`.
    """
    if len(data) == 0:
        raise ValueError("the training data are empty")
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-9)
    d = model.config.d_model
    peak = transformer_lr(warmup, d, warmup)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: transformer_lr(s + 1, d, warmup) / peak)
    order = random.Random(or_default(seed))

    def loss(model: Transformer, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        batch = batch.to(device)
        logits, _ = model(batch.src, batch.src_lens, batch.tgt_in, need_weights=False)  # (B, T, V)
        return sequence_loss(logits, batch.tgt_out), {"size": len(batch.pairs)}

    if patience is not None and valid is None:
        raise ValueError("early stopping (patience) needs validation data: pass valid=")
    parallel = lambda m, b: m(b.src, b.src_lens, b.tgt_in, need_weights=False)[0]  # noqa: E731  (B, T, V)
    return fit(model, lambda epoch: data.batches(batch_size, shuffle=True, seed=order), loss, optimizer,
               epochs=epochs, scheduler=scheduler, clip=clip, steps_per_epoch=-(-len(data) // batch_size),
               progress=progress, after_epoch=validation_epochs(model, valid, parallel) if valid is not None else None,
               early_stopping=stopping_rule(patience, enough=enough))
