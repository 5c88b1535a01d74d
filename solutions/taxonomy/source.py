"""Attention by source: where the queries come from (cross vs self), and how many heads ask at once.

Both kinds are eq. (1) of Vaswani et al. 2017 (arXiv:1706.03762) run by the course's
:class:`~solutions.attention.MultiHeadAttention`; only the inputs differ.

* **Cross (general) attention** — the queries come from *outside* the sequence that is read: a decoder
  state over encoder outputs (Bahdanau et al. 2014, Luong et al. 2015), or learned query vectors that
  pool a sequence (the "self-attentive" sentence embedding of Lin et al. 2017, arXiv:1703.03130, eq. 6,
  whose query does not depend on the input):

      CrossAttn(Y, X) = MultiHead(Y, X, X),      Y ∈ R^{Tq × D} from elsewhere, X ∈ R^{Tk × D}.

* **Self-attention** — queries, keys and values are all the same sequence (Cheng et al. 2016,
  arXiv:1601.06733; Vaswani et al. 2017, Section 3.2.3):

      SelfAttn(X) = MultiHead(X, X, X).

  Permuting the positions of X permutes the output the same way (permutation equivariance).

Heads are concatenated (the paper) or averaged: :class:`~solutions.attention.MultiHeadAttention`'s
``combine`` switch.

:class:`AttentionClassifier` puts either kind in a one-layer classifier with the same embedding, read-out
and width, so that the two differ only in the source of their queries.

Shape letters (see :mod:`solutions`): B batch, T positions, Tq queries, Tk keys, D model size,
H heads, F input fields per position, C classes, M learned queries.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import MultiHeadAttention
from ..data.lookups import TokenTask
from ..train import evaluating, fit
from ..seeding import or_default

__all__ = ["SourceConfig", "SelfAttention", "CrossAttention", "LearnedQueries", "AttentionClassifier", "train_lookup",
           "lookup_accuracy", "weight_on_positions"]


class SelfAttention(nn.Module):
    """``SelfAttn(X) = MultiHead(X, X, X)``: every position asks, every position answers.

    ``forward(x, mask=None)``: x (B, T, D); mask bool (B, T), True = a real position.
    Returns ``(output (B, T, D), weights (B, H, T, T))``.
    """

    def __init__(self, d_model: int, num_heads: int = 1, combine: str = "concat") -> None:
        super().__init__()
        self.attention = MultiHeadAttention(d_model, num_heads, combine=combine)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.attention(x, x, x, key_padding_mask=mask, average_weights=False)


class CrossAttention(nn.Module):
    """``CrossAttn(Y, X) = MultiHead(Y, X, X)``: queries from one sequence, keys and values from another.

    ``forward(query, context, mask=None)``: query (B, Tq, D), context (B, Tk, D); mask bool (B, Tk),
    True = a real context position. Returns ``(output (B, Tq, D), weights (B, H, Tq, Tk))``.
    """

    def __init__(self, d_model: int, num_heads: int = 1, combine: str = "concat") -> None:
        super().__init__()
        self.attention = MultiHeadAttention(d_model, num_heads, combine=combine)

    def forward(self, query: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.attention(query, context, context, key_padding_mask=mask, attn_mask=attn_mask,
                              average_weights=False)


class LearnedQueries(nn.Module):
    """Cross-attention from M learned query vectors: the same questions for every input (Lin et al. 2017).

    ``forward(context, mask=None)``: context (B, Tk, D). Returns ``(output (B, M, D), weights (B, H, M, Tk))``.
    """

    def __init__(self, d_model: int, num_heads: int = 1, num_queries: int = 1, combine: str = "concat") -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_queries, d_model) / d_model ** 0.5)  # (M, D)
        self.cross = CrossAttention(d_model, num_heads, combine)

    def forward(self, context: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        query = self.queries.expand(context.shape[0], -1, -1)  # (M, D) -> (B, M, D)
        return self.cross(query, context, mask)


@dataclass
class SourceConfig:
    """A one-layer attention classifier; only ``source`` decides where the queries come from."""

    vocab_sizes: tuple[int, ...] = (32,)  # ids per input field; the field embeddings are summed
    num_classes: int = 2                  # C
    max_len: int | None = None            # learned position embeddings for up to max_len positions; None: none
    d_model: int = 32                     # D, the same for every number of heads
    num_heads: int = 1                    # H; each head works in D / H dimensions
    d_ff: int = 64                        # the read-out MLP's hidden size
    source: str = "self"                  # "self": queries from the input; "cross": learned queries
    num_queries: int = 1                  # M, for source="cross"
    combine: str = "concat"               # how the heads are joined: "concat" or "mean"
    readout: str = "mean"                 # which query outputs are classified: their "mean", or the "last"
    null_slot: bool = True                # one learned extra key/value that a query can attend to for "nothing"
    attend_self: bool = True              # self: may position i attend to itself? False masks the diagonal

    @classmethod
    def tiny(cls, **overrides) -> SourceConfig:
        """A tiny model for tests."""
        return cls(**{"vocab_sizes": (7,), "d_model": 8, "num_heads": 2, "d_ff": 8, **overrides})

    def __post_init__(self) -> None:
        if self.source not in ("self", "cross"):
            raise ValueError(f"source must be 'self' or 'cross', got {self.source!r}")
        if self.readout not in ("mean", "last"):
            raise ValueError(f"readout must be 'mean' or 'last', got {self.readout!r}")
        self.vocab_sizes = tuple(self.vocab_sizes)


class AttentionClassifier(nn.Module):
    """Embed → one attention layer (self or cross) → residual, LayerNorm and MLP → classes.

    With ``source="self"`` the queries are the embedded positions; with ``source="cross"`` they are M
    learned vectors (:class:`LearnedQueries`). The keys and values are the embedded positions, plus one
    learned *null* slot when ``null_slot`` (so that a query can find nothing). The outputs at the queries
    are pooled (``readout``: their mean, or the last query's) and mapped to C logits. With one layer and
    ``readout="last"`` only the last position's output is read, so self-attention asks only its question.
    ``attend_self=False`` hides each position from itself (it then asks about the *others*).

    ``forward(inputs, mask=None)``: inputs (B, T) ids, or (B, T, F) with one id per field; mask bool (B, T),
    True = a real position. Returns ``(logits (B, C), weights (B, H, Tq, Tk))``, where Tq is T (self), 1 (self with
    ``readout="last"``) or M (cross), and Tk is T, plus 1 in front for the null slot.
    """

    def __init__(self, config: SourceConfig) -> None:
        super().__init__()
        self.config = c = config
        self.embeddings = nn.ModuleList(nn.Embedding(v, c.d_model) for v in c.vocab_sizes)
        self.positions = nn.Embedding(c.max_len, c.d_model) if c.max_len else None
        self.null = nn.Parameter(torch.randn(1, 1, c.d_model) / c.d_model ** 0.5) if c.null_slot else None
        if c.source == "self":
            # self: the queries are the positions of X; the keys are X (after the null slot, if any)
            self.attend = CrossAttention(c.d_model, c.num_heads, c.combine)
        else:
            self.attend = LearnedQueries(c.d_model, c.num_heads, c.num_queries, c.combine)
        self.norm = nn.LayerNorm(c.d_model)
        self.mlp = nn.Sequential(nn.Linear(c.d_model, c.d_ff), nn.ReLU(), nn.Linear(c.d_ff, c.d_model))
        self.classify = nn.Linear(c.d_model, c.num_classes)

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, T) or (B, T, F) ids → (B, T, D): the sum of the field embeddings (and the positions')."""
        fields = inputs.unsqueeze(-1) if inputs.dim() == 2 else inputs  # (B, T, F)
        if fields.dim() != 3 or fields.shape[-1] != len(self.embeddings):
            raise ValueError(f"inputs must be (B, T) or (B, T, F) with F = {len(self.embeddings)} fields, "
                             f"got shape {tuple(inputs.shape)}")
        x = sum(table(fields[..., f]) for f, table in enumerate(self.embeddings))  # (B, T, D)
        if self.positions is not None:
            if x.shape[1] > self.positions.num_embeddings:
                raise ValueError(f"{x.shape[1]} positions, but max_len = {self.positions.num_embeddings}")
            x = x + self.positions.weight[: x.shape[1]]  # (B, T, D) + (T, D)
        return x

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embed(inputs)  # (B, T, D)
        B = x.shape[0]
        context, keep = x, mask
        if self.null is not None:
            context = torch.cat([self.null.expand(B, 1, -1), x], dim=1)  # (B, 1 + T, D)
            if mask is not None:
                keep = torch.cat([mask.new_ones(B, 1), mask], dim=1)  # (B, 1 + T)
        if self.config.source == "self":
            query, rows = x, self._others(x)  # (B, T, D): the sequence asks about itself
            if self.config.readout == "last":  # one layer: only the last position's question is read out
                last = self._last(x, mask)  # (B,)
                query = x[torch.arange(B, device=x.device), last].unsqueeze(1)  # (B, 1, D)
                rows = None if rows is None else rows[last].unsqueeze(1)  # (B, 1, Tk)
            attended, weights = self.attend(query, context, keep, rows)  # (B, Tq, D), (B, H, Tq, Tk)
        else:
            attended, weights = self.attend(context, keep)  # (B, M, D), (B, H, M, Tk)
            query = self.attend.queries.expand(B, -1, -1)  # (B, M, D)
        h = self.norm(query + attended)  # (B, Tq, D)
        h = h + self.mlp(h)  # (B, Tq, D)
        return self.classify(self._pool(h, mask)), weights  # (B, C)

    @staticmethod
    def _last(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """(B,) index of the last real position."""
        if mask is None:
            return torch.full((x.shape[0],), x.shape[1] - 1, device=x.device)
        return mask.sum(-1) - 1

    def _others(self, x: torch.Tensor) -> torch.Tensor | None:
        """With ``attend_self=False``, the (T, Tk) mask that hides each position from itself."""
        if self.config.attend_self:
            return None
        T = x.shape[1]
        keep = ~torch.eye(T, dtype=torch.bool, device=x.device)  # (T, T): True off the diagonal
        if self.null is not None:
            keep = torch.cat([keep.new_ones(T, 1), keep], dim=1)  # (T, 1 + T): the null slot always
        return keep

    def _pool(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """(B, Tq, D) → (B, D): the mean over the (real) queries, or the last query."""
        if self.config.readout == "last":
            return h[:, -1]  # self: h holds the last real position only
        if mask is not None and self.config.source == "self":
            weights = mask.to(h.dtype).unsqueeze(-1)  # (B, T, 1)
            return (h * weights).sum(1) / weights.sum(1).clamp_min(1)
        return h.mean(1)


def train_lookup(model: AttentionClassifier, task: TokenTask, *, epochs: int = 10, lr: float = 3e-3,
                 batch_size: int = 128, seed: int | None = None) -> list[dict[str, float]]:
    """Cross-entropy on the labels of ``task`` with AdamW and a one-cycle learning rate, through
    :func:`solutions.train.fit`; the batches are reshuffled every epoch from ``seed``. The caller seeds the
    model's initialisation (``torch.manual_seed``) before building it."""
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    steps = epochs * -(-len(task) // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.1)

    def loss(model, batch):
        inputs, labels = (x.to(device) for x in batch)
        return F.cross_entropy(model(inputs)[0], labels), {"size": len(labels)}

    return fit(model, lambda epoch: task.batches(batch_size, seed=1000 * or_default(seed) + epoch), loss, optimizer,
               epochs=epochs, scheduler=scheduler, desc="lookup")


def lookup_accuracy(model: AttentionClassifier, task: TokenTask, batch_size: int = 2048) -> float:
    """The fraction of the examples of ``task`` whose label the model ranks first."""
    device = next(model.parameters()).device
    correct = 0
    with evaluating(model):
        for inputs, labels in task.batches(batch_size):
            correct += (model(inputs.to(device))[0].argmax(-1).cpu() == labels).sum().item()
    return correct / len(task)


def weight_on_positions(weights: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """How much weight each head puts on the keys that play given roles, on average over the examples.

    Args:
        weights: (N, H, Tk), one query per example (e.g. the query position of :func:`recall_task`).
        positions: (N, R) integer key positions, one column per role (e.g. the matching item, item 0);
            -1 where an example has no key with that role.

    Returns:
        (H, R): for each head h and role r, the mean of ``weights[n, h, positions[n, r]]`` over the examples
        n that have the role (0 for a role that no example has).
    """
    present = positions >= 0  # (N, R)
    index = positions.clamp_min(0).unsqueeze(1).expand(-1, weights.shape[1], -1)  # (N, H, R)
    picked = weights.gather(-1, index) * present.unsqueeze(1)  # (N, H, R): 0 where the role is absent
    return picked.sum(0) / present.sum(0).clamp_min(1)  # (H, R)
