"""The fairness set of chapter 2's assignment (score, align, fuse), graded by tests/test_fairness.py.

Each variant replaces the answer cells named by their grade ids in the instructor notebook: ``wrong``
answers have one bug each and must lose points in the exercise ``loses`` only (the tests of every other
exercise use the reference in place of the buggy function); ``reference`` answers run the course's reference
and must lose that exercise's points with the message ``message``; ``right`` answers are correct but written
differently and get full marks. ``message`` is a part of the message that the failing test shows the learner.
"""

VARIANTS = [
    # ------------------------------------------------------------------ exercise 1: the scaled score forgets 1/sqrt(d)
    dict(name="scaled_score_without_sqrt", kind="wrong", loses="dot_scores", message="1/sqrt(d)",
         answers={"dot_scores": '''
def dot_scores(query, keys):
    return query @ keys.transpose(-2, -1)


def scaled_dot_scores(query, keys):
    return dot_scores(query, keys)  # the 1/sqrt(d) is missing
'''}),
    # ------------------------------------------------------------------ exercise 2: W used the wrong way round
    dict(name="bilinear_w_transposed", kind="wrong", loses="bilinear_scores",
         answers={"bilinear_scores": '''
def bilinear_scores(query, keys, W):
    return query @ W.T @ keys.transpose(-2, -1)  # q^T W^T k: only works when dq = dk, and is wrong then
'''}),
    # ------------------------------------------------------------------ exercise 3: queries and keys broadcast the wrong way
    dict(name="additive_pairs_transposed", kind="wrong", loses="additive_scores", message="expected (Tq, Tk)",
         answers={"additive_scores": '''
def additive_scores(query, keys, W_q, W_k, v):
    q = (query @ W_q.T).unsqueeze(-3)  # (..., 1, Tq, h)
    k = (keys @ W_k.T).unsqueeze(-2)  # (..., Tk, 1, h): the pairs come out (Tk, Tq)
    return torch.tanh(q + k) @ v
'''}),
    # right values, but a Python loop over the keys: the task says "without a Python loop"
    dict(name="additive_loop_over_keys", kind="wrong", loses="additive_scores", message="without a Python loop",
         answers={"additive_scores": '''
def additive_scores(query, keys, W_q, W_k, v):
    q = query @ W_q.T  # (..., Tq, h)
    columns = [torch.tanh(q + keys[..., j:j + 1, :] @ W_k.T) @ v for j in range(keys.shape[-2])]  # one key at a time
    return torch.stack(columns, dim=-1)  # (..., Tq, Tk)
'''}),
    # ------------------------------------------------------------------ exercise 4: off by one
    dict(name="lengths_off_by_one", kind="wrong", loses="lengths_to_mask", message="keys 0..length-1 are kept",
         answers={"lengths_to_mask": '''
def lengths_to_mask(valid_lens, num_keys):
    if (valid_lens < 0).any() or (valid_lens > num_keys).any():
        raise ValueError(f"valid lengths must lie in [0, {num_keys}]")
    return torch.arange(num_keys, device=valid_lens.device) <= valid_lens.unsqueeze(-1)  # keeps one key too many
'''}),
    # ------------------------------------------------------------------ exercise 5: issue 8, item 13
    dict(name="softmax_multiply_renormalise", kind="wrong", loses="masked_softmax", message="[0.2689, 0.7311, 0]",
         answers={"masked_softmax": '''
def masked_softmax(scores, mask):
    weights = torch.softmax(scores, dim=-1) * mask  # a large masked score takes all the mass first
    total = weights.sum(-1, keepdim=True)
    return weights / torch.where(total > 0, total, torch.ones_like(total))
'''}),
    dict(name="masked_fill_minus_1e4", kind="wrong", loses="masked_softmax", message="most negative finite",
         answers={"masked_softmax": '''
def masked_softmax(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, -1e4), dim=-1) * mask  # -1e4 is not small enough
'''}),
    # ------------------------------------------------------------------ exercise 6: the weights transposed
    dict(name="fuse_weights_transposed", kind="wrong", loses="fuse", message="row i of the output",
         answers={"fuse": '''
def fuse(weights, values):
    return weights.transpose(-2, -1) @ values
'''}),
    # ------------------------------------------------------------------ exercise 7: the reference, renamed
    dict(name="attend_calls_the_reference", kind="reference", loses="attend", message="reference implementation",
         answers={"attend": '''
from solutions.attention import attention as my_attention


def attend(query, keys, values, score_fn, mask=None):
    return my_attention(query, keys, values, score=score_fn, mask=mask)
'''}),
    # ------------------------------------------------------------------ right, written differently
    dict(name="einsum_everywhere", kind="right", answers={
        "dot_scores": '''
def dot_scores(query, keys):
    return torch.einsum("...qd,...kd->...qk", query, keys)


def scaled_dot_scores(query, keys):
    return torch.einsum("...qd,...kd->...qk", query / query.shape[-1] ** 0.5, keys)
''',
        "bilinear_scores": '''
def bilinear_scores(query, keys, W):
    return torch.einsum("...qa,ab,...kb->...qk", query, W, keys)
''',
        "additive_scores": '''
def additive_scores(query, keys, W_q, W_k, v):
    q = torch.einsum("ha,...qa->...qh", W_q, query)
    k = torch.einsum("hb,...kb->...kh", W_k, keys)
    return torch.einsum("...qkh,h->...qk", torch.tanh(q[..., :, None, :] + k[..., None, :, :]), v)
''',
        "fuse": '''
def fuse(weights, values):
    return torch.einsum("...qk,...kv->...qv", weights, values)
'''}),
    dict(name="softmax_by_hand_in_float64", kind="right", answers={
        "lengths_to_mask": '''
def lengths_to_mask(valid_lens, num_keys):
    if valid_lens.numel() and not (0 <= int(valid_lens.min()) and int(valid_lens.max()) <= num_keys):
        raise ValueError(f"lengths must lie in [0, {num_keys}]")
    return torch.ones(num_keys, dtype=torch.long, device=valid_lens.device).cumsum(0) <= valid_lens[:, None]
''',
        "masked_softmax": '''
def masked_softmax(scores, mask):
    x = scores.double().masked_fill(~mask, -math.inf)
    top = x.amax(-1, keepdim=True)
    e = torch.exp(x - torch.where(torch.isinf(top), torch.zeros_like(top), top))
    total = e.sum(-1, keepdim=True)
    return (e / torch.where(total > 0, total, torch.ones_like(total))).to(scores.dtype)
''',
        "attend": '''
def attend(query, keys, values, score_fn, mask=None):
    scores = score_fn(query, keys)
    weights = masked_softmax(scores, torch.ones_like(scores, dtype=torch.bool) if mask is None else mask)
    return fuse(weights, values), weights
'''}),
]
