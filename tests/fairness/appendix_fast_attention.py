"""The fairness set of the appendix assignment (Making attention fast), graded by tests/test_fairness.py.

Each variant replaces the answer cells named by their grade ids (usually one) in the instructor notebook:
``wrong`` answers have one bug each and must lose points in the exercise ``loses`` only; ``reference``
answers run the course's reference or a function the task forbids and must lose that exercise's points
with the message ``message``; ``right`` answers are correct but written differently and get full marks.
``message`` is a part of the message that the failing test shows the learner.
"""

VARIANTS = [
    # ------------------------------------------------------------------ exercise 1: online_logsumexp
    dict(name="lse_without_running_max", kind="wrong", loses="online_logsumexp", message="must not overflow",
         answers={"online_logsumexp": '''
def online_logsumexp(blocks):
    total = None
    for block in blocks:
        part = torch.exp(block).sum(-1)  # e^1000 overflows
        total = part if total is None else total + part
    return torch.log(total)
'''}),
    dict(name="lse_stores_blocks_two_passes", kind="wrong", loses="online_logsumexp",
         message="before it had used item", answers={"online_logsumexp": '''
def online_logsumexp(blocks):
    blocks = list(blocks)  # stored, then read twice: the maximum first, the sum afterwards
    maximum = blocks[0].new_full(blocks[0].shape[:-1], -math.inf)
    for block in blocks:
        if block.shape[-1]:
            maximum = torch.maximum(maximum, block.amax(-1))
    shift = torch.where(torch.isneginf(maximum), torch.zeros_like(maximum), maximum)
    total = torch.zeros_like(maximum)
    for block in blocks:
        total = total + torch.exp(block - shift.unsqueeze(-1)).sum(-1)
    return shift + torch.log(total)
'''}),
    dict(name="lse_calls_torch_logsumexp", kind="reference", loses="online_logsumexp", message="does not allow",
         answers={"online_logsumexp": '''
def online_logsumexp(blocks):
    result = None
    for block in blocks:
        part = torch.logsumexp(block, -1)
        result = part if result is None else torch.logaddexp(result, part)
    return result
'''}),
    dict(name="lse_logaddexp_in_float64", kind="right", answers={"online_logsumexp": '''
def online_logsumexp(blocks):
    result = dtype = None
    for block in blocks:
        dtype, x = block.dtype, block.double()
        if x.shape[-1]:
            m = x.amax(-1)
            safe = torch.where(torch.isneginf(m), torch.zeros_like(m), m)
            part = safe + torch.log(torch.exp(x - safe.unsqueeze(-1)).sum(-1))
        else:
            part = x.new_full(x.shape[:-1], -math.inf)
        result = part if result is None else torch.logaddexp(result, part)
    return result.to(dtype)
'''}),
    # ------------------------------------------------------------------ exercise 2: attend_in_chunks
    dict(name="chunks_output_not_rescaled", kind="wrong", loses="attend_in_chunks", message="rescale",
         answers={"attend_in_chunks": '''
def attend_in_chunks(query, chunks):
    scale = 1 / math.sqrt(query.shape[-1])
    maximum = total = output = None
    for key, value in chunks:
        scores = query @ key.transpose(-2, -1) * scale
        new = scores.amax(-1) if maximum is None else torch.maximum(maximum, scores.amax(-1))
        weights = torch.exp(scores - new.unsqueeze(-1))
        if maximum is None:
            total, output = weights.sum(-1), weights @ value
        else:
            rescale = torch.exp(maximum - new)
            total = total * rescale + weights.sum(-1)
            output = output + weights @ value  # the running output is not rescaled
        maximum = new
    return output / total.unsqueeze(-1)
'''}),
    dict(name="chunks_keep_every_score", kind="wrong", loses="attend_in_chunks", message="as large as the whole",
         answers={"attend_in_chunks": '''
def attend_in_chunks(query, chunks):
    scores, values = [], []
    for key, value in chunks:
        scores.append(query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1]))
        values.append(value)
    scores = torch.cat(scores, -1)  # (..., Tq, Tk): the whole matrix after all
    weights = torch.exp(scores - scores.amax(-1, keepdim=True))
    return (weights / weights.sum(-1, keepdim=True)) @ torch.cat(values, -2)
'''}),
    dict(name="chunks_call_the_reference", kind="reference", loses="attend_in_chunks",
         message="reference implementation", answers={"attend_in_chunks": '''
from solutions.fast import chunked_attention as fast_attention


def attend_in_chunks(query, chunks):
    keys, values = zip(*chunks)
    return fast_attention(query, torch.cat(keys, -2), torch.cat(values, -2))
'''}),
    dict(name="chunks_einsum_flat_batch_own_logsumexp", kind="right", answers={"attend_in_chunks": '''
def attend_in_chunks(query, chunks):
    lead, (Tq, D) = query.shape[:-2], query.shape[-2:]
    q = query.reshape(-1, Tq, D) / math.sqrt(D)  # (B, Tq, D), the leading dims flattened
    lse = output = None
    for key, value in chunks:
        k, v = key.reshape(-1, key.shape[-2], D), value.reshape(-1, value.shape[-2], value.shape[-1])
        s = torch.einsum("bqd,bkd->bqk", q, k)  # (B, Tq, C)
        chunk_lse = online_logsumexp([s])  # exercise 1: this chunk's normaliser, (B, Tq)
        part = torch.einsum("bqk,bkv->bqv", torch.exp(s - chunk_lse.unsqueeze(-1)), v)
        if lse is None:
            lse, output = chunk_lse, part
        else:
            new = online_logsumexp([lse.unsqueeze(-1), chunk_lse.unsqueeze(-1)])
            output = output * torch.exp(lse - new).unsqueeze(-1) + part * torch.exp(chunk_lse - new).unsqueeze(-1)
            lse = new
    return output.reshape(*lead, Tq, -1)
'''}),
    # ------------------------------------------------------------------ exercise 3: band_mask
    dict(name="band_before_and_after_swapped", kind="wrong", loses="band_mask", message="before=1, after=0",
         answers={"band_mask": '''
def band_mask(num_queries, num_keys, before, after, device=None):
    if before < 0 or after < 0:
        raise ValueError("negative width")
    offset = torch.arange(num_keys, device=device) - torch.arange(num_queries, device=device).unsqueeze(-1)
    return (offset >= -after) & (offset <= before)
'''}),
    dict(name="band_reference_through_importlib", kind="reference", loses="band_mask",
         message="reference implementation", answers={"band_mask": '''
import importlib


def band_mask(num_queries, num_keys, before, after, device=None):
    if before < 0 or after < 0:
        raise ValueError("negative width")
    triangle = importlib.import_module("solutions.attention.masking").causal_mask  # [i, j] = j <= i
    reach_ahead = triangle(num_queries + after, num_keys, device=device)[after:]  # j <= i + after
    too_far_back = triangle(num_queries, num_keys + before + 1, device=device)[:, before + 1:]  # j < i - before
    return reach_ahead & ~too_far_back
'''}),
    dict(name="band_tril_triu", kind="right", answers={"band_mask": '''
def band_mask(num_queries, num_keys, before, after, device=None):
    if min(before, after) < 0:
        raise ValueError(f"widths must be >= 0, got {before} and {after}")
    return torch.ones(num_queries, num_keys, dtype=torch.bool, device=device).tril(after).triu(-before)
'''}),
    # ------------------------------------------------------------------ exercise 4: diagonal_band_scores
    dict(name="band_scores_from_the_full_matrix", kind="wrong", loses="diagonal_band_scores",
         message="T x T elements", answers={"diagonal_band_scores": '''
def diagonal_band_scores(query, key, w):
    T = query.shape[-2]
    full = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])  # (..., T, T)
    i = torch.arange(T, device=query.device).unsqueeze(-1)
    j = i + torch.arange(-w, w + 1, device=query.device)  # (T, 2w + 1): the key of each entry
    band = torch.gather(full, -1, j.clamp(0, T - 1).expand(full.shape[:-1] + (2 * w + 1,)))
    return band.masked_fill((j < 0) | (j >= T), -math.inf)
'''}),
    dict(name="band_scores_zero_outside", kind="wrong", loses="diagonal_band_scores", message="give -inf",
         answers={"diagonal_band_scores": '''
def diagonal_band_scores(query, key, w):
    T = query.shape[-2]
    band = query.new_zeros(query.shape[:-1] + (2 * w + 1,))  # 0 where the key is missing
    query = query / math.sqrt(query.shape[-1])
    reach = min(w, T - 1)
    for o in range(-reach, reach + 1):
        first, last = max(0, -o), min(T, T - o)
        band[..., first:last, w + o] = (query[..., first:last, :] * key[..., first + o:last + o, :]).sum(-1)
    return band
'''}),
    dict(name="band_scores_loop_over_positions", kind="wrong", loses="diagonal_band_scores",
         message="tensor operations", answers={"diagonal_band_scores": '''
def diagonal_band_scores(query, key, w):
    T = query.shape[-2]
    band = query.new_full(query.shape[:-1] + (2 * w + 1,), -math.inf)
    for i in range(T):
        first, last = max(0, i - w), min(T, i + w + 1)
        scores = (query[..., i:i + 1, :] * key[..., first:last, :]).sum(-1) / math.sqrt(query.shape[-1])
        band[..., i, first - i + w:last - i + w] = scores
    return band
'''}),
    dict(name="band_scores_unfold_einsum", kind="right", answers={"diagonal_band_scores": '''
import torch.nn.functional as F


def diagonal_band_scores(query, key, w):
    T, D = query.shape[-2:]
    windows = F.pad(key, (0, 0, w, w)).unfold(-2, 2 * w + 1, 1)  # (..., T, D, 2w + 1): keys i - w .. i + w
    band = torch.einsum("...td,...tdo->...to", query, windows) / math.sqrt(D)
    j = torch.arange(T, device=query.device).unsqueeze(-1) + torch.arange(-w, w + 1, device=query.device)
    return band.masked_fill((j < 0) | (j >= T), -math.inf)
'''}),
    # ------------------------------------------------------------------ a cascade: ex. 2 calls ex. 1
    dict(name="lse_wrong_and_chunks_built_on_it", kind="wrong", loses="online_logsumexp", message="log 3",
         answers={"online_logsumexp": '''
def online_logsumexp(blocks):
    maximum = total = None
    for block in blocks:
        if maximum is None:
            maximum = torch.full(block.shape[:-1], -math.inf, dtype=block.dtype, device=block.device)
            total = torch.zeros_like(maximum)
        if block.shape[-1] == 0:
            continue
        new = torch.maximum(maximum, block.amax(-1))
        shift = torch.where(torch.isneginf(new), torch.zeros_like(new), new)
        total = total * torch.exp(maximum - shift) + torch.exp(block - shift.unsqueeze(-1)).sum(-1)
        maximum = new
    return torch.log(total)  # the maximum is not added back
''', "attend_in_chunks": None}),  # None: the answer of the variant chunks_einsum_flat_batch_own_logsumexp
]

for _variant in VARIANTS:  # fill in the answers borrowed from another variant
    for _cell, _source in _variant["answers"].items():
        if _source is None:
            _variant["answers"][_cell] = next(v["answers"][_cell] for v in VARIANTS
                                              if v["name"] == "chunks_einsum_flat_batch_own_logsumexp")
