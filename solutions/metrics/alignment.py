"""Scoring word alignments against gold links: precision, recall and alignment error rate (AER).

Och & Ney (2003) [och2003] annotate each sentence pair with *sure* links S and *possible* links
P ⊇ S, and score a predicted alignment A with

    precision = |A ∩ P| / |A|,      recall = |A ∩ S| / |S|,
    AER = 1 − (|A ∩ S| + |A ∩ P|) / (|A| + |S|)                      (Och & Ney 2003, Section 5)

summed over the whole corpus before dividing. AER is 0 for an alignment that contains every sure
link and nothing outside P. Links are (source index, target index) pairs, 0-based over the tokens
without BOS/EOS, as in :class:`solutions.data.Pair`.

Models that attend produce a weight matrix instead of links; :func:`links_from_attention` turns
it into an alignment by linking each target word to the source word it attends to most.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

from ..data import Link, Pair

__all__ = ["AlignmentScores", "alignment_scores", "alignment_error_rate", "links_from_attention"]


@dataclass(frozen=True)
class AlignmentScores:
    """Corpus-level precision, recall and AER, with the counts they come from."""

    precision: float
    recall: float
    aer: float
    predicted: int  # |A| summed over the corpus
    sure: int  # |S|
    hits_sure: int  # |A ∩ S|
    hits_possible: int  # |A ∩ P|


def alignment_scores(predicted: Sequence[Iterable[Link]], gold: Sequence[Pair]) -> AlignmentScores:
    """Precision, recall and AER of ``predicted`` links (one collection per sentence) against ``gold`` pairs."""
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predicted alignments but {len(gold)} gold pairs")
    n_pred = n_sure = hits_sure = hits_possible = 0
    for k, (links, pair) in enumerate(zip(predicted, gold)):
        links = set(links)
        for i, j in links:
            if not (0 <= i < len(pair.source) and 0 <= j < len(pair.target)):
                raise ValueError(f"sentence {k}: link {(i, j)} is outside its {len(pair.source)} source and "
                                 f"{len(pair.target)} target tokens")
        n_pred += len(links)
        n_sure += len(pair.alignment)
        hits_sure += len(links & pair.alignment)
        hits_possible += len(links & pair.possible)
    if n_pred + n_sure == 0:
        raise ValueError("no predicted and no sure links: AER is undefined")
    precision = hits_possible / n_pred if n_pred else 0.0
    recall = hits_sure / n_sure if n_sure else 1.0
    aer = 1.0 - (hits_sure + hits_possible) / (n_pred + n_sure)
    return AlignmentScores(precision, recall, aer, n_pred, n_sure, hits_sure, hits_possible)


def alignment_error_rate(predicted: Sequence[Iterable[Link]], gold: Sequence[Pair]) -> float:
    """AER = 1 − (|A ∩ S| + |A ∩ P|) / (|A| + |S|) over the corpus (Och & Ney 2003)."""
    return alignment_scores(predicted, gold).aer


def links_from_attention(weights: torch.Tensor, source_len: int | None = None,
                         target_len: int | None = None, null_column: int | None = None) -> set[Link]:
    """Link each target position t to its most attended source position: {(argmax_s w[t, s], t)}.

    weights: (T, S), one row of attention weights per target step (as decoders return them).
    ``source_len`` / ``target_len`` crop the matrix to the real tokens first (e.g. drop the EOS
    column and the EOS row, and padding); a row with no weight at all produces no link.
    ``null_column`` names a column of ``weights`` that stands for *no source word* (e.g. the EOS
    column, where many decoders park their attention): a row whose weight there is larger than on
    every real token links nothing, as a word given to the empty word of Model 1 or the HMM.
    """
    if weights.dim() != 2:
        raise ValueError(f"weights must be (target, source), got shape {tuple(weights.shape)}")
    t_len = weights.shape[0] if target_len is None else target_len
    s_len = weights.shape[1] if source_len is None else source_len
    if not (0 <= t_len <= weights.shape[0] and 0 <= s_len <= weights.shape[1]):
        raise ValueError(f"cannot crop weights of shape {tuple(weights.shape)} to ({t_len}, {s_len})")
    if null_column is not None and not (0 <= null_column < weights.shape[1] and null_column >= s_len):
        raise ValueError(f"null_column {null_column} must be a column of weights {tuple(weights.shape)} "
                         f"outside the {s_len} source tokens")
    cropped = weights[:t_len, :s_len].detach()  # (T, S)
    if s_len == 0:
        return set()
    best = cropped.argmax(dim=-1)  # (T,)
    has_weight = cropped.sum(dim=-1) > 0  # (T,)
    if null_column is not None:
        has_weight &= weights[:t_len, null_column].detach() <= cropped.max(dim=-1).values  # (T,)
    return {(int(best[t]), t) for t in range(t_len) if bool(has_weight[t])}
