"""IBM Model 1 and the HMM alignment model: against brute-force enumeration of all alignments,
hand-computed EM steps and symmetrizations, and measured properties on the toy corpora."""
import itertools
import math

import pytest
import torch

from solutions.metrics import alignment_scores
from solutions.data import Pair, generate_dates, generate_sentences, sentence_pair
from solutions.history.ibm_model1 import (NULL, NULL_ID, build_vocabularies, encode, model1_e_step, model1_m_step, model1_viterbi, train_model1, uniform_lexicon)
from solutions.history.word_aligner import AlignerConfig, train_direction
from solutions.history.hmm_alignment import (HMMParams, backward_log, forward_log, hmm_e_step, hmm_log_parameters, hmm_m_step, hmm_viterbi, init_hmm, jump_probabilities, train_hmm)
from solutions.history.symmetrization import alignment_to_links, symmetrize


@pytest.fixture(autouse=True)
def single_thread(one_thread):
    """The tensors here are small: one thread avoids the cost of synchronising threads."""


def pair(source: str, target: str) -> Pair:
    return Pair(tuple(source.split()), tuple(target.split()), frozenset(), frozenset(), source, target)


TINY = [pair("a b c", "x y z x"), pair("b a", "y x w"), pair("c", "z")]


def random_lexicon(src_vocab, tgt_vocab, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    t = torch.rand(len(tgt_vocab), len(src_vocab), generator=gen, dtype=torch.float64) + 0.05
    return (t / t.sum(0)).to(device)  # (Vf, Ve), columns sum to 1


def random_hmm(src_vocab, tgt_vocab, device, null, seed=0, max_jump=3):
    gen = torch.Generator().manual_seed(seed + 1)
    jumps = torch.rand(2 * max_jump + 1, generator=gen, dtype=torch.float64) + 0.1
    return HMMParams(random_lexicon(src_vocab, tgt_vocab, device, seed), jumps.to(device), null, 0.3)


# ------------------------------------------------------------------------- brute force
def brute_model1(t, data, b, null):
    """log Σ_a Pr(f, a | e) and the best alignment, enumerating all (I + 1)^J alignments (Brown eqs. 5-6)."""
    I, J = int(data.src_lens[b]), int(data.tgt_lens[b])
    src = ([NULL_ID] if null else []) + data.src[b, :I].tolist()
    tgt = data.tgt[b, :J].tolist()
    total, best, best_a = 0.0, -1.0, None
    for a in itertools.product(range(len(src)), repeat=J):
        p = math.prod(float(t[f, src[i]]) for f, i in zip(tgt, a)) / len(src) ** J
        total += p
        if p > best:
            best, best_a = p, [i - int(null) for i in a]
    return math.log(total), best_a


def brute_hmm(params, data, b):
    """Every state sequence of the HMM written out from its definition: positions 0 … I−1 and (with
    the empty word) their twins, Vogel eq. 5 jumps, Och & Ney eqs. 14-16 for the empty word.

    Returns log Pr(f | e), the best alignment (−1 for the empty word), its log probability, the state
    posteriors (J, S) over positions then twins, and the expected jumps (I, I)."""
    I, J = int(data.src_lens[b]), int(data.tgt_lens[b])
    t, s, D = params.t, params.jumps.tolist(), params.max_jump
    p0 = params.p_null if params.null else 0.0
    src, tgt = data.src[b, :I].tolist(), data.tgt[b, :J].tolist()

    def jump(i_prev, i):
        width = lambda k: s[max(-D, min(D, k - i_prev)) + D]  # noqa: E731
        return width(i) / sum(width(k) for k in range(I))

    states = [(i, False) for i in range(I)] + ([(i, True) for i in range(I)] if params.null else [])
    total, best, best_seq = 0.0, -1.0, None
    gamma = torch.zeros(J, len(states), dtype=torch.float64)
    jumps = torch.zeros(I, I, dtype=torch.float64)
    for seq in itertools.product(range(len(states)), repeat=J):
        p = 1.0
        for j, k in enumerate(seq):
            i, empty = states[k]
            if j == 0:
                p *= (p0 if empty else 1.0 - p0) / I
            else:
                i_prev = states[seq[j - 1]][0]
                p *= (p0 * (i == i_prev)) if empty else (1.0 - p0) * jump(i_prev, i)
            p *= float(t[tgt[j], NULL_ID if empty else src[i]])
        total += p
        for j, k in enumerate(seq):
            gamma[j, k] += p
        for j in range(1, J):
            i, empty = states[seq[j]]
            if not empty:
                jumps[states[seq[j - 1]][0], i] += p
        if p > best:
            best, best_seq = p, seq
    alignment = [-1 if states[k][1] else states[k][0] for k in best_seq]
    return math.log(total), alignment, math.log(best), gamma / total, jumps / total


# ------------------------------------------------------------------------ vocabularies, data
def test_vocabularies_and_encoding(device):
    src_vocab, tgt_vocab = build_vocabularies(TINY)
    assert src_vocab.token_to_id(NULL) == NULL_ID and NULL not in tgt_vocab
    data = encode(TINY, src_vocab, tgt_vocab, device=device)
    assert data.src.shape == (3, 3) and data.tgt.shape == (3, 4) and data.src.device.type == device.type
    assert data.src_lens.tolist() == [3, 2, 1] and data.tgt_lens.tolist() == [4, 3, 1]
    assert data.src[2, 1:].tolist() == [0, 0], "padding is the PAD id"
    assert data.tgt[0].tolist() == [tgt_vocab.token_to_id(w) for w in "x y z x".split()]
    # reversed: the target side is conditioned on and gets NULL
    rsrc, rtgt = build_vocabularies(TINY, reverse=True)
    assert "x" in rsrc and "a" in rtgt and rsrc.token_to_id(NULL) == NULL_ID
    assert encode(TINY, rsrc, rtgt, reverse=True).src_lens.tolist() == [4, 3, 1]


def test_bad_data_is_refused():
    with pytest.raises(ValueError, match="at least one sentence pair"):
        build_vocabularies([])
    with pytest.raises(ValueError, match="pair 1 has 0 source"):
        build_vocabularies([TINY[0], Pair((), ("x",), frozenset(), frozenset(), "", "x")])
    _, tgt_vocab = build_vocabularies(TINY)
    with pytest.raises(ValueError, match="right after its specials"):
        encode(TINY, tgt_vocab, tgt_vocab)


# --------------------------------------------------------------------------------- Model 1
def test_model1_em_step_by_hand(device):
    """Corpus {a b → x y, a → x}, no empty word, t uniform: the first E-step gives each target word
    of pair 1 half to a and half to b, so c(x|a) = 1.5, c(y|a) = 0.5, c(x|b) = c(y|b) = 0.5."""
    pairs = [pair("a b", "x y"), pair("a", "x")]
    src_vocab, tgt_vocab = build_vocabularies(pairs)
    data = encode(pairs, src_vocab, tgt_vocab, device=device)
    t = uniform_lexicon(src_vocab, tgt_vocab, device)
    post, loglik = model1_e_step(t, data, null=False)
    torch.testing.assert_close(post[0], torch.full((2, 2), 0.5, dtype=torch.float64, device=device))
    torch.testing.assert_close(post[1], torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64, device=device))
    V = len(tgt_vocab)
    expected = torch.tensor([2 * math.log(2 / V / 2), math.log(1 / V)], dtype=torch.float64, device=device)
    torch.testing.assert_close(loglik, expected)
    t = model1_m_step(t, data, post, null=False)
    a, b = src_vocab.token_to_id("a"), src_vocab.token_to_id("b")
    x, y = tgt_vocab.token_to_id("x"), tgt_vocab.token_to_id("y")
    assert t[x, a].item() == pytest.approx(0.75) and t[y, a].item() == pytest.approx(0.25)
    assert t[x, b].item() == pytest.approx(0.5) and t[y, b].item() == pytest.approx(0.5)
    torch.testing.assert_close(t.sum(0), torch.ones(len(src_vocab), dtype=torch.float64, device=device))


