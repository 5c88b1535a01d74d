"""The HMM alignment model (Vogel, Ney & Tillmann 1996) trained with full EM (Baum–Welch).

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

The Viterbi alignment (Och & Ney eq. 5) is a max-product dynamic programme (the recursion under
Vogel eq. 6) in log space.

Shape letters: B, I, J, Vf and Ve as in :mod:`solutions.history.ibm_model1`, and
    S   HMM states: I source positions, then (with the empty word) their I empty twins
    K   jump widths: s(d) for d = −D … D, K = 2D + 1 (D, the widest jump, is ``HMMParams.max_jump``)
    L   distinct source lengths in a batch (not layers, in this module)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tqdm.auto import trange

from ..attention import lengths_to_mask
from ..train import show_progress
from .ibm_model1 import NULL_ID, Encoded, _check_lexicon, _lexical_counts, _normalise_columns, _per_word


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
    valid = lengths_to_mask(src_lens, num_positions)  # (B, I)
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
    targets = lengths_to_mask(lengths, num_positions).to(jumps.dtype)  # (L, I)
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
              progress: bool | None = None) -> tuple[HMMParams, list[float]]:
    """Run ``iterations`` EM iterations of the HMM from ``params`` (e.g. :func:`init_hmm` of Model 1's t).

    Returns the final parameters and the log-likelihood per target word before the first and after
    every iteration (``iterations + 1`` numbers, never decreasing).
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    history = []
    for _ in trange(iterations, desc="HMM", disable=not show_progress(progress), leave=False):
        stats = hmm_e_step(params, data)
        history.append(_per_word(stats.loglik, data))
        params = hmm_m_step(params, data, stats, mm_steps)
    history.append(_per_word(hmm_e_step(params, data).loglik, data))
    return params, history
