"""The fairness set of chapter 3's assignment (word alignment with EM), graded by tests/test_fairness.py.

Each variant replaces the answer cells named by their grade ids in the instructor notebook: ``wrong``
answers have one bug each and must lose points in the exercise ``loses`` only; ``reference`` answers run the
course's reference and must lose that exercise's points with the message ``message``; ``right`` answers are
correct but written differently and get full marks. ``message`` is a part of the message that the failing
test shows the learner.
"""

VARIANTS = [
    # ------------------------------------------------------------------ exercise 1: the 1/I forgotten
    dict(name="e_step_without_one_over_i", kind="wrong", loses="model1_posteriors", message="log-likelihood",
         answers={"model1_posteriors": '''
def model1_posteriors(t, src, tgt):
    table = t[tgt][:, src]
    evidence = table.sum(1)
    return table / evidence[:, None], evidence.log().sum()  # log Pr(f | e) without the 1/I
'''}),
    # ------------------------------------------------------------------ exercise 2: repeated pairs counted once
    dict(name="m_step_index_plus_equals", kind="wrong", loses="model1_m_step", message="twice",
         answers={"model1_m_step": '''
def model1_m_step(corpus, posteriors, num_tgt, num_src):
    counts = posteriors[0].new_zeros(num_tgt, num_src)
    for (src, tgt), post in zip(corpus, posteriors):
        counts[tgt[:, None], src[None, :]] += post  # a repeated (f, e) pair is added once
    total = counts.sum(0)
    table = torch.full_like(counts, 1.0 / num_tgt)
    table[:, total > 0] = counts[:, total > 0] / total[total > 0]
    return table
'''}),
    dict(name="m_step_unseen_word_left_at_zero", kind="wrong", loses="model1_m_step", message="never occurs",
         answers={"model1_m_step": '''
def model1_m_step(corpus, posteriors, num_tgt, num_src):
    counts = posteriors[0].new_zeros(num_tgt, num_src)
    for (src, tgt), post in zip(corpus, posteriors):
        counts.index_put_((tgt[:, None].expand_as(post), src[None, :].expand_as(post)), post, accumulate=True)
    return counts / counts.sum(0).clamp_min(1e-300)  # a word that never occurs keeps a column of zeros
'''}),
    # ------------------------------------------------------------------ exercise 3: max-shifted sum, NaN on -inf
    dict(name="forward_manual_logsumexp", kind="wrong", loses="forward_log", message="cannot be reached",
         answers={"forward_log": '''
def forward_log(log_init, log_trans, log_emit):
    rows = [log_init + log_emit[0]]
    for j in range(1, log_emit.shape[0]):
        through = rows[-1][:, None] + log_trans
        top = through.max(0).values  # -inf for a state nobody moves into: -inf - (-inf) = NaN
        rows.append(top + torch.log(torch.exp(through - top).sum(0)) + log_emit[j])
    log_alpha = torch.stack(rows)
    return log_alpha, torch.logsumexp(log_alpha[-1], 0)
'''}),
    dict(name="forward_calls_the_reference", kind="reference", loses="forward_log", message="reference implementation",
         answers={"forward_log": '''
from solutions.history import hmm_alignment as hmm


def forward_log(log_init, log_trans, log_emit):
    a, l = hmm.forward_log(log_init[None], log_trans[None], log_emit[None], torch.tensor([len(log_emit)]))
    return a[0], l[0]
'''}),
    # ------------------------------------------------------------------ exercise 4: greedy, no backtracking
    dict(name="viterbi_greedy", kind="wrong", loses="viterbi", message="best path",
         answers={"viterbi": '''
def viterbi(log_init, log_trans, log_emit):
    delta = log_init + log_emit[0]
    states = [int(delta.argmax())]
    for j in range(1, log_emit.shape[0]):
        delta = (delta[:, None] + log_trans).max(0).values + log_emit[j]
        states.append(int(delta.argmax()))  # the best state of each step, not the best path
    return states, delta.max()
'''}),
    # ------------------------------------------------------------------ exercise 5: -1 used as an index
    dict(name="intersect_negative_index", kind="wrong", loses="intersect", message="-1 is not a position",
         answers={"intersect": '''
def intersect(forward, backward):
    return {(i, j) for j, i in enumerate(forward) if backward[i] == j}  # backward[-1] when forward[j] = -1
'''}),
    # ------------------------------------------------------------------ right, written differently
    dict(name="one_hot_einsum", kind="right", answers={
        "model1_posteriors": '''
def model1_posteriors(t, src, tgt):
    F = torch.nn.functional.one_hot(tgt, t.shape[0]).to(t.dtype)  # (J, Vf)
    E = torch.nn.functional.one_hot(src, t.shape[1]).to(t.dtype)  # (I, Ve)
    table = torch.einsum("jf,fe,ie->ji", F, t, E)
    z = table.sum(-1, keepdim=True)
    return table / z, torch.log(z.squeeze(-1)).sum() - len(tgt) * math.log(len(src))
''',
        "model1_m_step": '''
def model1_m_step(corpus, posteriors, num_tgt, num_src):
    dtype = posteriors[0].dtype
    counts = 0
    for (src, tgt), post in zip(corpus, posteriors):
        F = torch.nn.functional.one_hot(tgt, num_tgt).to(dtype)
        E = torch.nn.functional.one_hot(src, num_src).to(dtype)
        counts = counts + torch.einsum("jf,ji,ie->fe", F, post, E)
    total = counts.sum(0, keepdim=True)
    return torch.where(total > 0, counts / total.clamp_min(torch.finfo(dtype).tiny), torch.full_like(counts, 1 / num_tgt))
''',
        "forward_log": '''
def forward_log(log_init, log_trans, log_emit):
    J, S = log_emit.shape
    log_alpha = log_emit.new_empty(J, S)
    log_alpha[0] = log_init + log_emit[0]
    for j in range(1, J):
        log_alpha[j] = torch.logsumexp(log_alpha[j - 1].unsqueeze(-1) + log_trans, dim=-2) + log_emit[j]
    return log_alpha, log_alpha[-1].logsumexp(-1)
''',
        "intersect": '''
def intersect(forward, backward):
    a = set((i, j) for j, i in enumerate(forward) if i >= 0)
    b = set((i, j) for i, j in enumerate(backward) if j >= 0)
    return a & b
'''}),
    dict(name="float64_and_lists", kind="right", answers={
        "model1_posteriors": '''
def model1_posteriors(t, src, tgt):
    table = t.double()[tgt.unsqueeze(1), src.unsqueeze(0)]
    evidence = table.sum(1)
    loglik = torch.log(evidence).sum() - tgt.numel() * torch.log(torch.tensor(float(src.numel()), dtype=torch.float64))
    return (table / evidence.unsqueeze(1)).to(t.dtype), loglik.to(t.dtype)
''',
        "model1_m_step": '''
def model1_m_step(corpus, posteriors, num_tgt, num_src):
    counts = torch.zeros(num_tgt * num_src, dtype=torch.float64, device=posteriors[0].device)
    for (src, tgt), post in zip(corpus, posteriors):
        flat = (tgt[:, None] * num_src + src[None, :]).reshape(-1)
        counts.index_add_(0, flat, post.double().reshape(-1))
    counts = counts.view(num_tgt, num_src)
    total = counts.sum(0)
    table = torch.full_like(counts, 1.0 / num_tgt)
    seen = total > 0
    table[:, seen] = counts[:, seen] / total[seen]
    return table.to(posteriors[0].dtype)
''',
        "viterbi": '''
def viterbi(log_init, log_trans, log_emit):
    J = log_emit.shape[0]
    delta = log_init + log_emit[0]
    back = []
    for j in range(1, J):
        cand = delta.unsqueeze(1) + log_trans
        back.append(cand.argmax(0).tolist())
        delta = cand.amax(0) + log_emit[j]
    state = int(delta.argmax())
    path = [state] * J
    for j in range(J - 1, 0, -1):
        state = back[j - 1][state]
        path[j - 1] = state
    return path, delta[path[-1]]
''',
        "intersect": '''
def intersect(forward, backward):
    links = set()
    for i, j in enumerate(backward):
        if 0 <= j < len(forward) and forward[j] == i:
            links.add((i, j))
    return links
'''}),
]