@pytest.mark.parametrize("null", [False, True])
def test_model1_matches_brute_force(device, null):
    src_vocab, tgt_vocab = build_vocabularies(TINY)
    data = encode(TINY, src_vocab, tgt_vocab, device=device)
    t = random_lexicon(src_vocab, tgt_vocab, device)
    post, loglik = model1_e_step(t, data, null)
    viterbi = model1_viterbi(t, data, null)
    for b in range(len(TINY)):
        logz, best = brute_model1(t, data, b, null)
        assert loglik[b].item() == pytest.approx(logz, rel=1e-12)
        assert viterbi[b] == best
    # posteriors sum to 1 per real target position, 0 on padding
    sums = post.sum(-1)
    torch.testing.assert_close(sums, data.tgt_mask.to(torch.float64))
    assert post.dtype == torch.float64 and post.device.type == device.type


def test_model1_likelihood_never_decreases(device):
    pairs = generate_sentences(80, seed=3)
    src_vocab, tgt_vocab = build_vocabularies(pairs)
    data = encode(pairs, src_vocab, tgt_vocab, device=device)
    _, history = train_model1(data, uniform_lexicon(src_vocab, tgt_vocab, device), iterations=6)
    assert len(history) == 7
    assert all(b >= a - 1e-10 for a, b in zip(history, history[1:])), history
    assert history[-1] > history[0] + 1.0, "EM must learn something from uniform"


