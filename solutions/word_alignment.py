"""Word alignment before attention: IBM Model 1 and the HMM alignment model, trained with EM.

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

The HMM alignment model (Vogel, Ney & Tillmann 1996, COLING, Section 3.2) makes a_j depend on the
previous alignment a_{j-1}, through the *jump width* i − i' only:

    Pr(f | e) = Σ_a Π_j [ p(a_j | a_{j-1}, I) · p(f_j | e_{a_j}) ]               (Vogel eq. 4)
    p(i | i', I) = s(i − i') / Σ_{l=1}^{I} s(l − i')                            (Vogel eq. 5)

Vogel et al. leave the distribution of a_1 implicit; here it is uniform, 1/I. The empty word follows
Och & Ney (2003, Computational Linguistics 29(1), eqs. 14–16): each position i gets an empty twin
i + I that remembers i; a jump to the empty word has the fixed probability p0 and the other jumps
share 1 − p0. Vogel et al. trained with the maximum (Viterbi) approximation (their eq. 6); this
module runs the full EM (Baum–Welch) of Och & Ney Section 3.1: a forward–backward pass that cannot
underflow however long the sentences (:func:`forward_log` / :func:`backward_log` in log space with
log-sum-exp; the training E-step runs the same recursions with scaling), expected counts for t and
for s, and an M-step for s that raises the expected log-likelihood by minorize–maximize steps, so
the likelihood never decreases (a generalized EM). Model 1 starts from a uniform t; the HMM starts
from the lexical table of Model 1 and uniform jump weights, as in Vogel et al. Section 4.2.

The Viterbi alignment (Och & Ney eq. 5) is a per-word argmax for Model 1 (their eq. 33) and a
max-product dynamic programme for the HMM (the recursion under Vogel eq. 6), both in log space.

Each model aligns in one direction only (every target word to one source word). Training in both
directions and combining the two link sets — intersection, union (Och & Ney 2003, Section 4), and
the grow-diag(-final) heuristics (Koehn, Och & Marcu 2003, HLT-NAACL, Section 4.5, their "diag"
and "diag-and" heuristics) — is *symmetrization*. Links are (source index, target index), 0-based, as in
:class:`solutions.data.Pair`, so they can be scored with :mod:`solutions.alignment_metrics`.

Shape letters:
    B   sentence pairs in a batch
    I   source positions (padded to the longest source sentence)
    J   target positions (padded to the longest target sentence)
    S   HMM states: I source positions, then (with the empty word) their I empty twins
    Vf  target vocabulary size          Ve  source vocabulary size (with the NULL word)
    K   jump widths: s(d) for d = −D … D, K = 2D + 1
    L   distinct source lengths in a batch
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch
from tqdm.auto import trange

from .data import Link, Pair, Vocab

__all__ = [
    "NULL",
    "NULL_ID",
    "AlignerConfig",
    "Encoded",
    "build_vocabularies",
    "encode",
    "uniform_lexicon",
    "model1_e_step",
    "model1_m_step",
    "model1_viterbi",
    "train_model1",
    "HMMParams",
    "HMMStatistics",
    "init_hmm",
    "jump_probabilities",
    "hmm_log_parameters",
    "forward_log",
    "backward_log",
    "hmm_e_step",
    "hmm_m_step",
    "hmm_viterbi",
    "train_hmm",
    "alignment_to_links",
    "symmetrize",
    "SYMMETRIZATIONS",
    "DirectionalAligner",
    "train_direction",
]

NULL = "<null>"
"""The empty source word e_0 of Brown et al. (position 0), present in every source vocabulary."""
NULL_ID = Vocab.unk_id + 1
"""The id of :data:`NULL` in a source vocabulary: Vocab puts its four specials first, then NULL."""


@dataclass
class AlignerConfig:
    """How to train one direction: Model 1 first, then the HMM started from its lexical table."""

    model1_iterations: int = 5   # EM iterations of IBM Model 1 (Vogel et al. used 10 on large corpora)
    hmm_iterations: int = 5      # EM iterations of the HMM (Vogel et al.: 5)
    null: bool = True            # an empty source word for target words that translate nothing
    p_null: float = 0.2          # HMM: probability of a jump to the empty word (Och & Ney 2003: p0 = 0.2)
    jump_mm_steps: int = 10      # minorize–maximize steps of the M-step for the jump weights s(d)

    def __post_init__(self) -> None:
        for name in ("model1_iterations", "hmm_iterations", "jump_mm_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if not 0.0 <= self.p_null < 1.0:
            raise ValueError(f"p_null must lie in [0, 1), got {self.p_null}")

    @classmethod
    def tiny(cls) -> AlignerConfig:
        """A fast preset for tests."""
        return cls(model1_iterations=2, hmm_iterations=2, jump_mm_steps=3)


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
        return torch.arange(self.src.shape[1], device=self.src.device) < self.src_lens[:, None]

    @property
    def tgt_mask(self) -> torch.Tensor:
        """(B, J) True on real target positions."""
        return torch.arange(self.tgt.shape[1], device=self.tgt.device) < self.tgt_lens[:, None]


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

    def pad(sequences, vocab):
        lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)  # (B,)
        ids = torch.full((len(sequences), int(lengths.max())), Vocab.pad_id, dtype=torch.long)  # (B, T)
        for b, s in enumerate(sequences):
            ids[b, :len(s)] = torch.tensor(vocab.encode(s, add_eos=False), dtype=torch.long)
        return ids.to(device), lengths.to(device)

    src, src_lens = pad(src_side, src_vocab)
    tgt, tgt_lens = pad(tgt_side, tgt_vocab)
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
                 progress: bool = False) -> tuple[torch.Tensor, list[float]]:
    """Run ``iterations`` EM iterations of Model 1 from the table ``t``.

    Returns the final table and the log-likelihood per target word before the first and after
    every iteration (``iterations + 1`` numbers; EM never lets them decrease).
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    history = []
    for _ in trange(iterations, desc="Model 1", disable=not progress):
        posteriors, loglik = model1_e_step(t, data, null)
        history.append(_per_word(loglik, data))
        t = model1_m_step(t, data, posteriors, null)
    history.append(_per_word(model1_e_step(t, data, null)[1], data))
    return t, history


