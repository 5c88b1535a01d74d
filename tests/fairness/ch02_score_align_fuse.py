"""The fairness set of chapter 2's assignment (score, align, fuse), graded by tests/test_fairness.py.

Each variant replaces the answer cells named by their grade ids in the instructor notebook: ``wrong``
answers have one bug each and must lose points in the exercise ``loses`` only (the tests of every other
exercise use the reference in place of the buggy function); ``reference`` answers run the course's reference
or a function the task forbids and must lose that exercise's points with the message ``message``; ``right``
answers are correct but written differently and get full marks. ``message`` is a part of the message that the
failing test shows the learner.
"""

VARIANTS = [
    # ------------------------------------------------------------------ exercise 1: the cosine score
    dict(name="cosine_without_eps", kind="wrong", loses="cosine_scores", message="not NaN",
         answers={"cosine_scores": '''
def cosine_scores(query, keys, tau=1.0):
    q = query / query.norm(dim=-1, keepdim=True)  # 0/0 for a zero vector
    k = keys / keys.norm(dim=-1, keepdim=True)
    return q @ k.transpose(-2, -1) / tau
'''}),
    dict(name="cosine_norm_over_positions", kind="wrong", loses="cosine_scores", message="the cosines are",
         answers={"cosine_scores": '''
def cosine_scores(query, keys, tau=1.0):
    q = query / query.norm(dim=-2, keepdim=True).clamp_min(1e-12)  # the norm over the positions, not the features
    k = keys / keys.norm(dim=-2, keepdim=True).clamp_min(1e-12)
    return q @ k.transpose(-2, -1) / tau
'''}),
    dict(name="cosine_times_tau", kind="wrong", loses="cosine_scores", message="divide by tau",
         answers={"cosine_scores": '''
def cosine_scores(query, keys, tau=1.0):
    q = query / query.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    k = keys / keys.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return q @ k.transpose(-2, -1) * tau  # multiplies by the temperature
'''}),
    dict(name="cosine_calls_the_reference", kind="reference", loses="cosine_scores", message="reference implementation",
         answers={"cosine_scores": '''
from solutions.attention import scores as course_scores


def cosine_scores(query, keys, tau=1.0):
    q = query / query.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    k = keys / keys.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return course_scores.dot_score(q, k) / tau
'''}),
    # ------------------------------------------------------------------ exercise 2: the low-rank bilinear score
    dict(name="low_rank_forms_the_product", kind="wrong", loses="low_rank_bilinear_scores", message="as large as U V^T",
         answers={"low_rank_bilinear_scores": '''
def low_rank_bilinear_scores(query, keys, U, V):
    if U.shape[-1] != V.shape[-1]:
        raise ValueError(f"ranks {U.shape[-1]} and {V.shape[-1]} differ")
    W = U @ V.transpose(0, 1)  # (dq, dk): the matrix the factorisation avoids
    return query @ W @ keys.transpose(-2, -1)
'''}),
    dict(name="low_rank_no_rank_check", kind="wrong", loses="low_rank_bilinear_scores", message="must raise a ValueError",
         answers={"low_rank_bilinear_scores": '''
def low_rank_bilinear_scores(query, keys, U, V):
    r = min(U.shape[-1], V.shape[-1])  # silently drops the extra columns
    return (query @ U[:, :r]) @ (keys @ V[:, :r]).transpose(-2, -1)
'''}),
    # ------------------------------------------------------------------ exercise 3: the concat score
    dict(name="concat_pairs_transposed", kind="wrong", loses="concat_scores", message="expected (Tq, Tk)",
         answers={"concat_scores": '''
def concat_scores(query, keys, W, v):
    d_q = query.shape[-1]
    if W.shape[-1] != d_q + keys.shape[-1]:
        raise ValueError("W has the wrong number of columns")
    q = (query @ W[:, :d_q].T).unsqueeze(-3)  # (..., 1, Tq, h)
    k = (keys @ W[:, d_q:].T).unsqueeze(-2)  # (..., Tk, 1, h): the pairs come out (Tk, Tq)
    return torch.tanh(q + k) @ v
'''}),
    dict(name="concat_columns_split_by_dk", kind="wrong", loses="concat_scores", message="the first dq columns",
         answers={"concat_scores": '''
def concat_scores(query, keys, W, v):
    d_q, d_k = query.shape[-1], keys.shape[-1]
    if W.shape[-1] != d_q + d_k:
        raise ValueError("W has the wrong number of columns")
    q = query @ W[:, d_k:].T  # the keys' columns first: right only when dq = dk
    k = keys @ W[:, :d_k].T
    return torch.tanh(q.unsqueeze(-2) + k.unsqueeze(-3)) @ v
'''}),
    dict(name="concat_loop_over_keys", kind="wrong", loses="concat_scores", message="without a Python loop",
         answers={"concat_scores": '''
def concat_scores(query, keys, W, v):
    d_q = query.shape[-1]
    if W.shape[-1] != d_q + keys.shape[-1]:
        raise ValueError("W has the wrong number of columns")
    q = query @ W[:, :d_q].T  # (..., Tq, h)
    scores = torch.zeros(*query.shape[:-1], keys.shape[-2], dtype=query.dtype, device=query.device)
    for j in range(keys.shape[-2]):  # one key at a time
        scores[..., j] = torch.tanh(q + keys[..., j:j + 1, :] @ W[:, d_q:].T) @ v
    return scores
'''}),
    dict(name="concat_concatenates_every_pair", kind="reference", loses="concat_scores", message="does not allow",
         answers={"concat_scores": '''
def concat_scores(query, keys, W, v):
    if W.shape[-1] != query.shape[-1] + keys.shape[-1]:
        raise ValueError("W has the wrong number of columns")
    Tq, Tk = query.shape[-2], keys.shape[-2]
    lead = torch.broadcast_shapes(query.shape[:-2], keys.shape[:-2])
    q = query.unsqueeze(-2).expand(*lead, Tq, Tk, query.shape[-1])
    k = keys.unsqueeze(-3).expand(*lead, Tq, Tk, keys.shape[-1])
    return torch.tanh(torch.cat([q, k], dim=-1) @ W.T) @ v  # right values, but the task forbids the concatenation
'''}),
    # ------------------------------------------------------------------ exercise 4: the padding mask
    dict(name="padding_masks_keys_only", kind="wrong", loses="padding_mask", message="attends to nothing",
         answers={"padding_mask": '''
def padding_mask(tokens, pad_id, causal=False):
    T = tokens.shape[-1]
    mask = (tokens != pad_id).unsqueeze(-2).expand(*tokens.shape[:-1], T, T)  # padding queries still attend
    if causal:
        mask = mask & torch.ones(T, T, dtype=torch.bool, device=tokens.device).tril()
    return mask
'''}),
    dict(name="padding_causal_upper_triangle", kind="wrong", loses="padding_mask", message="j <= i",
         answers={"padding_mask": '''
def padding_mask(tokens, pad_id, causal=False):
    real = tokens != pad_id
    mask = real.unsqueeze(-1) & real.unsqueeze(-2)
    if causal:
        T = tokens.shape[-1]
        mask = mask & torch.ones(T, T, dtype=torch.bool, device=tokens.device).triu()  # looks ahead
    return mask
'''}),
    # ------------------------------------------------------------------ exercise 5: masked softmax by hand
    dict(name="softmax_max_over_every_key", kind="wrong", loses="masked_softmax", message="[0.2689, 0.7311, 0]",
         answers={"masked_softmax": '''
def masked_softmax(scores, mask, tau=1.0):
    top = scores.amax(dim=-1, keepdim=True)  # the largest score, masked keys included
    e = torch.exp((scores - top) / tau) * mask
    total = e.sum(dim=-1, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))
'''}),
    dict(name="softmax_without_the_maximum", kind="wrong", loses="masked_softmax", message="without overflow",
         answers={"masked_softmax": '''
def masked_softmax(scores, mask, tau=1.0):
    e = torch.exp(scores.masked_fill(~mask, torch.finfo(scores.dtype).min) / tau)  # exp(1000) overflows
    total = e.sum(dim=-1, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))
'''}),
    dict(name="softmax_all_masked_row_nan", kind="wrong", loses="masked_softmax", message="no NaN",
         answers={"masked_softmax": '''
def masked_softmax(scores, mask, tau=1.0):
    kept = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    e = torch.exp((kept - kept.amax(dim=-1, keepdim=True)) / tau) * mask
    return e / e.sum(dim=-1, keepdim=True)  # 0/0 on a row without a kept key
'''}),
    dict(name="softmax_tau_multiplies", kind="wrong", loses="masked_softmax", message="tau = 0.5 divides",
         answers={"masked_softmax": '''
def masked_softmax(scores, mask, tau=1.0):
    kept = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    e = torch.exp((kept - kept.amax(dim=-1, keepdim=True)) * tau) * mask
    total = e.sum(dim=-1, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))
'''}),
    dict(name="softmax_calls_torch_softmax", kind="reference", loses="masked_softmax", message="does not allow",
         answers={"masked_softmax": '''
def masked_softmax(scores, mask, tau=1.0):
    filled = (scores / tau).masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(filled, dim=-1) * mask  # right, but the task asks for it by hand
'''}),
    dict(name="softmax_calls_the_reference", kind="reference", loses="masked_softmax", message="reference implementation",
         answers={"masked_softmax": '''
import solutions.attention.masking as masking


def masked_softmax(scores, mask, tau=1.0):
    return masking.masked_softmax(scores, mask=mask, temperature=tau)
'''}),
    # ------------------------------------------------------------------ exercise 6: fusion with heads
    dict(name="heads_interleaved_columns", kind="wrong", loses="fuse_heads", message="head 0 fills columns 0-1",
         answers={"fuse_heads": '''
def fuse_heads(weights, values):
    H = weights.shape[-3]
    if values.shape[-1] % H:
        raise ValueError(f"{values.shape[-1]} is not a multiple of {H}")
    per_head = values.unflatten(-1, (-1, H)).movedim(-1, -3)  # head h gets columns h, h + H, ...: interleaved
    context = weights @ per_head  # (..., H, Tq, Dh)
    return context.movedim(-3, -1).flatten(-2)
'''}),
    dict(name="heads_merged_without_transpose", kind="wrong", loses="fuse_heads", message="head 0 fills columns 0-1",
         answers={"fuse_heads": '''
def fuse_heads(weights, values):
    H = weights.shape[-3]
    if values.shape[-1] % H:
        raise ValueError(f"{values.shape[-1]} is not a multiple of {H}")
    per_head = values.unflatten(-1, (H, -1)).transpose(-3, -2)  # (..., H, Tk, Dh)
    context = weights @ per_head  # (..., H, Tq, Dh)
    return context.reshape(*context.shape[:-3], context.shape[-2], -1)  # mixes queries and heads
'''}),
    # ------------------------------------------------------------------ exercise 7: self-attention over a padded batch
    dict(name="self_attention_ignores_causal", kind="wrong", loses="self_attention", message="later one",
         answers={"self_attention": '''
def self_attention(x, tokens, score_fn, pad_id=0, causal=False):
    weights = masked_softmax(score_fn(x, x), padding_mask(tokens, pad_id))  # causal is never passed on
    return weights @ x, weights
'''}),
    dict(name="self_attention_weights_transposed", kind="wrong", loses="self_attention", message="scaled_dot_product_attention",
         answers={"self_attention": '''
def self_attention(x, tokens, score_fn, pad_id=0, causal=False):
    weights = masked_softmax(score_fn(x, x), padding_mask(tokens, pad_id, causal))
    return weights.transpose(-2, -1) @ x, weights  # sums over the queries instead of the keys
'''}),
    dict(name="self_attention_calls_the_reference", kind="reference", loses="self_attention",
         message="reference implementation", answers={"self_attention": '''
from solutions.attention import attention as my_attention


def self_attention(x, tokens, score_fn, pad_id=0, causal=False):
    real = tokens != pad_id
    mask = real.unsqueeze(-1) & real.unsqueeze(-2)
    return my_attention(x, x, x, score=score_fn, mask=mask, is_causal=causal)
'''}),
    # ------------------------------------------------------------------ right, written differently
    dict(name="einsum_everywhere", kind="right", answers={
        "cosine_scores": '''
def cosine_scores(query, keys, tau=1.0):
    qn = torch.einsum("...qd,...qd->...q", query, query).sqrt().clamp_min(1e-12)
    kn = torch.einsum("...kd,...kd->...k", keys, keys).sqrt().clamp_min(1e-12)
    return torch.einsum("...qd,...kd->...qk", query, keys) / (qn[..., :, None] * kn[..., None, :]) / tau
''',
        "low_rank_bilinear_scores": '''
def low_rank_bilinear_scores(query, keys, U, V):
    if U.shape[1] != V.shape[1]:
        raise ValueError(f"U is rank {U.shape[1]}, V is rank {V.shape[1]}")
    a = torch.einsum("...qi,ir->...qr", query, U)
    b = torch.einsum("...kj,jr->...kr", keys, V)
    return torch.einsum("...qr,...kr->...qk", a, b)
''',
        "concat_scores": '''
def concat_scores(query, keys, W, v):
    dq = query.size(-1)
    if W.size(1) != dq + keys.size(-1):
        raise ValueError(f"W must have {dq + keys.size(-1)} columns, not {W.size(1)}")
    a = torch.einsum("ha,...qa->...qh", W[:, :dq], query)
    b = torch.einsum("hb,...kb->...kh", W[:, dq:], keys)
    return torch.einsum("...qkh,h->...qk", torch.tanh(a[..., :, None, :] + b[..., None, :, :]), v)
''',
        "fuse_heads": '''
def fuse_heads(weights, values):
    H = weights.size(-3)
    if values.size(-1) % H != 0:
        raise ValueError(f"width {values.size(-1)} is not divisible by {H} heads")
    v = values.reshape(*values.shape[:-1], H, values.size(-1) // H)  # (..., Tk, H, Dh)
    c = torch.einsum("...hqk,...khd->...qhd", weights, v)
    return c.reshape(*c.shape[:-2], -1)
''',
        "self_attention": '''
def self_attention(x, tokens, score_fn, pad_id=0, causal=False):
    w = masked_softmax(score_fn(x, x), padding_mask(tokens, pad_id, causal=causal))
    return torch.einsum("...ij,...jd->...id", w, x), w
'''}),
    dict(name="float64_and_other_functions", kind="right", answers={
        "cosine_scores": '''
import torch.nn.functional as F


def cosine_scores(query, keys, tau=1.0):
    s = F.cosine_similarity(query.double().unsqueeze(-2), keys.double().unsqueeze(-3), dim=-1, eps=1e-12)
    return (s / tau).to(query.dtype)
''',
        "padding_mask": '''
def padding_mask(tokens, pad_id, causal=False):
    T = tokens.shape[-1]
    word = tokens.ne(pad_id)
    pair = torch.logical_and(word[..., :, None], word[..., None, :])
    if not causal:
        return pair
    i = torch.arange(T, device=tokens.device)
    return pair & (i[None, :] <= i[:, None])
''',
        "masked_softmax": '''
def masked_softmax(scores, mask, tau=1.0):
    x = (scores.double() / tau).masked_fill(~mask, -math.inf)
    top = x.amax(-1, keepdim=True)
    e = torch.exp(x - torch.where(torch.isinf(top), torch.zeros_like(top), top))
    z = e.sum(-1, keepdim=True)
    return (e / torch.where(z > 0, z, torch.ones_like(z))).to(scores.dtype)
''',
        "fuse_heads": '''
def fuse_heads(weights, values):
    H = weights.shape[-3]
    width = values.shape[-1]
    if width % H:
        raise ValueError(f"cannot split {width} value features into {H} heads")
    Dh = width // H
    return torch.cat([weights[..., h, :, :] @ values[..., h * Dh:(h + 1) * Dh] for h in range(H)], dim=-1)
''',
        "self_attention": '''
def self_attention(x, tokens, score_fn, pad_id=0, causal=False):
    scores = score_fn(x, x)
    keep = padding_mask(tokens, pad_id, causal)
    weights = masked_softmax(scores, keep)
    context = (weights.unsqueeze(-1) * x.unsqueeze(-3)).sum(-2)  # (..., T, T, D) summed over the keys
    return context, weights
'''}),
]