def test_model1_errors(device):
    src_vocab, tgt_vocab = build_vocabularies(TINY)
    data = encode(TINY, src_vocab, tgt_vocab, device=device)
    t = uniform_lexicon(src_vocab, tgt_vocab, device)
    with pytest.raises(ValueError, match=r"\(Vf, Ve\)"):
        model1_e_step(t[:, :3], data)
    with pytest.raises(ValueError, match="posteriors have shape"):
        model1_m_step(t, data, torch.zeros(3, 4, 3, dtype=torch.float64, device=device), null=True)
    with pytest.raises(ValueError, match="iterations must be >= 0"):
        train_model1(data, t, -1)
    zero = t.clone()
    zero[tgt_vocab.token_to_id("w")] = 0.0
    with pytest.raises(ValueError, match="sentence pair 1 has a target word"):
        model1_e_step(zero, data)


# ------------------------------------------------------------------------------------- HMM
def test_jump_probabilities_by_hand(device):
    """s(−1), s(0), s(1) = 1, 2, 3 and I = 3: from i' = 0 the widths are 0, 1, 2 → 2, 3, 3 (clamped)."""
    jumps = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, device=device)
    p = jump_probabilities(jumps, torch.tensor([3, 2], device=device), 3)
    expected = torch.tensor([[2, 3, 3], [1, 2, 3], [1, 1, 2]], dtype=torch.float64, device=device)
    torch.testing.assert_close(p[0], expected / expected.sum(-1, keepdim=True))
    torch.testing.assert_close(p[1, :2, :2], torch.tensor([[0.4, 0.6], [1 / 3, 2 / 3]], dtype=torch.float64, device=device))
    assert torch.all(p[1, 2] == 0) and torch.all(p[1, :, 2] == 0), "positions past the sentence get nothing"


def test_jump_distribution_is_normalised(device):
    gen = torch.Generator().manual_seed(0)
    jumps = torch.rand(9, generator=gen, dtype=torch.float64).to(device)
    jumps[0] = 0.0
    lens = torch.tensor([1, 4, 7, 5], device=device)
    p = jump_probabilities(jumps, lens, 7)
    for b, n in enumerate(lens.tolist()):
        torch.testing.assert_close(p[b, :n].sum(-1), torch.ones(n, dtype=torch.float64, device=device))
        assert torch.all(p[b, n:] == 0)
    # a window whose weights are all zero falls back to uniform
    p = jump_probabilities(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64, device=device), lens[1:2], 4)
    torch.testing.assert_close(p[0, 3], torch.full((4,), 0.25, dtype=torch.float64, device=device))


@pytest.mark.parametrize("null", [False, True])
def test_forward_backward_match_brute_force(device, null):
    src_vocab, tgt_vocab = build_vocabularies(TINY)
    data = encode(TINY, src_vocab, tgt_vocab, device=device)
    params = random_hmm(src_vocab, tgt_vocab, device, null)
    stats = hmm_e_step(params, data)
    log_init, log_trans, log_emit = hmm_log_parameters(params, data)
    log_alpha, loglik = forward_log(log_init, log_trans, log_emit, data.tgt_lens)
    log_beta = backward_log(log_trans, log_emit, data.tgt_lens)
    I = data.src.shape[1]
    for b in range(len(TINY)):
        n_src, n_tgt = int(data.src_lens[b]), int(data.tgt_lens[b])
        logz, _, _, gamma, jumps = brute_hmm(params, data, b)
        assert loglik[b].item() == pytest.approx(logz, rel=1e-12), "log-space forward pass"
        assert stats.loglik[b].item() == pytest.approx(logz, rel=1e-12), "scaled forward pass"
        # α_j β_j / Z are the state posteriors, from the log-space passes too
        post = (log_alpha[b, :n_tgt] + log_beta[b, :n_tgt] - loglik[b]).exp().cpu()
        cols = list(range(n_src)) + ([I + i for i in range(n_src)] if null else [])
        torch.testing.assert_close(post[:, cols], gamma)
        torch.testing.assert_close(stats.gamma[b, :n_tgt, cols].cpu(), gamma)
        torch.testing.assert_close(stats.jumps[b, :n_src, :n_src].cpu(), jumps)
    torch.testing.assert_close(stats.gamma.sum(-1), data.tgt_mask.to(torch.float64))