# ----------------------------------------------------------------------------------- HMM
@dataclass
class HMMParams:
    """Parameters of the HMM alignment model."""

    t: torch.Tensor       # (Vf, Ve) lexical table p(f | e)
    jumps: torch.Tensor   # (K,) non-negative jump weights s(d), d = −D … D (index d + D)
    null: bool = True     # empty twins of the source positions (Och & Ney 2003, eqs. 14–16)
    p_null: float = 0.2   # probability p0 of a jump to the empty word

    def __post_init__(self) -> None:
        if self.jumps.dim() != 1 or self.jumps.numel() % 2 == 0:
            raise ValueError(f"jumps must be a vector of odd length 2D + 1, got shape {tuple(self.jumps.shape)}")
        if not 0.0 <= self.p_null < 1.0:
            raise ValueError(f"p_null must lie in [0, 1), got {self.p_null}")

    @property
    def max_jump(self) -> int:
        """D: jumps wider than D share the weight s(±D)."""
        return (self.jumps.numel() - 1) // 2

    def jump_distribution(self) -> dict[int, float]:
        """{d: s(d) / Σ s}: the learned jump weights as a distribution over widths."""
        s = (self.jumps / self.jumps.sum()).tolist()
        return {d - self.max_jump: v for d, v in enumerate(s)}


@dataclass
class HMMStatistics:
    """What the E-step of the HMM returns."""

    gamma: torch.Tensor   # (B, J, S) state posteriors P(a_j = state | f, e), 0 on padding
    jumps: torch.Tensor   # (B, I', I) expected jumps from position i' (or its empty twin) to position i
    loglik: torch.Tensor  # (B,) log Pr(f | e, J)


def init_hmm(t: torch.Tensor, max_source_len: int, null: bool = True, p_null: float = 0.2) -> HMMParams:
    """The HMM started from the lexical table ``t`` (of Model 1) with uniform jump weights."""
    if max_source_len < 1:
        raise ValueError(f"max_source_len must be >= 1, got {max_source_len}")
    jumps = torch.ones(2 * max_source_len - 1, device=t.device, dtype=t.dtype)  # (K,)
    return HMMParams(t.clone(), jumps, null, p_null)


def _jump_index(num_positions: int, max_jump: int, device: torch.device) -> torch.Tensor:
    """(I', I) index of s(i − i') in the jump vector, widths beyond ±D clamped to ±D."""
    pos = torch.arange(num_positions, device=device)  # (I,)
    return (pos[None, :] - pos[:, None]).clamp(-max_jump, max_jump) + max_jump  # (I', I)


