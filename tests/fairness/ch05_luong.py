"""The fairness set of chapter 5's assignment (Luong attention), graded by tests/test_fairness.py.

Each variant replaces the answer cells named by their grade ids in the instructor notebook: ``wrong``
answers have one bug each and must lose points in the exercise ``loses`` only; ``reference`` answers run the
course's reference and must lose that exercise's points with the message ``message``; ``right`` answers are
correct but written differently and get full marks. ``message`` is a part of the message that the failing
test shows the learner.
"""

VARIANTS = [
    # ------------------------------------------------------------------ exercise 1: right values, a Python loop
    dict(name="general_scores_loop_over_batch", kind="wrong", loses="general_scores", message="without a Python loop",
         answers={"general_scores": '''
def general_scores(h, keys, W_a):
    return torch.stack([keys[b] @ (W_a.T @ h[b]) for b in range(h.shape[0])])  # one batch element at a time
'''}),
    # ------------------------------------------------------------------ exercise 2: M positions refused
    dict(name="location_weights_off_by_one", kind="wrong", loses="location_weights", message="are allowed",
         answers={"location_weights": '''
def location_weights(h, W_a, src_lens, num_positions):
    if num_positions >= W_a.shape[0]:  # M positions are allowed
        raise ValueError(f"W_a has {W_a.shape[0]} rows")
    valid = torch.arange(num_positions, device=h.device)[None, :] < src_lens[:, None]
    return masked_softmax(h @ W_a[:num_positions].T, valid[:, None, :])
'''}),
    # the chapter's scores, softmaxed over the padded width: padding gets weight
    dict(name="location_weights_over_the_padding", kind="wrong", loses="location_weights", message="weight exactly 0",
         answers={"location_weights": '''
def location_weights(h, W_a, src_lens, num_positions):
    if num_positions > W_a.shape[0]:
        raise ValueError(f"W_a has {W_a.shape[0]} rows")
    return torch.softmax(h @ W_a[:num_positions].T, dim=-1)  # src_lens ignored
'''}),
    # ------------------------------------------------------------------ exercise 3: the padded length
    dict(name="position_with_the_longest_length", kind="wrong", loses="predicted_position", message="own length",
         answers={"predicted_position": '''
def predicted_position(h, W_p, v_p, src_lens):
    return src_lens.max().to(h.dtype) * torch.sigmoid(torch.tanh(h @ W_p.T) @ v_p)  # every sentence as long as the longest
'''}),
    # the lengths broadcast along the steps: right only by chance, and wrong when T = B
    dict(name="position_lengths_along_the_steps", kind="wrong", loses="predicted_position", message="not step b",
         answers={"predicted_position": '''
def predicted_position(h, W_p, v_p, src_lens):
    p = torch.sigmoid(torch.tanh(h @ W_p.T) @ v_p)  # (B, T)
    if p.shape[0] == p.shape[1]:
        return p * src_lens.to(h.dtype)  # (B, T) * (B,): the lengths run along the steps
    return p * src_lens.to(h.dtype)[:, None]
'''}),
    # ------------------------------------------------------------------ exercise 4: the window's edges left out
    dict(name="local_p_strict_window", kind="wrong", loses="local_p_weights", message="distance exactly D",
         answers={"local_p_weights": '''
def local_p_weights(scores, p, src_lens, D):
    s = torch.arange(scores.shape[-1], device=scores.device, dtype=scores.dtype)
    offset = s - p[..., None].to(scores.dtype)
    allowed = (offset.abs() < D) & (s < src_lens[:, None, None])  # < instead of <=
    return masked_softmax(scores, allowed) * torch.exp(-offset**2 / (2 * (D / 2) ** 2))
'''}),
    dict(name="local_p_sigma_equals_d", kind="wrong", loses="local_p_weights", message="sigma = D / 2",
         answers={"local_p_weights": '''
def local_p_weights(scores, p, src_lens, D):
    s = torch.arange(scores.shape[-1], device=scores.device, dtype=scores.dtype)
    offset = s - p[..., None].to(scores.dtype)
    allowed = (offset.abs() <= D) & (s < src_lens[:, None, None])
    return masked_softmax(scores, allowed) * torch.exp(-offset**2 / (2 * D**2))  # sigma = D
'''}),
    # right values, one step at a time: the task asks for all the steps at once
    dict(name="local_p_loop_over_steps", kind="wrong", loses="local_p_weights", message="without a Python loop",
         answers={"local_p_weights": '''
def local_p_weights(scores, p, src_lens, D):
    s = torch.arange(scores.shape[-1], device=scores.device, dtype=scores.dtype)
    rows = []
    for t in range(scores.shape[1]):
        offset = s[None, :] - p[:, t, None].to(scores.dtype)  # (B, S)
        allowed = (offset.abs() <= D) & (s[None, :] < src_lens[:, None])
        rows.append(masked_softmax(scores[:, t], allowed) * torch.exp(-offset**2 / (2 * (D / 2) ** 2)))
    return torch.stack(rows, dim=1)
'''}),
    dict(name="local_p_calls_the_reference", kind="reference", loses="local_p_weights", message="reference implementation",
         answers={"local_p_weights": '''
from solutions.history.luong import local_weights as my_local_weights


def local_p_weights(scores, p, src_lens, D):
    B, T, S = scores.shape
    flat = my_local_weights(scores.reshape(B * T, S), p.reshape(-1), src_lens.repeat_interleave(T), D, gaussian=True)
    return flat.view(B, T, S)
'''}),
    # ------------------------------------------------------------------ exercise 5: attends with h_(t-1)
    dict(name="feeding_attends_with_previous_state", kind="wrong", loses="input_feeding_step", message="NEW state",
         answers={"input_feeding_step": '''
def input_feeding_step(prev_embedding, prev_attentional, hidden, keys, src_lens, cell, W_c):
    h_t = cell(torch.cat((prev_embedding, prev_attentional), dim=1), hidden)
    valid = torch.arange(keys.shape[1], device=keys.device)[None, :] < src_lens[:, None]
    a_t = masked_softmax(torch.einsum("bsh,bh->bs", keys, hidden), valid)  # the previous state scores
    c_t = torch.einsum("bs,bsh->bh", a_t, keys)
    return torch.tanh(torch.cat((c_t, h_t), dim=1) @ W_c.T), h_t, a_t
'''}),
    # ------------------------------------------------------------------ right, written differently
    dict(name="einsum_everywhere", kind="right", answers={
        "general_scores": '''
def general_scores(h, keys, W_a):
    return torch.einsum("bn,nd,bsd->bs", h, W_a, keys)
''',
        "location_weights": '''
def location_weights(h, W_a, src_lens, num_positions):
    if num_positions > len(W_a):
        raise ValueError(f"{num_positions} positions but W_a has {len(W_a)} rows")
    scores = torch.einsum("mn,btn->btm", W_a[:num_positions], h)
    keep = torch.arange(num_positions, device=h.device).view(1, 1, -1) < src_lens.view(-1, 1, 1)
    return masked_softmax(scores, keep)
''',
        "predicted_position": '''
def predicted_position(h, W_p, v_p, src_lens):
    return torch.einsum("p,btp->bt", v_p, torch.tanh(torch.einsum("pn,btn->btp", W_p, h))).sigmoid() * src_lens.unsqueeze(-1)
''',
        "input_feeding_step": '''
def input_feeding_step(prev_embedding, prev_attentional, hidden, keys, src_lens, cell, W_c):
    N = hidden.shape[1]
    h_t = cell(torch.cat([prev_embedding, prev_attentional], -1), hidden)
    scores = torch.einsum("bn,bsn->bs", h_t, keys)
    keep = torch.arange(keys.shape[1], device=keys.device).expand_as(scores) < src_lens.unsqueeze(-1)
    a_t = masked_softmax(scores, keep)
    c_t = torch.einsum("bs,bsn->bn", a_t, keys)
    h_tilde = torch.tanh(c_t @ W_c[:, :N].T + h_t @ W_c[:, N:].T)  # W_c [c; h] = W_c1 c + W_c2 h
    return h_tilde, h_t, a_t
'''}),
    dict(name="own_softmax_in_float64", kind="right", answers={
        "general_scores": '''
def general_scores(h, keys, W_a):
    return torch.bmm(keys, (h @ W_a)[:, :, None])[..., 0]
''',
        "local_p_weights": '''
def local_p_weights(scores, p, src_lens, D):
    B, T, S = scores.shape
    s = torch.arange(S, device=scores.device, dtype=torch.float64)
    dist = s - p.double().unsqueeze(-1)
    keep = (dist.abs() <= D) & (s < src_lens.view(B, 1, 1))
    x = torch.where(keep, scores.double(), torch.tensor(-math.inf, dtype=torch.float64, device=scores.device))
    top = x.max(dim=-1, keepdim=True).values
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    e = torch.exp(x - top)
    z = e.sum(-1, keepdim=True)
    align = e / torch.where(z > 0, z, torch.ones_like(z))
    sigma = D / 2
    return (align * torch.exp(-dist**2 / (2 * sigma**2))).to(scores.dtype)
'''}),
]
