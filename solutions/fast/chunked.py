"""Memory-efficient attention: softmax(Q Kᵀ / √d) V without ever holding the (Tq, Tk) matrix.

Rabe & Staats 2021, "Self-attention does not need O(n²) memory" (arXiv:2112.05682): the queries and the
keys are cut into chunks; for each chunk of queries, the chunks of keys are visited one after the other and
the online softmax (:mod:`.online_softmax`) carries, per query, the running maximum m, the running sum ℓ and
the running weighted sum of the values o:

    S = Q_i K_jᵀ / √d                                   one (Cq, Ck) block of scores
    m' = max(m, rowmax S),  P = e^{S − m'}
    ℓ' = ℓ · e^{m − m'} + rowsum P
    o' = o · e^{m − m'} + P V_j
    out_i = o / ℓ,   L_i = m + log ℓ   (the log-sum-exp, kept for the backward pass)

This is also the forward pass of FlashAttention (Dao et al. 2022, arXiv:2205.14135, Algorithm 1). The
backward pass recomputes each block of P from Q, K and L instead of storing it (Algorithm 2 there;
Rabe & Staats use checkpointing for the same end):

    P = e^{S − L},  dV_j += Pᵀ dO_i,  dP = dO_i V_jᵀ,  dS = P ∘ (dP − rowsum(dO ∘ O)),
    dQ_i += dS K_j / √d,  dK_j += dSᵀ Q_i / √d

so training, too, needs memory linear in the sequence length for a fixed chunk size: the largest
intermediate has (..., Cq, Ck) elements. As in FlashAttention-2's kernels (Dao 2023, arXiv:2307.08691),
the exponentials are taken in base 2, e^x = 2^{x · log₂ e}, with log₂ e folded into the scale: the same
numbers, and ``exp2`` is the cheaper function. Each block is updated in place. The result equals :func:`solutions.attention.attention`
(and ``F.scaled_dot_product_attention``) to rounding; the tests check outputs and gradients in float64.

Shape letters (see :mod:`solutions`): ... leading dims (B, H); Tq queries; Tk keys; Dk, Dv feature sizes;
Cq, Ck the chunk sizes along the queries and the keys.
"""
from __future__ import annotations

import math

import torch

from ..attention.masking import check_mask
from ..attention.shapes import broadcast_shapes
from .online_softmax import finite_or_zero

__all__ = ["chunked_attention"]

_LOG2_E = math.log2(math.e)


def chunked_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    is_causal: bool = False,
    scale: float | None = None,
    query_chunk: int = 256,
    key_chunk: int = 512,
) -> torch.Tensor:
    """softmax(scale · Q Kᵀ) V computed chunk by chunk (Rabe & Staats 2021; Dao et al. 2022, Alg. 1–2).

    Args:
        query: (..., Tq, Dk).  key: (..., Tk, Dk).  value: (..., Tk, Dv); leading dims broadcast.
        mask: bool, broadcastable to (..., Tq, Tk), **True = may attend**. It is read block by block,
            so a broadcast mask (e.g. (B, 1, 1, Tk) for padding) costs no (Tq, Tk) memory.
        is_causal: query i attends to keys j ≤ i (top-left triangle, as ``F.scaled_dot_product_attention``);
            blocks wholly above the diagonal are skipped.
        scale: multiplies the scores; 1/√Dk by default.
        query_chunk, key_chunk: Cq and Ck; any positive size, the last chunk may be shorter. The
            defaults keep a block of 8 heads' scores (4 MiB in float32) near the CPU's cache.

    Returns:
        output (..., Tq, Dv). No weights: never forming them is the point. A query with every key
        masked gets a zero output and zero gradients, never NaN.
    """
    _check(query, key, value, mask, query_chunk, key_chunk)
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    lead = broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    return _ChunkedAttention.apply(query, key, value, mask, is_causal, scale, query_chunk, key_chunk, lead)


class _ChunkedAttention(torch.autograd.Function):
    """Forward keeps (Q, K, V, out, L) only; backward recomputes each block of P from them."""

    @staticmethod
    def forward(ctx, query, key, value, mask, is_causal, scale, query_chunk, key_chunk, lead):
        q, k, v = (x.expand(lead + x.shape[-2:]) for x in (query, key, value))  # (..., T, D) each
        output, logsumexp = _forward(q, k, v, mask, is_causal, scale, query_chunk, key_chunk)
        ctx.save_for_backward(q, k, v, output, logsumexp, mask)
        ctx.settings = (is_causal, scale, query_chunk, key_chunk)
        ctx.shapes = (query.shape, key.shape, value.shape)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        q, k, v, output, logsumexp, mask = ctx.saved_tensors
        grads = _backward(q, k, v, output, logsumexp, mask, grad_output, *ctx.settings)
        grads = [g.sum_to_size(shape) for g, shape in zip(grads, ctx.shapes)]  # undo the broadcast
        return (*grads, None, None, None, None, None, None)