def jump_probabilities(jumps: torch.Tensor, src_lens: torch.Tensor, num_positions: int) -> torch.Tensor:
    """p(i | i', I) = s(i − i') / Σ_{l=1}^{I} s(l − i') (Vogel et al. 1996, eq. 5), one matrix per sentence.

    Args:
        jumps: (K,) weights s(d) for d = −D … D.
        src_lens: (B,) source lengths I.
        num_positions: the padded length (≥ every length).

    Returns:
        (B, I', I) rows i' (previous position), columns i; rows and columns past a sentence's end are
        0. A row whose weights are all 0 falls back to uniform.
    """
    if jumps.dim() != 1 or jumps.numel() % 2 == 0:
        raise ValueError(f"jumps must be a vector of odd length 2D + 1, got shape {tuple(jumps.shape)}")
    if bool((jumps < 0).any()):
        raise ValueError("jump weights s(d) must be non-negative")
    if int(src_lens.max()) > num_positions:
        raise ValueError(f"a sentence has {int(src_lens.max())} source positions but num_positions is {num_positions}")
    max_jump = (jumps.numel() - 1) // 2
    weights = jumps[_jump_index(num_positions, max_jump, jumps.device)]  # (I', I)
    valid = torch.arange(num_positions, device=jumps.device) < src_lens[:, None]  # (B, I)
    pair_mask = valid[:, :, None] & valid[:, None, :]  # (B, I', I)
    weights = weights * pair_mask  # (B, I', I)
    total = weights.sum(-1, keepdim=True)  # (B, I', 1)
    uniform = valid[:, None, :].to(jumps.dtype) / src_lens[:, None, None].to(jumps.dtype)  # (B, 1, I)
    probs = torch.where(total > 0, weights / total.clamp_min(torch.finfo(jumps.dtype).tiny), uniform)
    return probs * pair_mask  # (B, I', I)