@pytest.mark.parametrize("null", [False, True])
def test_viterbi_matches_brute_force(device, null):
    src_vocab, tgt_vocab = build_vocabularies(TINY)
    data = encode(TINY, src_vocab, tgt_vocab, device=device)
    for seed in range(3):
        params = random_hmm(src_vocab, tgt_vocab, device, null, seed=seed)
        paths, best_logp = hmm_viterbi(params, data)
        for b in range(len(TINY)):
            _, alignment, logp, _, _ = brute_hmm(params, data, b)
            assert paths[b] == alignment
            assert best_logp[b].item() == pytest.approx(logp, rel=1e-12)


def test_long_sentences_do_not_underflow(device):
    """200 words, each probability around 1/200: the likelihood is about 1e-460, below float64's range."""
    gen = torch.Generator().manual_seed(0)
    words = [f"w{k}" for k in range(40)]
    draw = lambda n: " ".join(words[int(k)] for k in torch.randint(40, (n,), generator=gen))  # noqa: E731
    pairs = [pair(draw(200), draw(200)), pair(draw(150), draw(190))]
    src_vocab, tgt_vocab = build_vocabularies(pairs)
    data = encode(pairs, src_vocab, tgt_vocab, device=device)
    params = init_hmm(uniform_lexicon(src_vocab, tgt_vocab, device), 200)
    stats = hmm_e_step(params, data)
    assert torch.isfinite(stats.loglik).all() and bool((stats.loglik < -700).all()), stats.loglik
    log_init, log_trans, log_emit = hmm_log_parameters(params, data)
    _, loglik = forward_log(log_init, log_trans, log_emit, data.tgt_lens)
    torch.testing.assert_close(loglik, stats.loglik)
    torch.testing.assert_close(stats.gamma.sum(-1), data.tgt_mask.to(torch.float64))
    params = hmm_m_step(params, data, stats)
    paths, logp = hmm_viterbi(params, data)
    assert [len(p) for p in paths] == [200, 190] and torch.isfinite(logp).all()


