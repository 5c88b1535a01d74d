"""The fairness set of chapter 6's assignment (the Transformer), graded by tests/test_fairness.py.

Each variant replaces the answer cells named by their grade ids in the instructor notebook: ``wrong``
answers have one bug each and must lose points in the exercise ``loses`` only (exercise 3's tests use the
reference ``attention``, ``split_heads`` and ``merge_heads``, so a bug there costs nothing in exercise 3);
``reference`` answers run the course's reference and must lose that exercise's points with the message
``message``; ``right`` answers are correct but written differently and get full marks. ``message`` is a part
of the message that the failing test shows the learner.
"""

VARIANTS = [
    # ------------------------------------------------------------------ exercise 1: attention
    dict(name="attention_softmax_over_queries", kind="wrong", loses="attention", message="sum to 1 over the keys",
         answers={"attention": '''
def attention(query, key, value, mask=None):
    scores = query @ key.transpose(-1, -2) / key.size(-1) ** 0.5
    if mask is None:
        weights = scores.softmax(dim=-2)  # over the queries
    else:
        weights = torch.where(mask, scores, torch.finfo(scores.dtype).min).softmax(dim=-2) * mask
    return weights @ value, weights
'''}),
    dict(name="attention_without_scale", kind="wrong", loses="attention", message="q K^T / sqrt(2)",
         answers={"attention": '''
def attention(query, key, value, mask=None):
    scores = query @ key.transpose(-1, -2)  # the 1/sqrt(d_k) is missing
    if mask is None:
        weights = scores.softmax(dim=-1)
    else:
        weights = torch.where(mask, scores, torch.finfo(scores.dtype).min).softmax(dim=-1) * mask
    return weights @ value, weights
'''}),
    dict(name="attention_multiply_renormalise", kind="wrong", loses="attention", message="[0.2689, 0.7311, 0]",
         answers={"attention": '''
def attention(query, key, value, mask=None):
    weights = (query @ key.transpose(-1, -2) / key.size(-1) ** 0.5).softmax(dim=-1)
    if mask is not None:
        weights = weights * mask  # a large masked score has taken all the mass already
        total = weights.sum(-1, keepdim=True)
        weights = weights / torch.where(total > 0, total, torch.ones_like(total))
    return weights @ value, weights
'''}),
    dict(name="attention_calls_the_reference", kind="reference", loses="attention", message="reference implementation",
         answers={"attention": '''
from solutions.attention import scaled_dot_product_attention as sdpa


def attention(query, key, value, mask=None):
    return sdpa(query, key, value, attn_mask=mask)
'''}),
    # ------------------------------------------------------------------ exercise 2: heads cut the wrong way
    dict(name="split_heads_without_transpose", kind="wrong", loses="split_heads", message="must hold features",
         answers={"split_heads": '''
def split_heads(x, num_heads):
    batch, length, width = x.shape
    if width % num_heads:
        raise ValueError(f"a width of {width} cannot be split into {num_heads} heads")
    return x.reshape(batch, num_heads, length, width // num_heads)  # mixes positions and features


def merge_heads(x):
    batch, heads, length, head_dim = x.shape
    return x.reshape(batch, length, heads * head_dim)
'''}),
    # ------------------------------------------------------------------ exercise 3: W^O forgotten
    dict(name="mha_without_output_projection", kind="wrong", loses="multi_head_attention",
         message="must match nn.MultiheadAttention", answers={"multi_head_attention": '''
def multi_head_attention(query, key, value, W_q, W_k, W_v, W_o, num_heads, mask=None):
    heads_q = split_heads(query @ W_q, num_heads)
    heads_k = split_heads(key @ W_k, num_heads)
    heads_v = split_heads(value @ W_v, num_heads)
    mixed, weights = attention(heads_q, heads_k, heads_v, mask)
    return merge_heads(mixed), weights  # W_o is never applied
'''}),
    # ------------------------------------------------------------------ exercise 4: angles in float32
    dict(name="pe_angles_in_float32", kind="wrong", loses="positional_encoding", message="within 1e-10",
         answers={"positional_encoding": '''
def positional_encoding(positions, d_model, dtype=torch.float32):
    if d_model % 2:
        raise ValueError(f"d_model must be even, got {d_model}")
    position = positions.to(torch.float32)[..., None]
    frequency = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float32, device=positions.device) / d_model)
    table = torch.zeros(*positions.shape, d_model, dtype=dtype, device=positions.device)
    table[..., 0::2] = torch.sin(position * frequency)  # float32 angles, converted afterwards
    table[..., 1::2] = torch.cos(position * frequency)
    return table
'''}),
    # the chapter's table of positions 0 .. P-1, whatever the positions given
    dict(name="pe_ignores_the_position_values", kind="wrong", loses="positional_encoding", message="use the values of `positions`",
         answers={"positional_encoding": '''
def positional_encoding(positions, d_model, dtype=torch.float32):
    if d_model % 2:
        raise ValueError(f"d_model must be even, got {d_model}")
    pos = torch.arange(positions.shape[-1] if positions.dim() else 1, dtype=torch.float64, device=positions.device)
    angles = pos[:, None] / 10000.0 ** (torch.arange(0, d_model, 2, dtype=torch.float64, device=positions.device) / d_model)
    table = torch.stack((angles.sin(), angles.cos()), -1).flatten(-2)  # rows 0, 1, 2, ...
    return table.expand(*positions.shape, d_model).to(dtype)
'''}),
    # ------------------------------------------------------------------ exercise 5: the triangle anchored bottom-right
    dict(name="causal_mask_bottom_right", kind="wrong", loses="causal_mask", message="the triangle starts top-left",
         answers={"causal_mask": '''
def causal_mask(num_queries, num_keys=None, window=None, device=None):
    if num_keys is None:
        num_keys = num_queries
    if window is not None and window < 1:
        raise ValueError("window must be >= 1")
    rows = torch.arange(num_queries, device=device)[:, None]
    cols = torch.arange(num_keys, device=device)[None, :]
    keep = cols <= rows + (num_keys - num_queries)  # the last query sees every key
    return keep if window is None else keep & (rows - cols < window)
'''}),
    dict(name="causal_mask_window_one_too_wide", kind="wrong", loses="causal_mask", message="window = 2",
         answers={"causal_mask": '''
def causal_mask(num_queries, num_keys=None, window=None, device=None):
    if num_keys is None:
        num_keys = num_queries
    if window is not None and window < 1:
        raise ValueError("window must be >= 1")
    rows = torch.arange(num_queries, device=device)[:, None]
    cols = torch.arange(num_keys, device=device)[None, :]
    keep = cols <= rows
    return keep if window is None else keep & (rows - cols <= window)  # w + 1 keys
'''}),
    # ------------------------------------------------------------------ right, written differently
    dict(name="einsum_by_hand_in_float64", kind="right", answers={
        "attention": '''
def attention(query, key, value, mask=None):
    dtype = query.dtype
    q, k, v = query.double(), key.double(), value.double()
    scores = torch.einsum("...qd,...kd->...qk", q, k) / math.sqrt(k.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    top = scores.amax(-1, keepdim=True)
    e = torch.exp(scores - torch.where(torch.isinf(top), torch.zeros_like(top), top))
    total = e.sum(-1, keepdim=True)
    weights = e / torch.where(total > 0, total, torch.ones_like(total))
    return torch.einsum("...qk,...kv->...qv", weights, v).to(dtype), weights.to(dtype)
''',
        "multi_head_attention": '''
def multi_head_attention(query, key, value, W_q, W_k, W_v, W_o, num_heads, mask=None):
    D = W_q.shape[0]
    Dh = D // num_heads

    def heads(x, W):  # (B, T, D) -> (B, H, T, Dh), without split_heads
        return torch.einsum("btd,de->bte", x, W).unflatten(-1, (num_heads, Dh)).transpose(1, 2)

    mixed, weights = attention(heads(query, W_q), heads(key, W_k), heads(value, W_v), mask)
    return torch.einsum("bhtf,hfe->bte", mixed, W_o.reshape(num_heads, Dh, D)), weights
''',
        "positional_encoding": '''
def positional_encoding(positions, d_model, dtype=torch.float32):
    if d_model % 2:
        raise ValueError(f"d_model must be even, got {d_model}")
    inverse = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64, device=positions.device) / d_model)
    angles = torch.einsum("...,f->...f", positions.double(), inverse)
    return torch.stack((angles.sin(), angles.cos()), -1).flatten(-2).to(dtype)  # sin, cos, sin, cos, ...
'''}),
    dict(name="movedim_and_tril", kind="right", answers={
        "split_heads": '''
def split_heads(x, num_heads):
    if x.shape[-1] % num_heads:
        raise ValueError(f"{x.shape[-1]} features do not split into {num_heads} heads")
    return x.unflatten(-1, (num_heads, x.shape[-1] // num_heads)).movedim(-2, 1)


def merge_heads(x):
    return x.movedim(1, -2).flatten(-2)
''',
        "causal_mask": '''
def causal_mask(num_queries, num_keys=None, window=None, device=None):
    num_keys = num_queries if num_keys is None else num_keys
    ones = torch.ones(num_queries, num_keys, dtype=torch.bool, device=device)
    if window is None:
        return ones.tril()
    if window < 1:
        raise ValueError(f"window {window} < 1")
    return ones.tril() & ~ones.tril(-window)  # drop the keys at distance window or more
'''}),
]