def hmm_log_parameters(params: HMMParams, data: Encoded) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log initial, transition and emission probabilities of every sentence's HMM.

    States 0 … I − 1 are the source positions; with ``params.null`` states I … 2I − 1 are their empty
    twins (Och & Ney 2003, eqs. 14–16): from position i' or its twin, a jump to position i has
    probability (1 − p0) p(i | i', I); the only way into twin i is from i or from twin i, with
    probability p0. The first state is uniform: 1/I for positions (times 1 − p0, and p0/I for twins).

    Returns:
        log_init (B, S), log_trans (B, S, S) with rows the previous state, log_emit (B, J, S); −inf
        where a state does not exist (padding).
    """
    _check_lexicon(params.t, data)
    t, dtype = params.t, params.t.dtype
    B, I = data.src.shape
    valid = data.src_mask  # (B, I)
    lens = data.src_lens.to(dtype)[:, None]  # (B, 1)
    neg_inf = torch.tensor(-math.inf, device=t.device, dtype=dtype)
    log_jump = jump_probabilities(params.jumps, data.src_lens, I).log()  # (B, I', I), −inf outside
    emit = t[data.tgt[:, :, None], data.src[:, None, :]].log()  # (B, J, I)
    emit = torch.where(valid[:, None, :], emit, neg_inf)  # (B, J, I)
    init = torch.where(valid, -lens.log(), neg_inf)  # (B, I)
    if not params.null:
        return init, log_jump, emit
    stay = torch.eye(I, dtype=torch.bool, device=t.device) & valid[:, :, None]  # (B, I', I)
    log_p0, log_p1 = math.log(params.p_null) if params.p_null > 0 else -math.inf, math.log1p(-params.p_null)
    to_twin = torch.where(stay, torch.tensor(log_p0, device=t.device, dtype=dtype), neg_inf)  # (B, I', I)
    to_word = log_jump + log_p1  # (B, I', I)
    log_trans = torch.cat([torch.cat([to_word, to_twin], dim=2),
                           torch.cat([to_word, to_twin], dim=2)], dim=1)  # (B, 2I, 2I)
    null_emit = t[data.tgt, NULL_ID].log()[:, :, None].expand(B, -1, I)  # (B, J, I)
    null_emit = torch.where(valid[:, None, :], null_emit, neg_inf)  # (B, J, I)
    log_emit = torch.cat([emit, null_emit], dim=2)  # (B, J, 2I)
    log_init = torch.cat([init + log_p1, init + log_p0], dim=1)  # (B, 2I)
    return log_init, log_trans, log_emit


def _check_hmm_shapes(log_init: torch.Tensor, log_trans: torch.Tensor, log_emit: torch.Tensor,
                      tgt_lens: torch.Tensor) -> None:
    B, S = log_init.shape
    if log_trans.shape != (B, S, S) or log_emit.dim() != 3 or log_emit.shape[0] != B or log_emit.shape[2] != S:
        raise ValueError(f"expected log_init (B, S), log_trans (B, S, S), log_emit (B, J, S); got "
                         f"{tuple(log_init.shape)}, {tuple(log_trans.shape)}, {tuple(log_emit.shape)}")
    if tgt_lens.shape != (B,) or int(tgt_lens.min()) < 1 or int(tgt_lens.max()) > log_emit.shape[1]:
        raise ValueError(f"tgt_lens must hold B = {B} lengths in 1 … J = {log_emit.shape[1]}, "
                         f"got {tgt_lens.tolist()}")


def forward_log(log_init: torch.Tensor, log_trans: torch.Tensor, log_emit: torch.Tensor,
                tgt_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward pass in log space.

    log α_1(s) = log π(s) + log b_1(s),
    log α_j(s) = log b_j(s) + logsumexp_{s'} [ log α_{j-1}(s') + log A(s', s) ],
    log Pr(f | e, J) = logsumexp_s log α_J(s) — Vogel et al.'s sum over alignments (eq. 4) in O(J S²).

    Args:
        log_init: (B, S); log_trans: (B, S, S) rows = previous state; log_emit: (B, J, S);
        tgt_lens: (B,) target lengths (steps past a sentence's end keep its last α).

    Returns:
        log_alpha (B, J, S) and log-likelihood (B,).
    """
    _check_hmm_shapes(log_init, log_trans, log_emit, tgt_lens)
    alpha = log_init + log_emit[:, 0]  # (B, S)
    alphas = [alpha]
    for j in range(1, log_emit.shape[1]):
        step = torch.logsumexp(alpha[:, :, None] + log_trans, dim=1) + log_emit[:, j]  # (B, S)
        alpha = torch.where((j < tgt_lens)[:, None], step, alpha)  # (B, S)
        alphas.append(alpha)
    return torch.stack(alphas, dim=1), torch.logsumexp(alpha, dim=-1)  # (B, J, S), (B,)


def backward_log(log_trans: torch.Tensor, log_emit: torch.Tensor, tgt_lens: torch.Tensor) -> torch.Tensor:
    """The backward pass in log space: log β_J(s) = 0,
    log β_j(s) = logsumexp_{s''} [ log A(s, s'') + log b_{j+1}(s'') + log β_{j+1}(s'') ].

    Returns log_beta (B, J, S) (0 at and after each sentence's last target position).
    """
    B, J, S = log_emit.shape
    _check_hmm_shapes(log_trans.new_zeros(B, S), log_trans, log_emit, tgt_lens)
    beta = log_emit.new_zeros(B, S)  # (B, S)
    betas = [beta]
    for j in range(J - 2, -1, -1):
        step = torch.logsumexp(log_trans + (log_emit[:, j + 1] + beta)[:, None, :], dim=2)  # (B, S)
        beta = torch.where((j < tgt_lens - 1)[:, None], step, torch.zeros_like(beta))  # (B, S)
        betas.append(beta)
    return torch.stack(betas[::-1], dim=1)  # (B, J, S)


def hmm_e_step(params: HMMParams, data: Encoded) -> HMMStatistics:
    """Forward–backward (Baum–Welch E-step): state posteriors, expected jumps and log-likelihoods.

    The recursions are those of :func:`forward_log` and :func:`backward_log`, run in probability
    space with scaling (Rabiner 1989, Section V.A): every α_j is divided by its sum c_j, so no
    number underflows however long the sentence, and log Pr(f | e, J) = Σ_j log c_j. The structure
    of the transitions is used instead of the full S × S matrix: an empty twin leaves like its
    position, so with u = α(position) + α(twin),

        α_j(i) ∝ (1 − p0) Σ_{i'} u_{j-1}(i') p(i | i', I) · p(f_j | e_i),
        α_j(twin i) ∝ p0 · u_{j-1}(i) · p(f_j | NULL),

    and a position and its twin share the same β. Tested to agree with the log-space recursions.
    """
    _check_lexicon(params.t, data)
    t, dtype = params.t, params.t.dtype
    B, I = data.src.shape
    J = data.tgt.shape[1]
    valid = data.src_mask.to(dtype)  # (B, I)
    lens = data.src_lens.to(dtype)[:, None]  # (B, 1)
    p0 = params.p_null if params.null else 0.0
    jump = (1.0 - p0) * jump_probabilities(params.jumps, data.src_lens, I)  # (B, I', I) word-to-word
    emit = t[data.tgt[:, :, None], data.src[:, None, :]] * valid[:, None, :]  # (B, J, I)
    emit_null = t[data.tgt, NULL_ID] if params.null else emit.new_zeros(B, J)  # (B, J)

    words = (1.0 - p0) * valid / lens * emit[:, 0]  # (B, I) scaled α of the positions
    twins = p0 * valid / lens * emit_null[:, :1]  # (B, I) scaled α of the empty twins
    scale = words.sum(-1) + twins.sum(-1)  # (B,)
    if bool((scale == 0).any()):
        raise ValueError(f"sentence pair {int((scale == 0).nonzero()[0])} has probability 0 under the model "
                         "(a word it never saw?)")
    words, twins = words / scale[:, None], twins / scale[:, None]
    alpha_words, alpha_twins, scales = [words], [twins], [scale]
    for j in range(1, J):
        u = words + twins  # (B, I)
        new_words = (u[:, :, None] * jump).sum(1) * emit[:, j]  # (B, I)
        new_twins = p0 * u * emit_null[:, j, None] * valid  # (B, I)
        active = j < data.tgt_lens  # (B,)
        scale = torch.where(active, new_words.sum(-1) + new_twins.sum(-1), torch.ones_like(scale))  # (B,)
        if bool((scale == 0).any()):
            raise ValueError(f"sentence pair {int((scale == 0).nonzero()[0])} has probability 0 under the model "
                             "(a word it never saw?)")
        words = torch.where(active[:, None], new_words / scale[:, None], words)
        twins = torch.where(active[:, None], new_twins / scale[:, None], twins)
        alpha_words.append(words)
        alpha_twins.append(twins)
        scales.append(scale)
    scales = torch.stack(scales, dim=1)  # (B, J), 1 past each sentence's end
    loglik = scales.log().sum(-1)  # (B,)

    beta = valid.clone()  # (B, I) scaled β, shared by a position and its twin
    betas = [beta]
    for j in range(J - 2, -1, -1):
        ahead = emit[:, j + 1] * beta  # (B, I)
        new_beta = ((jump * ahead[:, None, :]).sum(2) + p0 * emit_null[:, j + 1, None] * beta) / scales[:, j + 1, None]
        beta = torch.where((j < data.tgt_lens - 1)[:, None], new_beta, valid)
        betas.append(beta)
    beta = torch.stack(betas[::-1], dim=1)  # (B, J, I)
    alpha_words = torch.stack(alpha_words, dim=1)  # (B, J, I)
    alpha_twins = torch.stack(alpha_twins, dim=1)  # (B, J, I)

    tgt_mask = data.tgt_mask.to(dtype)[..., None]  # (B, J, 1)
    gamma = alpha_words * beta * tgt_mask  # (B, J, I)
    if params.null:
        gamma = torch.cat([gamma, alpha_twins * beta * tgt_mask], dim=2)  # (B, J, 2I)
    before = (alpha_words + alpha_twins)[:, :-1]  # (B, J - 1, I') u_{j-1}
    after = (emit * beta / scales[..., None] * tgt_mask)[:, 1:]  # (B, J - 1, I) p(f_j | e_i) β_j(i) / c_j
    jumps = jump * torch.bmm(before.transpose(1, 2), after)  # (B, I', I) Σ_j ξ_j(i' → i)
    return HMMStatistics(gamma, jumps, loglik)


def _jump_m_step(jumps: torch.Tensor, jump_counts: torch.Tensor, out_counts: torch.Tensor,
                 src_lens: torch.Tensor, steps: int) -> torch.Tensor:
    """Raise Q(s) = Σ_d c(d) log s(d) − Σ_{i', I} n(i', I) log Σ_{l} s(l − i') by minorize–maximize steps.

    Q is the part of the expected complete-data log-likelihood that depends on s; c(d) are the
    expected jumps of width d and n(i', I) the expected jumps out of position i' in sentences of
    length I. Bounding log Z ≤ log Z_old + Z / Z_old − 1 gives the update
    s(d) ← c(d) / Σ_{i', I} n(i', I) m(i', I, d) / Z_old(i', I), with m the number of targets i of
    width d from i'. Each step raises Q (an MM algorithm; Hunter & Lange 2004, The American Statistician
    58(1)), hence the likelihood never decreases (a generalized EM, Dempster, Laird & Rubin 1977).
    """
    max_jump = (jumps.numel() - 1) // 2
    num_positions = out_counts.shape[1]
    lengths, which = torch.unique(src_lens, return_inverse=True)  # (L,), (B,)
    n = out_counts.new_zeros(num_positions, lengths.numel())  # (I', L)
    n.index_put_((torch.arange(num_positions, device=n.device)[None, :].expand_as(out_counts),
                  which[:, None].expand_as(out_counts)), out_counts, accumulate=True)
    index = _jump_index(num_positions, max_jump, jumps.device)  # (I', I)
    targets = (torch.arange(num_positions, device=jumps.device) < lengths[:, None]).to(jumps.dtype)  # (L, I)
    m = jumps.new_zeros(num_positions, lengths.numel(), jumps.numel())  # (I', L, K)
    m.scatter_add_(2, index[:, None, :].expand(-1, lengths.numel(), -1),
                   targets[None].expand(num_positions, -1, -1))  # m[i', l, d] = #{i < I_l: width d}
    s = jumps.clone()
    for _ in range(steps):
        z = m @ s  # (I', L)
        ratio = torch.where(n > 0, n / z.clamp_min(torch.finfo(s.dtype).tiny), torch.zeros_like(n))  # (I', L)
        denominator = torch.einsum("wl,wlk->k", ratio, m)  # (K,)
        s = torch.where(denominator > 0, jump_counts / denominator.clamp_min(torch.finfo(s.dtype).tiny), s)
        s = s / s.sum()
    return s


def hmm_m_step(params: HMMParams, data: Encoded, stats: HMMStatistics, mm_steps: int = 10) -> HMMParams:
    """New p(f | e) from the expected emissions and new s(d) from the expected jumps.

    The lexical update is exact (normalised expected counts, as for Model 1); the jump weights take
    ``mm_steps`` minorize–maximize steps from their old values (see :func:`_jump_m_step`), since the
    normalisation of Vogel et al.'s eq. 5 over each sentence's window has no closed-form maximum.
    p0 stays fixed, as in Och & Ney (2003), who tune it on held-out data.
    """
    B, I = data.src.shape
    S = 2 * I if params.null else I
    if stats.gamma.shape != (B, data.tgt.shape[1], S) or stats.jumps.shape != (B, I, I):
        raise ValueError(f"statistics of shapes {tuple(stats.gamma.shape)}, {tuple(stats.jumps.shape)} do not "
                         f"fit this data: expected (B, J, S) = {(B, data.tgt.shape[1], S)} and (B, I, I)")
    if mm_steps < 0:
        raise ValueError(f"mm_steps must be >= 0, got {mm_steps}")
    t = params.t
    counts = _lexical_counts(stats.gamma[..., :I], data.tgt[:, :, None], data.src[:, None, :], t.shape)  # (Vf, Ve)
    into_words = stats.jumps  # (B, I', I)
    if params.null:
        null_ids = torch.full_like(data.tgt, NULL_ID)  # (B, J)
        counts += _lexical_counts(stats.gamma[..., I:].sum(-1), data.tgt, null_ids, t.shape)
    t = _normalise_columns(counts, t)
    index = _jump_index(I, params.max_jump, t.device)  # (I', I)
    jump_counts = params.jumps.new_zeros(params.jumps.numel()).index_add_(
        0, index.expand(B, -1, -1).reshape(-1), into_words.reshape(-1))  # (K,)
    jumps = _jump_m_step(params.jumps, jump_counts, into_words.sum(-1), data.src_lens, mm_steps)
    return HMMParams(t, jumps, params.null, params.p_null)


def hmm_viterbi(params: HMMParams, data: Encoded) -> tuple[list[list[int]], torch.Tensor]:
    """The most probable alignment of each pair under the HMM, by max-product dynamic programming in
    log space (the recursion Q(i, j) = p(f_j | e_i) max_{i'} [p(i | i', I) Q(i', j − 1)] of Vogel et al.).

    Returns one list per pair with a_j in 0 … I − 1 (or −1 for the empty word) and the log
    probability of each best alignment (B,).
    """
    log_init, log_trans, log_emit = hmm_log_parameters(params, data)
    B, J, S = log_emit.shape
    delta = log_init + log_emit[:, 0]  # (B, S)
    stay = torch.arange(S, device=delta.device).expand(B, S)  # (B, S) pointer of a padded step
    pointers = []
    for j in range(1, J):
        best, arg = (delta[:, :, None] + log_trans).max(dim=1)  # (B, S), (B, S)
        active = (j < data.tgt_lens)[:, None]  # (B, 1)
        delta = torch.where(active, best + log_emit[:, j], delta)
        pointers.append(torch.where(active, arg, stay))
    best_logp, state = delta.max(dim=-1)  # (B,), (B,) best last state
    path = [state]
    for j in range(J - 1, 0, -1):  # follow the pointers back, all sentences at once
        state = pointers[j - 1].gather(1, state[:, None]).squeeze(1)  # (B,)
        path.append(state)
    path = torch.stack(path[::-1], dim=1).cpu()  # (B, J)
    I = data.src.shape[1]
    path = torch.where(path < I, path, -1)  # an empty twin aligns to nothing
    paths = [path[b, :n].tolist() for b, n in enumerate(data.tgt_lens.tolist())]
    return paths, best_logp


def train_hmm(data: Encoded, params: HMMParams, iterations: int, mm_steps: int = 10,
              progress: bool = False) -> tuple[HMMParams, list[float]]:
    """Run ``iterations`` EM iterations of the HMM from ``params`` (e.g. :func:`init_hmm` of Model 1's t).

    Returns the final parameters and the log-likelihood per target word before the first and after
    every iteration (``iterations + 1`` numbers, never decreasing).
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    history = []
    for _ in trange(iterations, desc="HMM", disable=not progress):
        stats = hmm_e_step(params, data)
        history.append(_per_word(stats.loglik, data))
        params = hmm_m_step(params, data, stats, mm_steps)
    history.append(_per_word(hmm_e_step(params, data).loglik, data))
    return params, history


# ------------------------------------------------------------------------- symmetrization
def alignment_to_links(alignment: Sequence[int], reverse: bool = False) -> set[Link]:
    """Links {(source index, target index)} of an alignment vector (a_j = −1: the empty word, no link).

    For a model trained with ``reverse`` (generating the pairs' source side), a_j is a target index
    for source word j, and the link is flipped back to (source, target).
    """
    links = {(i, j) for j, i in enumerate(alignment) if i >= 0}
    return {(j, i) for i, j in links} if reverse else links


SYMMETRIZATIONS = ("intersection", "union", "grow-diag", "grow-diag-final", "grow-diag-final-and")
_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def _check_links(links: Iterable[Link], source_len: int, target_len: int, name: str) -> set[Link]:
    links = set(links)
    for i, j in links:
        if not (0 <= i < source_len and 0 <= j < target_len):
            raise ValueError(f"{name} link {(i, j)} is outside {source_len} source x {target_len} target tokens")
    return links


def symmetrize(forward: Iterable[Link], backward: Iterable[Link], source_len: int, target_len: int,
               method: str = "grow-diag-final") -> set[Link]:
    """Combine the links of the two directions into one alignment.

    * ``intersection`` / ``union``: A1 ∩ A2 (precise) and A1 ∪ A2 (complete), Och & Ney (2003), Section 4.
    * ``grow-diag``: start from the intersection and repeatedly add a union link next to an alignment
      link (horizontally, vertically or diagonally) when its source or its target word is still
      unaligned — the expansion stage of the "diag" heuristic of Koehn et al. (2003), Section 4.5.
    * ``grow-diag-final``: then add the remaining links of ``forward``, then of ``backward``, whose
      source or target word is unaligned (the whole "diag" heuristic); ``grow-diag-final-and``
      requires both to be unaligned (Koehn et al.'s "diag-and").

    Links are (source index, target index); sweeps go over source positions, then target positions.
    """
    if method not in SYMMETRIZATIONS:
        raise ValueError(f"unknown symmetrization {method!r}; expected one of {SYMMETRIZATIONS}")
    a1 = _check_links(forward, source_len, target_len, "forward")
    a2 = _check_links(backward, source_len, target_len, "backward")
    if method == "intersection":
        return a1 & a2
    union = a1 | a2
    if method == "union":
        return union
    alignment = a1 & a2
    src_aligned = {i for i, _ in alignment}
    tgt_aligned = {j for _, j in alignment}

    def add(i: int, j: int) -> None:
        alignment.add((i, j))
        src_aligned.add(i)
        tgt_aligned.add(j)

    grew = True
    while grew:  # grow-diag
        grew = False
        for i in range(source_len):
            for j in range(target_len):
                if (i, j) not in alignment:
                    continue
                for di, dj in _NEIGHBOURS:
                    n = (i + di, j + dj)
                    if n in union and n not in alignment and (n[0] not in src_aligned or n[1] not in tgt_aligned):
                        add(*n)
                        grew = True
    if method == "grow-diag":
        return alignment
    both = method == "grow-diag-final-and"
    for directional in (a1, a2):  # final(-and)
        for i in range(source_len):
            for j in range(target_len):
                if (i, j) in directional and (i, j) not in alignment:
                    free_i, free_j = i not in src_aligned, j not in tgt_aligned
                    if (free_i and free_j) if both else (free_i or free_j):
                        add(i, j)
    return alignment


# ----------------------------------------------------------------- one direction, end to end
@dataclass
class DirectionalAligner:
    """Model 1 and the HMM trained in one direction, with their vocabularies and learning curves."""

    reverse: bool               # False: generate the target side from the source side
    src_vocab: Vocab            # the conditioning side (with NULL)
    tgt_vocab: Vocab            # the generated side
    model1: torch.Tensor        # (Vf, Ve) Model 1's t(f | e)
    hmm: HMMParams
    null: bool = True
    model1_history: list[float] = field(default_factory=list)  # log-likelihood per word, per iteration
    hmm_history: list[float] = field(default_factory=list)

    def encode(self, pairs: Sequence[Pair]) -> Encoded:
        return encode(pairs, self.src_vocab, self.tgt_vocab, self.reverse, self.model1.device)

    def links(self, pairs: Sequence[Pair], model: str = "hmm") -> list[set[Link]]:
        """Viterbi links of each pair, as (source index, target index) of the pairs."""
        data = self.encode(pairs)
        if model == "model1":
            alignments = model1_viterbi(self.model1, data, self.null)
        elif model == "hmm":
            alignments = hmm_viterbi(self.hmm, data)[0]
        else:
            raise ValueError(f"model must be 'model1' or 'hmm', got {model!r}")
        return [alignment_to_links(a, self.reverse) for a in alignments]

    def link_posteriors(self, pair: Pair, model: str = "hmm") -> torch.Tensor:
        """P(source word i and target word j are linked), as a (target, source) matrix for plotting.

        In the forward direction each row (target word) sums to 1 minus its empty-word posterior; in the
        reverse direction the columns do.
        """
        data = self.encode([pair])
        if model == "model1":
            post = model1_e_step(self.model1, data, self.null)[0][0, :, int(self.null):]  # (J, I)
        elif model == "hmm":
            I = data.src.shape[1]
            post = hmm_e_step(self.hmm, data).gamma[0, :, :I]  # (J, I)
        else:
            raise ValueError(f"model must be 'model1' or 'hmm', got {model!r}")
        return post.T if self.reverse else post  # (target words, source words) of the pair


def train_direction(pairs: Sequence[Pair], config: AlignerConfig | None = None, reverse: bool = False,
                    device: torch.device | str | None = None, dtype: torch.dtype = torch.float64,
                    progress: bool = False) -> DirectionalAligner:
    """Train Model 1 and then the HMM (from Model 1's table) on ``pairs`` in one direction.

    ``reverse=False`` models Pr(target | source), each target word linked to one source word;
    ``reverse=True`` models Pr(source | target). Train both and :func:`symmetrize` their links.
    """
    config = config or AlignerConfig()
    src_vocab, tgt_vocab = build_vocabularies(pairs, reverse)
    data = encode(pairs, src_vocab, tgt_vocab, reverse, device)
    t = uniform_lexicon(src_vocab, tgt_vocab, device, dtype)
    t, history1 = train_model1(data, t, config.model1_iterations, config.null, progress)
    hmm = init_hmm(t, data.src.shape[1], config.null, config.p_null)
    hmm, history2 = train_hmm(data, hmm, config.hmm_iterations, config.jump_mm_steps, progress)
    return DirectionalAligner(reverse, src_vocab, tgt_vocab, t, hmm, config.null, history1, history2)
