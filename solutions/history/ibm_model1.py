"""IBM Model 1 trained with EM: the first word-alignment model, and the corpus encoding it shares.

A translation model explains a target sentence f = f_1 … f_J (here Chinese) from a source sentence
e = e_1 … e_I (here English) through a hidden *alignment* a = a_1 … a_J: target word j was produced
by source word a_j. We keep the letters of the papers: e is the side we condition on, f the side
that is generated, t(f | e) the lexical translation table.

IBM Model 1 (Brown et al. 1993, Computational Linguistics 19(2), Section 4.1) makes every
alignment equally likely, with an empty word e_0 (NULL) for target words that translate nothing:

    Pr(f, a | e) = ε / (I + 1)^J  Π_j t(f_j | e_{a_j})                          (Brown eq. 5)
    Pr(f | e)    = ε / (I + 1)^J  Π_j Σ_{i=0}^{I} t(f_j | e_i)                   (Brown eq. 16)

The E-step is the posterior of each link, P(a_j = i | f, e) = t(f_j | e_i) / Σ_{i'} t(f_j | e_{i'}),
whose sums over a sentence are Brown's counts c(f | e; f, e) (eq. 17); the M-step normalises the
counts over the corpus, t(f | e) = λ_e^{-1} Σ_s c(f | e; f^(s), e^(s)) (eq. 14) with Σ_f t(f | e) = 1
(eq. 7). ε (the length probability) is left out: every likelihood here is conditioned on J.

Its Viterbi alignment is a per-word argmax (Och & Ney 2003, eq. 33). Links are (source index, target
index), 0-based, as in :class:`solutions.data.Pair`, so they can be scored with :mod:`solutions.metrics`.

Shape letters (B, I, J as in the glossary of :mod:`solutions`): B sentence pairs in a batch, I source and
J target positions (padded to the longest sentence), Vf and Ve the target and source vocabulary sizes
(Ve with the NULL word).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from tqdm.auto import trange

from ..attention import lengths_to_mask
from ..data import Pair, Vocab, pad_batch
from ..train import show_progress

NULL = "<null>"
"""The empty source word e_0 of Brown et al. (position 0), present in every source vocabulary."""
NULL_ID = Vocab.unk_id + 1
"""The id of :data:`NULL` in a source vocabulary: Vocab puts its four specials first, then NULL."""


# ------------------------------------------------------------------------------------ data
@dataclass
class Encoded:
    """Sentence pairs as padded id tensors (PAD = 0 after the end of each sentence)."""

    src: torch.Tensor       # (B, I) source word ids
    src_lens: torch.Tensor  # (B,)
    tgt: torch.Tensor       # (B, J) target word ids
    tgt_lens: torch.Tensor  # (B,)

    def __len__(self) -> int:
        return self.src.shape[0]

    @property
    def src_mask(self) -> torch.Tensor:
        """(B, I) True on real source positions."""
        return lengths_to_mask(self.src_lens, self.src.shape[1])  # (B, I)

    @property
    def tgt_mask(self) -> torch.Tensor:
        """(B, J) True on real target positions."""
        return lengths_to_mask(self.tgt_lens, self.tgt.shape[1])  # (B, J)


def _sides(pairs: Sequence[Pair], reverse: bool) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """(conditioning side, generated side) of every pair; ``reverse`` generates the source from the target."""
    if len(pairs) == 0:
        raise ValueError("need at least one sentence pair")
    for k, p in enumerate(pairs):
        if len(p.source) == 0 or len(p.target) == 0:
            raise ValueError(f"pair {k} has {len(p.source)} source and {len(p.target)} target tokens; "
                             "both sides need at least one token")
    if reverse:
        return [p.target for p in pairs], [p.source for p in pairs]
    return [p.source for p in pairs], [p.target for p in pairs]


def build_vocabularies(pairs: Sequence[Pair], reverse: bool = False) -> tuple[Vocab, Vocab]:
    """(source vocabulary with :data:`NULL`, target vocabulary) of the words in ``pairs``.

    With ``reverse`` the roles swap: the pairs' target side (Chinese) is conditioned on and gets the
    NULL word, the source side (English) is generated.
    """
    src_side, tgt_side = _sides(pairs, reverse)
    src_words = sorted({w for s in src_side for w in s} - {NULL})
    return Vocab([NULL, *src_words]), Vocab.build(tgt_side)


def encode(pairs: Sequence[Pair], src_vocab: Vocab, tgt_vocab: Vocab, reverse: bool = False,
           device: torch.device | str | None = None) -> Encoded:
    """Pad the pairs into id tensors; words outside a vocabulary become UNK (which a model never saw)."""
    src_side, tgt_side = _sides(pairs, reverse)
    if src_vocab.token_to_id(NULL) != NULL_ID:
        raise ValueError(f"the source vocabulary must hold {NULL!r} right after its specials (id {NULL_ID}); "
                         "build it with build_vocabularies")

    src, src_lens = pad_batch([src_vocab.encode(s, add_eos=False) for s in src_side], Vocab.pad_id, device)  # (B, I)
    tgt, tgt_lens = pad_batch([tgt_vocab.encode(s, add_eos=False) for s in tgt_side], Vocab.pad_id, device)  # (B, J)
    return Encoded(src, src_lens, tgt, tgt_lens)


def _check_lexicon(t: torch.Tensor, data: Encoded) -> None:
    if t.dim() != 2:
        raise ValueError(f"t must be a (target vocabulary, source vocabulary) matrix, got shape {tuple(t.shape)}")
    if int(data.tgt.max()) >= t.shape[0] or int(data.src.max()) >= t.shape[1]:
        raise ValueError(f"t has shape {tuple(t.shape)} (Vf, Ve) but the data uses target ids up to "
                         f"{int(data.tgt.max())} and source ids up to {int(data.src.max())}")
    if t.device != data.src.device:
        raise ValueError(f"t is on {t.device} but the data is on {data.src.device}")


def uniform_lexicon(src_vocab: Vocab, tgt_vocab: Vocab, device: torch.device | str | None = None,
                    dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """t(f | e) = 1 / Vf for every pair: the usual starting point of Model 1's EM."""
    return torch.full((len(tgt_vocab), len(src_vocab)), 1.0 / len(tgt_vocab), device=device, dtype=dtype)


