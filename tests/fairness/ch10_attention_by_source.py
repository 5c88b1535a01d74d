"""The fairness set of the assignment of the chapter "Attention by source", graded by tests/test_fairness.py.

Each variant replaces the answer cells named by their grade ids in the instructor notebook: ``wrong`` answers
have one bug each and must lose points in the exercise ``loses`` only (the tests of exercises 2-4 put the
reference ``cross_attention`` in place of the learner's, so a bug there costs nothing in the exercises built on
it); ``reference`` answers run the course's reference and must lose that exercise's points with the message
``message``; ``right`` answers are correct but written differently and get full marks. ``message`` is a part of
the message that the failing test shows the learner.
"""

VARIANTS = [
    # ------------------------------------------------------------------ exercise 1: cross-attention
    dict(name="cross_without_scale", kind="wrong", loses="cross_attention", message="[0.6698, 0.3302, 0]",
         answers={"cross_attention": '''
def cross_attention(query, context, W_q, W_k, W_v, mask=None):
    scores = (query @ W_q) @ (context @ W_k).transpose(-2, -1)  # the 1/sqrt(d_k) is missing
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    weights = torch.nan_to_num(scores.softmax(-1))
    return weights @ (context @ W_v), weights
'''}),
    dict(name="cross_nan_for_an_empty_row", kind="wrong", loses="cross_attention", message="not NaN",
         answers={"cross_attention": '''
def cross_attention(query, context, W_q, W_k, W_v, mask=None):
    q, k = query @ W_q, context @ W_k
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)  # a row of -inf: the softmax gives NaN
    weights = scores.softmax(-1)
    return weights @ (context @ W_v), weights
'''}),
    dict(name="cross_mask_multiplies_the_scores", kind="wrong", loses="cross_attention",
         message="(hidden)] give weights", answers={"cross_attention": '''
def cross_attention(query, context, W_q, W_k, W_v, mask=None):
    q, k = query @ W_q, context @ W_k
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores * mask  # zeroes the masked scores instead of removing their keys
        empty = ~mask.any(-1, keepdim=True)
        weights = scores.softmax(-1).masked_fill(empty, 0.0)
    else:
        weights = scores.softmax(-1)
    return weights @ (context @ W_v), weights
'''}),
    dict(name="cross_calls_the_reference", kind="reference", loses="cross_attention",
         message="reference implementation", answers={"cross_attention": '''
from solutions.attention import attention as attend


def cross_attention(query, context, W_q, W_k, W_v, mask=None):
    return attend(query @ W_q, context @ W_k, context @ W_v, mask=mask)
'''}),
    dict(name="cross_uses_fused_attention", kind="reference", loses="cross_attention",
         message="does not allow", answers={"cross_attention": '''
import torch.nn.functional as F


def cross_attention(query, context, W_q, W_k, W_v, mask=None):
    q, k, v = query @ W_q, context @ W_k, context @ W_v
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    weights = torch.nan_to_num(scores.softmax(-1))
    mask = None if mask is None else mask.expand_as(weights)
    out = torch.nan_to_num(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    return out, weights
'''}),
    # ------------------------------------------------------------------ exercise 2: the diagonal left open
    dict(name="self_ignores_attend_self", kind="wrong", loses="self_attention", message="A_ii = 0",
         answers={"self_attention": '''
def self_attention(x, W_q, W_k, W_v, attend_self=True):
    return cross_attention(x, x, W_q, W_k, W_v)  # the option is never used
'''}),
    # ------------------------------------------------------------------ a cascade: only exercise 1 loses
    dict(name="cross_without_scale_and_self_built_on_it", kind="wrong", loses="cross_attention",
         message="[0.6698, 0.3302, 0]", answers={"cross_attention": '''
def cross_attention(query, context, W_q, W_k, W_v, mask=None):
    scores = (query @ W_q) @ (context @ W_k).transpose(-2, -1)  # the 1/sqrt(d_k) is missing
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    weights = torch.nan_to_num(scores.softmax(-1))
    return weights @ (context @ W_v), weights
''', "self_attention": '''
def self_attention(x, W_q, W_k, W_v, attend_self=True):
    eye = torch.eye(x.shape[-2], dtype=torch.bool, device=x.device)
    return cross_attention(x, x, W_q, W_k, W_v, None if attend_self else ~eye)
'''}),
    # ------------------------------------------------------------------ exercise 3: heads
    dict(name="heads_summed_not_averaged", kind="wrong", loses="multi_head_attention", message="average",
         answers={"multi_head_attention": '''
def multi_head_attention(query, context, W_q, W_k, W_v, W_o, num_heads, combine="concat"):
    B, Tq, D = query.shape
    if D % num_heads or combine not in ("concat", "mean"):
        raise ValueError("bad arguments")
    Dh = D // num_heads
    stack = lambda W: W.reshape(D, num_heads, Dh).transpose(0, 1)
    mixed, weights = cross_attention(query[:, None], context[:, None], stack(W_q), stack(W_k), stack(W_v))
    if combine == "concat":
        return mixed.transpose(1, 2).reshape(B, Tq, D) @ W_o, weights
    return mixed.sum(1) @ W_o, weights  # a sum, not the average
'''}),
    dict(name="heads_cut_without_transpose", kind="wrong", loses="multi_head_attention",
         message="weights[:, i] are its weights",
         answers={"multi_head_attention": '''
def multi_head_attention(query, context, W_q, W_k, W_v, W_o, num_heads, combine="concat"):
    B, Tq, D = query.shape
    if D % num_heads or combine not in ("concat", "mean"):
        raise ValueError("bad arguments")
    Dh = D // num_heads
    cut = lambda x: x.reshape(x.shape[0], num_heads, x.shape[1], Dh)  # mixes positions and features
    q, k, v = cut(query @ W_q), cut(context @ W_k), cut(context @ W_v)
    scores = q @ k.transpose(-2, -1) / math.sqrt(Dh)
    weights = scores.softmax(-1)
    mixed = weights @ v
    joined = mixed.transpose(1, 2).reshape(B, Tq, D) if combine == "concat" else mixed.mean(1)
    return joined @ W_o, weights
'''}),
    # ------------------------------------------------------------------ exercise 4: absent roles counted as 0
    dict(name="roles_absent_counted_as_zero", kind="wrong", loses="weight_on_positions", message="not counting",
         answers={"weight_on_positions": '''
def weight_on_positions(weights, positions):
    present = positions >= 0
    index = positions.clamp_min(0).unsqueeze(1).expand(-1, weights.shape[1], -1)
    picked = weights.gather(-1, index) * present.unsqueeze(1)
    return picked.mean(0)  # divides by all the examples, also those without the role
'''}),
    # ------------------------------------------------------------------ right, written differently
    dict(name="einsum_float64_and_loops", kind="right", answers={
        "cross_attention": '''
def cross_attention(query, context, W_q, W_k, W_v, mask=None):
    dtype = query.dtype
    q = torch.einsum("...td,...de->...te", query.double(), W_q.double())
    k = torch.einsum("...td,...de->...te", context.double(), W_k.double())
    v = torch.einsum("...td,...de->...te", context.double(), W_v.double())
    scores = torch.einsum("...qe,...ke->...qk", q, k) / q.shape[-1] ** 0.5
    if mask is None:
        mask = torch.ones_like(scores, dtype=torch.bool)
    mask = mask.expand_as(scores)
    scores = torch.where(mask, scores, torch.full_like(scores, -1e300))
    weights = torch.exp(scores - scores.amax(-1, keepdim=True)) * mask
    weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-300)
    return torch.einsum("...qk,...kv->...qv", weights, v).to(dtype), weights.to(dtype)
''',
        "self_attention": '''
def self_attention(x, W_q, W_k, W_v, attend_self=True):
    n = x.shape[-2]
    keep = torch.ones(n, n, dtype=torch.bool, device=x.device)
    if not attend_self:
        keep.fill_diagonal_(False)
    return cross_attention(x, x, W_q, W_k, W_v, keep)
''',
        "multi_head_attention": '''
def multi_head_attention(query, context, W_q, W_k, W_v, W_o, num_heads, combine="concat"):
    D = query.shape[-1]
    if D % num_heads:
        raise ValueError(f"{D} features do not split into {num_heads} heads")
    if combine not in {"concat", "mean"}:
        raise ValueError(f"unknown combine {combine!r}")
    Dh = D // num_heads
    outs, maps = [], []
    for h in range(num_heads):  # one head at a time
        cols = slice(h * Dh, (h + 1) * Dh)
        out, w = cross_attention(query, context, W_q[:, cols], W_k[:, cols], W_v[:, cols])
        outs.append(out)
        maps.append(w)
    if combine == "concat":
        return torch.cat(outs, -1) @ W_o, torch.stack(maps, 1)
    return sum(outs) / num_heads @ W_o, torch.stack(maps, 1)
''',
        "weight_on_positions": '''
def weight_on_positions(weights, positions):
    N, H, Tk = weights.shape
    onehot = torch.nn.functional.one_hot(positions.clamp_min(0), Tk).to(weights.dtype)  # (N, R, Tk)
    onehot = onehot * (positions >= 0).unsqueeze(-1).to(weights.dtype)
    total = torch.einsum("nhk,nrk->hr", weights, onehot)
    count = onehot.sum((0, 2))
    return total / torch.where(count > 0, count, torch.ones_like(count))
'''}),
]