def _forward(q, k, v, mask, is_causal, scale, query_chunk, key_chunk):
    """Algorithm 1 of Dao et al. 2022: the output (..., Tq, Dv) and the log-sum-exp L (..., Tq), base 2."""
    Tq, Tk = q.shape[-2], k.shape[-2]
    accumulate = _accumulation_dtype(q.dtype)
    k_t = k.transpose(-2, -1).contiguous()  # (..., Dk, Tk): read in slices, once per chunk of queries
    q = _prescaled(q, scale)  # (..., Tq, Dk): the scale and log₂ e applied once, not to every block
    output = q.new_empty(q.shape[:-1] + v.shape[-1:])  # (..., Tq, Dv)
    logsumexp = q.new_empty(q.shape[:-1], dtype=accumulate)  # (..., Tq)
    for i0 in range(0, Tq, query_chunk):
        i1 = min(i0 + query_chunk, Tq)
        q_i = q[..., i0:i1, :]  # (..., Cq, Dk)
        m = q_i.new_full(q_i.shape[:-1], -math.inf, dtype=accumulate)  # (..., Cq): running maximum
        l = q_i.new_zeros(q_i.shape[:-1], dtype=accumulate)  # (..., Cq): running sum
        o = q_i.new_zeros(q_i.shape[:-1] + v.shape[-1:], dtype=accumulate)  # (..., Cq, Dv): running output
        for j0, j1 in _key_chunks(i0, i1, Tk, key_chunk, is_causal):
            s = _scores(q_i, k_t[..., j0:j1], mask, is_causal, i0, i1, j0, j1, accumulate)  # (..., Cq, Ck)
            m_new = torch.maximum(m, s.amax(-1))  # (..., Cq)
            shift = finite_or_zero(m_new)
            p = s.sub_(shift.unsqueeze(-1)).exp2_()  # (..., Cq, Ck): P = 2^{S − m'}, in place of S
            rescale = torch.exp2(m - shift)  # (..., Cq): 2^{m − m'}
            l.mul_(rescale).add_(p.sum(-1))
            o.mul_(rescale.unsqueeze(-1)).add_(p.to(v.dtype) @ v[..., j0:j1, :])  # (..., Cq, Dv)
            m = m_new
        output[..., i0:i1, :] = o / torch.where(l > 0, l, torch.ones_like(l)).unsqueeze(-1)
        logsumexp[..., i0:i1] = m + torch.log2(l)  # −∞ for a query that attends to nothing
    return output, logsumexp


def _backward(q, k, v, output, logsumexp, mask, grad_output, is_causal, scale, query_chunk, key_chunk):
    """Algorithm 2 of Dao et al. 2022: dQ, dK, dV, each block of P recomputed from L."""
    Tq, Tk = q.shape[-2], k.shape[-2]
    accumulate = _accumulation_dtype(q.dtype)
    grad_output = grad_output.expand(output.shape)
    delta = (grad_output.to(accumulate) * output.to(accumulate)).sum(-1)  # (..., Tq): rowsum(dO ∘ O)
    shift = finite_or_zero(logsumexp)  # an empty row's scores are all −∞, so its P is 0
    k_t = k.transpose(-2, -1).contiguous()  # (..., Dk, Tk)
    q_scaled = _prescaled(q, scale)  # (..., Tq, Dk)
    dq = torch.zeros_like(q, dtype=accumulate)  # (..., Tq, Dk)
    dk = torch.zeros_like(k, dtype=accumulate)  # (..., Tk, Dk)
    dv = torch.zeros_like(v, dtype=accumulate)  # (..., Tk, Dv)
    for i0 in range(0, Tq, query_chunk):
        i1 = min(i0 + query_chunk, Tq)
        q_i, do_i = q[..., i0:i1, :], grad_output[..., i0:i1, :].to(accumulate)  # (..., Cq, Dk), (..., Cq, Dv)
        for j0, j1 in _key_chunks(i0, i1, Tk, key_chunk, is_causal):
            k_j, v_j = k[..., j0:j1, :], v[..., j0:j1, :]  # (..., Ck, Dk), (..., Ck, Dv)
            s = _scores(q_scaled[..., i0:i1, :], k_t[..., j0:j1], mask, is_causal, i0, i1, j0, j1,
                        accumulate)  # (..., Cq, Ck)
            p = s.sub_(shift[..., i0:i1].unsqueeze(-1)).exp2_()  # (..., Cq, Ck): P recomputed, 2^{S − L}
            dv[..., j0:j1, :] += p.transpose(-2, -1) @ do_i  # (..., Ck, Dv)
            dp = do_i @ v_j.to(accumulate).transpose(-2, -1)  # (..., Cq, Ck)
            ds = p * (dp - delta[..., i0:i1].unsqueeze(-1)) * scale  # (..., Cq, Ck): dS, times the scale
            dq[..., i0:i1, :] += ds @ k_j.to(accumulate)  # (..., Cq, Dk)
            dk[..., j0:j1, :] += ds.transpose(-2, -1) @ q_i.to(accumulate)  # (..., Ck, Dk)
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