def test_jump_m_step_is_the_maximum_for_one_window(device):
    """All jumps leave position 0 of sentences of one length: the maximum of Q is p(i | 0) ∝ counts."""
    pairs = [pair("a b c d", "x y")] * 3
    src_vocab, tgt_vocab = build_vocabularies(pairs)
    data = encode(pairs, src_vocab, tgt_vocab, device=device)
    params = init_hmm(uniform_lexicon(src_vocab, tgt_vocab, device), 4, null=False)
    stats = hmm_e_step(params, data)
    counts = torch.tensor([0.5, 3.0, 1.5, 1.0], dtype=torch.float64, device=device)
    stats.jumps = torch.zeros_like(stats.jumps)
    stats.jumps[0, 0] = counts
    new = hmm_m_step(params, data, stats, mm_steps=200)
    p = jump_probabilities(new.jumps, data.src_lens[:1], 4)[0, 0]
    torch.testing.assert_close(p, counts / counts.sum(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("make", [generate_sentences, generate_dates])
def test_hmm_likelihood_never_decreases(device, make):
    pairs = make(80, seed=5)
    src_vocab, tgt_vocab = build_vocabularies(pairs)
    data = encode(pairs, src_vocab, tgt_vocab, device=device)
    t, _ = train_model1(data, uniform_lexicon(src_vocab, tgt_vocab, device), iterations=2)
    params, history = train_hmm(data, init_hmm(t, data.src.shape[1]), iterations=5, mm_steps=5)
    assert len(history) == 6
    assert all(b >= a - 1e-10 for a, b in zip(history, history[1:])), history
    assert history[-1] > history[0] + 0.05
    probs = jump_probabilities(params.jumps, data.src_lens, data.src.shape[1])
    torch.testing.assert_close(probs.sum(-1), data.src_mask.to(torch.float64))


def test_hmm_errors(device):
    src_vocab, tgt_vocab = build_vocabularies(TINY)
    data = encode(TINY, src_vocab, tgt_vocab, device=device)
    t = uniform_lexicon(src_vocab, tgt_vocab, device)
    with pytest.raises(ValueError, match="odd length"):
        HMMParams(t, torch.ones(4, dtype=torch.float64, device=device))
    with pytest.raises(ValueError, match="p_null"):
        HMMParams(t, torch.ones(5, dtype=torch.float64, device=device), p_null=1.0)
    with pytest.raises(ValueError, match="non-negative"):
        jump_probabilities(-torch.ones(3, dtype=torch.float64, device=device), data.src_lens, 3)
    with pytest.raises(ValueError, match="num_positions is 2"):
        jump_probabilities(torch.ones(3, dtype=torch.float64, device=device), data.src_lens, 2)
    params = init_hmm(t, 3)
    stats = hmm_e_step(params, data)
    with pytest.raises(ValueError, match="do not fit this data"):
        hmm_m_step(init_hmm(t, 3, null=False), data, stats)
    log_init, log_trans, log_emit = hmm_log_parameters(params, data)
    with pytest.raises(ValueError, match=r"log_trans \(B, S, S\)"):
        forward_log(log_init, log_trans[:, :2], log_emit, data.tgt_lens)
    with pytest.raises(ValueError, match="lengths in 1"):
        forward_log(log_init, log_trans, log_emit, data.tgt_lens + 5)
    zero = t.clone()
    zero[tgt_vocab.token_to_id("w")] = 0.0
    with pytest.raises(ValueError, match="sentence pair 1 has probability 0"):
        hmm_e_step(init_hmm(zero, 3), data)
    with pytest.raises(ValueError, match="p_null"):
        AlignerConfig(p_null=-0.1)
    with pytest.raises(ValueError, match="hmm_iterations"):
        AlignerConfig(hmm_iterations=-1)


# -------------------------------------------------------------------------- symmetrization
def test_symmetrization_by_hand():
    r"""Source 0-2, target 0-2.  forward = {(0,0), (1,1), (2,1)}, backward = {(0,0), (1,1), (1,2)}.

    intersection {(0,0), (1,1)}; grow-diag adds the union neighbours of (1,1) whose source or target
    is unaligned: (2,1) (source 2 free) and (1,2) (target 2 free)."""
    forward, backward = {(0, 0), (1, 1), (2, 1)}, {(0, 0), (1, 1), (1, 2)}
    assert symmetrize(forward, backward, 3, 3, "intersection") == {(0, 0), (1, 1)}
    assert symmetrize(forward, backward, 3, 3, "union") == {(0, 0), (1, 1), (2, 1), (1, 2)}
    assert symmetrize(forward, backward, 3, 3, "grow-diag") == {(0, 0), (1, 1), (2, 1), (1, 2)}


def test_grow_diag_final_by_hand():
    """forward {(0,0), (2,3)}, backward {(0,0), (1,1), (3,0)}: the intersection is {(0,0)}; its
    diagonal neighbour (1,1) joins in grow-diag; (2,3) is next to no link, so only the final step adds
    it (both its words free); (3,0) has target 0 taken, so final adds it (source 3 free) but
    final-and does not."""
    forward, backward = {(0, 0), (2, 3)}, {(0, 0), (1, 1), (3, 0)}
    assert symmetrize(forward, backward, 4, 4, "grow-diag") == {(0, 0), (1, 1)}
    assert symmetrize(forward, backward, 4, 4, "grow-diag-final") == {(0, 0), (1, 1), (2, 3), (3, 0)}
    assert symmetrize(forward, backward, 4, 4, "grow-diag-final-and") == {(0, 0), (1, 1), (2, 3)}
    # a diagonal chain grows link by link: (1,1) brings in (2,2)
    assert symmetrize({(0, 0), (2, 2)}, {(0, 0), (1, 1)}, 3, 3, "grow-diag") == {(0, 0), (1, 1), (2, 2)}


def test_grow_diag_does_not_add_links_between_aligned_words():
    # (1,0) neighbours (0,0) but source 1 and target 0 are both aligned already
    forward, backward = {(0, 0), (1, 1), (1, 0)}, {(0, 0), (1, 1)}
    assert symmetrize(forward, backward, 2, 2, "grow-diag") == {(0, 0), (1, 1)}
    assert symmetrize(forward, backward, 2, 2, "grow-diag-final") == {(0, 0), (1, 1)}


def test_symmetrization_errors_and_links():
    with pytest.raises(ValueError, match="unknown symmetrization"):
        symmetrize(set(), set(), 2, 2, "refined")
    with pytest.raises(ValueError, match=r"backward link \(0, 5\) is outside"):
        symmetrize({(0, 0)}, {(0, 5)}, 2, 2)
    assert alignment_to_links([2, -1, 0]) == {(2, 0), (0, 2)}
    assert alignment_to_links([2, -1, 0], reverse=True) == {(0, 2), (2, 0)}
    assert alignment_to_links([1, 1, -1], reverse=True) == {(0, 1), (1, 1)}


# ------------------------------------------------------------------- the toy corpora, measured
@pytest.fixture(scope="module")
def sentence_aligners():
    before = torch.get_num_threads()  # module fixtures start before the autouse one_thread fixture
    torch.set_num_threads(1)
    pairs = generate_sentences(300, seed=1)
    config = AlignerConfig(model1_iterations=5, hmm_iterations=4, jump_mm_steps=5)
    trained = pairs, train_direction(pairs, config), train_direction(pairs, config, reverse=True)
    torch.set_num_threads(before)
    return trained


def test_hmm_tells_machine_from_learning(sentence_aligners):
    """Model 1 is a bag of words: machine and learning always occur together, so 学习 gets exactly the
    same posterior on both. The HMM knows that 学习 comes right after 机器 and picks learning."""
    pairs, forward, _ = sentence_aligners
    chosen = [p for p in pairs if "learning" in p.source and p.target.count("学习") == 1][:10]
    assert len(chosen) >= 5
    for p in chosen:
        m, l, j = p.source.index("machine"), p.source.index("learning"), p.target.index("学习")
        model1 = forward.link_posteriors(p, "model1")  # (target, source)
        hmm = forward.link_posteriors(p, "hmm")
        assert model1[j, m].item() == pytest.approx(model1[j, l].item(), rel=1e-9), "a tie under Model 1"
        assert hmm[j, l].item() > 0.9, f"{p.source_text}: HMM posterior {hmm[j].tolist()}"
        assert (l, j) in forward.links([p], "hmm")[0]


def test_hmm_fits_the_corpus_better(sentence_aligners):
    _, forward, backward = sentence_aligners
    for direction in (forward, backward):
        assert direction.hmm_history[-1] > direction.model1_history[-1] + 0.3


def test_symmetrization_trades_precision_for_recall(sentence_aligners):
    pairs, forward, backward = sentence_aligners
    f, b = forward.links(pairs), backward.links(pairs)
    scores = {name: alignment_scores(links, pairs) for name, links in (("forward", f), ("backward", b))}
    for method in ("intersection", "union", "grow-diag"):
        combined = [symmetrize(x, y, len(p.source), len(p.target), method) for x, y, p in zip(f, b, pairs)]
        scores[method] = alignment_scores(combined, pairs)
    assert scores["intersection"].precision > max(scores["forward"].precision, scores["backward"].precision) + 0.01
    assert scores["union"].recall > max(scores["forward"].recall, scores["backward"].recall) + 0.01
    assert scores["intersection"].precision >= scores["grow-diag"].precision >= scores["union"].precision
    assert scores["intersection"].recall <= scores["grow-diag"].recall <= scores["union"].recall
    assert scores["grow-diag"].aer < 0.2


def test_directional_aligner_orientation(sentence_aligners):
    _, forward, backward = sentence_aligners
    p = sentence_pair("the book on the table")
    for direction in (forward, backward):
        post = direction.link_posteriors(p)
        assert post.shape == (len(p.target), len(p.source))
        (links,) = direction.links([p])
        assert all(0 <= i < len(p.source) and 0 <= j < len(p.target) for i, j in links)
    # forward: every target word has one source word (or NULL); backward: every source word one target
    assert torch.all(forward.link_posteriors(p).sum(1) <= 1 + 1e-9)
    assert torch.all(backward.link_posteriors(p).sum(0) <= 1 + 1e-9)
    assert {j for _, j in backward.links([p])[0]} <= set(range(len(p.target)))
    with pytest.raises(ValueError, match="model must be"):
        forward.links([p], "model2")


def test_train_direction_on_device(device):
    pairs = generate_dates(40, seed=2)
    aligner = train_direction(pairs, AlignerConfig.tiny(), device=device)
    assert aligner.model1.device.type == device.type and aligner.hmm.jumps.dtype == torch.float64
    assert len(aligner.model1_history) == 3 and len(aligner.hmm_history) == 3
    assert sum(aligner.hmm.jump_distribution().values()) == pytest.approx(1.0)
    links = aligner.links(pairs)
    assert len(links) == 40 and alignment_scores(links, pairs).precision > 0.3