def _lexical_counts(weights: torch.Tensor, f_ids: torch.Tensor, e_ids: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Σ weights into a (Vf, Ve) table at (f_ids, e_ids); the three broadcast against each other."""
    weights, f_ids, e_ids = torch.broadcast_tensors(weights, f_ids, e_ids)
    flat = (f_ids * shape[1] + e_ids).reshape(-1)  # (N,)
    counts = weights.new_zeros(shape[0] * shape[1]).index_add_(0, flat, weights.reshape(-1))  # (Vf * Ve,)
    return counts.view(shape)  # (Vf, Ve)


def _normalise_columns(counts: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """counts / Σ_f counts per source word (Brown eq. 14); words without counts keep their old column."""
    total = counts.sum(0, keepdim=True)  # (1, Ve)
    return torch.where(total > 0, counts / total.clamp_min(torch.finfo(counts.dtype).tiny), previous)


# ------------------------------------------------------------------------------- Model 1
def model1_e_step(t: torch.Tensor, data: Encoded, null: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Link posteriors and log-likelihoods of IBM Model 1.

    P(a_j = i | f, e) = t(f_j | e_i) / Σ_{i'} t(f_j | e_{i'}), the terms of Brown et al.'s count
    (eq. 17), and log Pr(f | e, J) = Σ_j log( (I + 1)^{-1} Σ_i t(f_j | e_i) ) (eq. 16 without ε).

    Args:
        t: (Vf, Ve) lexical table, t[f, e] = t(f | e).
        data: the encoded pairs.
        null: include the empty word e_0 (then I + 1 candidates per target word).

    Returns:
        posteriors (B, J, 1 + I) with column 0 the empty word — or (B, J, I) without ``null`` — zero on
        padding; log-likelihood per sentence (B,).
    """
    _check_lexicon(t, data)
    probs = t[data.tgt[:, :, None], data.src[:, None, :]] * data.src_mask[:, None, :]  # (B, J, I)
    if null:
        probs = torch.cat([t[data.tgt, NULL_ID][..., None], probs], dim=-1)  # (B, J, 1 + I)
    tgt_mask = data.tgt_mask[..., None]  # (B, J, 1)
    total = torch.where(tgt_mask, probs.sum(-1, keepdim=True), torch.ones_like(probs[..., :1]))  # (B, J, 1)
    if bool((total == 0).any()):
        b = int((total == 0).any(-1).any(-1).nonzero()[0])
        raise ValueError(f"sentence pair {b} has a target word that no word of its source can produce "
                         "(t is 0 for all of them: a word the model never saw?)")
    posteriors = probs / total * tgt_mask  # (B, J, 1 + I)
    candidates = (data.src_lens + int(null)).to(t.dtype)  # (B,)
    loglik = (total.squeeze(-1).log() * data.tgt_mask).sum(-1) - data.tgt_lens * candidates.log()  # (B,)
    return posteriors, loglik


def model1_m_step(t: torch.Tensor, data: Encoded, posteriors: torch.Tensor, null: bool = True) -> torch.Tensor:
    """New table t(f | e) = Σ_s c(f | e; f^(s), e^(s)) / Σ_f (…) (Brown et al. eqs. 14, 17).

    ``posteriors`` is the output of :func:`model1_e_step` (column 0 the empty word when ``null``).
    Source words that occur nowhere in ``data`` keep their column of ``t``.
    """
    src = data.src
    if null:
        null_col = torch.full_like(src[:, :1], NULL_ID)  # (B, 1)
        src = torch.cat([null_col, src], dim=1)  # (B, 1 + I)
    if posteriors.shape != (*data.tgt.shape, src.shape[1]):
        raise ValueError(f"posteriors have shape {tuple(posteriors.shape)} but the data needs "
                         f"{(*data.tgt.shape, src.shape[1])} (B, J, {'1 + ' if null else ''}I)")
    counts = _lexical_counts(posteriors, data.tgt[:, :, None], src[:, None, :], t.shape)  # (Vf, Ve)
    return _normalise_columns(counts, t)


def model1_viterbi(t: torch.Tensor, data: Encoded, null: bool = True) -> list[list[int]]:
    """The most probable alignment of each pair: a_j = argmax_i t(f_j | e_i) (Och & Ney 2003, eq. 33).

    Returns one list per pair with a_j in 0 … I − 1 for each target word, or −1 for the empty word.
    """
    posteriors, _ = model1_e_step(t, data, null)  # (B, J, [1 +] I), same argmax as t itself
    best = (posteriors.argmax(-1) - int(null)).cpu()  # (B, J)
    return [best[b, :n].tolist() for b, n in enumerate(data.tgt_lens.tolist())]


def _per_word(loglik: torch.Tensor, data: Encoded) -> float:
    return float(loglik.sum() / data.tgt_lens.sum())


def train_model1(data: Encoded, t: torch.Tensor, iterations: int, null: bool = True,
                 progress: bool | None = None) -> tuple[torch.Tensor, list[float]]:
    """Run ``iterations`` EM iterations of Model 1 from the table ``t``.

    Returns the final table and the log-likelihood per target word before the first and after
    every iteration (``iterations + 1`` numbers; EM never lets them decrease).
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    history = []
    for _ in trange(iterations, desc="Model 1", disable=not show_progress(progress), leave=False):
        posteriors, loglik = model1_e_step(t, data, null)
        history.append(_per_word(loglik, data))
        t = model1_m_step(t, data, posteriors, null)
    history.append(_per_word(model1_e_step(t, data, null)[1], data))
    return t, history