def _prescaled(q: torch.Tensor, scale: float) -> torch.Tensor:
    """scale · log₂ e · Q, so that Q Kᵀ comes out as base-2 scores."""
    return (q.to(_accumulation_dtype(q.dtype)) * (scale * _LOG2_E)).to(q.dtype)


def _scores(q_i, k_t, mask, is_causal, i0, i1, j0, j1, dtype):
    """One block of base-2 scores, Q_i K_jᵀ from the prescaled queries, (..., Cq, Ck), removed keys at −∞."""
    s = (q_i @ k_t).to(dtype)  # (..., Cq, Ck)
    if mask is not None:
        s.masked_fill_(~_block(mask, i0, i1, j0, j1), -math.inf)
    if is_causal and j1 - 1 > i0:  # the block reaches above the diagonal
        rows = torch.arange(i0, i1, device=s.device).unsqueeze(-1)  # (Cq, 1)
        cols = torch.arange(j0, j1, device=s.device)  # (Ck,)
        s.masked_fill_(cols > rows, -math.inf)  # (..., Cq, Ck)
    return s


def _block(mask: torch.Tensor, i0: int, i1: int, j0: int, j1: int) -> torch.Tensor:
    """The rows i0:i1 and columns j0:j1 of a mask broadcastable to (..., Tq, Tk); size-1 dims stay."""
    if mask.dim() < 2:
        mask = mask.reshape((1,) * (2 - mask.dim()) + tuple(mask.shape))  # (1, Tk) or (1, 1)
    rows = slice(None) if mask.shape[-2] == 1 else slice(i0, i1)
    cols = slice(None) if mask.shape[-1] == 1 else slice(j0, j1)
    return mask[..., rows, cols]


def _key_chunks(i0: int, i1: int, Tk: int, key_chunk: int, is_causal: bool):
    """(j0, j1) of the key chunks that query rows i0:i1 can see (causal: none after the last row)."""
    end = min(Tk, i1) if is_causal else Tk
    for j0 in range(0, end, key_chunk):
        yield j0, min(j0 + key_chunk, end)


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half precision computes its statistics and sums in float32, as the fused kernels do."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _check(query, key, value, mask, query_chunk, key_chunk) -> None:
    for name, x in (("query", query), ("key", key), ("value", value)):
        if not isinstance(x, torch.Tensor) or x.dim() < 2 or not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor of shape (..., T, D), got "
                            f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(f"queries have {query.shape[-1]} features but keys have {key.shape[-1]} "
                         f"(query {tuple(query.shape)}, key {tuple(key.shape)})")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"keys have {key.shape[-2]} positions but values have {value.shape[-2]} "
                         f"(key {tuple(key.shape)}, value {tuple(value.shape)})")
    try:
        lead = broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except RuntimeError:
        raise ValueError(f"the leading dims of query {tuple(query.shape)}, key {tuple(key.shape)} and value "
                         f"{tuple(value.shape)} do not broadcast") from None
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor (True = may attend), got "
                            f"{getattr(mask, 'dtype', type(mask).__name__)}")
        check_mask(lead + (query.shape[-2], key.shape[-2]), mask)
    for name, size in (("query_chunk", query_chunk), ("key_chunk", key_chunk)):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"{name} must be a positive integer, got {size!r}")
