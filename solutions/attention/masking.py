"""Alignment: turn scores into attention weights with a masked, tempered softmax.

Step 2 of the *score → align → fuse* framework (chapter 2). For query i the weights over the
keys j are

    α_ij = exp(e_ij / τ) / Σ_{j' kept} exp(e_ij' / τ)   for kept keys,   α_ij = 0 for masked keys,

Bahdanau et al. 2015, eq. 6 (arXiv:1409.0473); Luong et al. 2015, eq. 7 (arXiv:1508.04025);
the softmax of Vaswani et al. 2017, eq. 1 (arXiv:1706.03762), whose decoder masks future keys.
τ is the temperature: τ → 0 tends to a one-hot argmax, τ → ∞ to the uniform distribution.

MASK CONVENTION — read this before passing a mask:
    ``True`` means the query MAY ATTEND to that key (keep it); ``False`` means masked out.
    This is the convention of ``F.scaled_dot_product_attention(attn_mask=bool_mask)`` and the
    OPPOSITE of ``nn.MultiheadAttention``'s ``key_padding_mask`` / bool ``attn_mask``, where
    ``True`` means "ignore". Convert with ``~mask`` when moving between the two.

A query whose keys are all masked "attends to nothing": its row of weights is all zeros (and
its context vector, after fusion, is the zero vector) — never NaN, in the forward or the
backward pass. This is why masked scores are filled with the dtype's finite minimum rather
than −∞ (a row of −∞ gives 0/0), and the weights are multiplied by the mask afterwards.

Shape letters:
    B   batch size (the first dimension of the scores when ``valid_lens`` is used)
    ... any further leading dimensions (e.g. heads H)
    Tq  number of queries          Tk  number of keys
"""
import math

import torch

from .shapes import broadcast_shapes

__all__ = ["lengths_to_mask", "causal_mask", "check_broadcast", "check_mask", "check_temperature", "combine_masks",
           "keep_mask", "masked_softmax"]


def _shape(x: torch.Tensor) -> tuple:
    return tuple(x.shape)


def lengths_to_mask(valid_lens: torch.Tensor, num_keys: int) -> torch.Tensor:
    """Bool mask from sequence lengths: position j is kept (``True``) when ``j < valid_len``.

    valid_lens (B,) → mask (B, Tk); valid_lens (B, Tq) → mask (B, Tq, Tk), with Tk = ``num_keys``.
    Example: ``lengths_to_mask(torch.tensor([2, 0]), 3)`` is ``[[T, T, F], [F, F, F]]``.
    """
    if not isinstance(valid_lens, torch.Tensor):
        valid_lens = torch.as_tensor(valid_lens)
    if valid_lens.dtype == torch.bool or valid_lens.is_floating_point() or valid_lens.is_complex():
        raise TypeError(f"valid_lens must be an integer tensor, got dtype {valid_lens.dtype}")
    if valid_lens.dim() not in (1, 2):
        raise ValueError(f"valid_lens must have shape (B,) or (B, Tq), got {_shape(valid_lens)}")
    if valid_lens.numel() > 0:
        smallest, largest = int(valid_lens.min()), int(valid_lens.max())
        if smallest < 0:
            raise ValueError(f"valid_lens must be >= 0, got a length of {smallest}")
        if largest > num_keys:
            raise ValueError(f"valid_lens has a length of {largest} but there are only {num_keys} keys")
    positions = torch.arange(num_keys, device=valid_lens.device)  # (Tk,)
    return positions < valid_lens.unsqueeze(-1)  # (B, 1) or (B, Tq, 1) vs (Tk,) -> (B, Tk) or (B, Tq, Tk)


def causal_mask(num_queries: int, num_keys: int | None = None,
                device: torch.device | str | None = None) -> torch.Tensor:
    """Bool mask (Tq, Tk), ``True`` where query i may attend to key j, i.e. ``j <= i``.

    The decoder's self-attention must not look ahead: Section 3.2.3 of Vaswani et al. 2017
    (arXiv:1706.03762) masks out "all values in the input of the softmax which correspond to illegal
    connections". With ``num_keys != num_queries`` the triangle starts at the top left, as with
    ``F.scaled_dot_product_attention(..., is_causal=True)``.
    """
    num_keys = num_queries if num_keys is None else num_keys
    if num_queries < 0 or num_keys < 0:
        raise ValueError(f"sizes must be >= 0, got {num_queries} queries and {num_keys} keys")
    ones = torch.ones(num_queries, num_keys, dtype=torch.bool, device=device)  # (Tq, Tk)
    return torch.tril(ones)  # (Tq, Tk): row i keeps keys 0..i


def lengths_mask_for(scores_shape: torch.Size, valid_lens: torch.Tensor,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """Mask from ``valid_lens``, reshaped to broadcast against scores of shape (B, ..., Tq, Tk)."""
    shape = tuple(scores_shape)
    valid_lens = torch.as_tensor(valid_lens, device=device)
    if valid_lens.dim() == 1:  # (B,): every query of batch b sees keys [0, len_b)
        if len(shape) < 2:
            raise ValueError(f"valid_lens of shape (B,) needs scores (B, ..., Tk), got {shape}")
    elif valid_lens.dim() == 2:  # (B, Tq): one length per query
        if len(shape) < 3:
            raise ValueError(f"valid_lens of shape (B, Tq) needs scores (B, ..., Tq, Tk), got {shape}")
        if valid_lens.shape[1] != shape[-2]:
            raise ValueError(
                f"valid_lens {_shape(valid_lens)} gives lengths for {valid_lens.shape[1]} queries "
                f"but scores {shape} have {shape[-2]}"
            )
    else:
        raise ValueError(f"valid_lens must have shape (B,) or (B, Tq), got {_shape(valid_lens)}")
    if valid_lens.shape[0] != shape[0]:
        raise ValueError(
            f"valid_lens {_shape(valid_lens)} has batch size {valid_lens.shape[0]} "
            f"but scores {shape} have {shape[0]} in their first dimension"
        )
    mask = lengths_to_mask(valid_lens, shape[-1])  # (B, Tk) or (B, Tq, Tk)
    # insert singleton dims after B so the mask lines up with scores (B, ..., Tq, Tk)
    missing = len(shape) - mask.dim()
    return mask.view(mask.shape[:1] + (1,) * missing + mask.shape[1:])  # (B, 1, ..., [Tq,] Tk)


def check_broadcast(scores_shape: torch.Size, mask: torch.Tensor, name: str = "mask") -> None:
    """``mask`` (bool or float) broadcasts to scores of shape (..., Tq, Tk), or a clear error naming both."""
    shape = tuple(scores_shape)
    if mask.dim() > 0 and mask.shape[-1] not in (1, shape[-1]):
        raise ValueError(
            f"keys have {shape[-1]} positions but {name} has {mask.shape[-1]} "
            f"(scores {shape}, {name} {_shape(mask)})"
        )
    try:
        broadcast = tuple(broadcast_shapes(mask.shape, shape))
    except RuntimeError:
        broadcast = None
    if broadcast != shape:
        raise ValueError(f"{name} of shape {_shape(mask)} does not broadcast to scores of shape {shape}")


def check_mask(scores_shape: torch.Size, mask: torch.Tensor) -> None:
    """A bool mask (True = may attend) that broadcasts to scores of shape (..., Tq, Tk), or a clear error."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a bool torch.Tensor (True = may attend), got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(
            f"mask must be a bool tensor (True = may attend, False = masked out), got dtype {mask.dtype}; "
            f"build it with a comparison, e.g. `mask = lengths > 0`, or `mask.bool()`"
        )
    check_broadcast(scores_shape, mask)


def check_temperature(temperature: float | torch.Tensor) -> None:
    """τ must be positive and finite (a number or a tensor of them)."""
    if isinstance(temperature, torch.Tensor):
        bad = not bool(torch.all(temperature > 0)) or not bool(torch.all(torch.isfinite(temperature)))
    else:
        bad = not (temperature > 0 and math.isfinite(temperature))
    if bad:
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")


def combine_masks(scores_shape: torch.Size, device: torch.device, mask: torch.Tensor | None = None,
                  valid_lens: torch.Tensor | None = None) -> torch.Tensor | None:
    """``mask`` AND ``valid_lens`` as one bool mask broadcastable to the scores (None when neither is given)."""
    keep = None
    if mask is not None:
        check_mask(scores_shape, mask)
        keep = mask.to(device)
    if valid_lens is not None:
        length_mask = lengths_mask_for(scores_shape, valid_lens, device)  # (B, 1, ..., [Tq,] Tk)
        keep = length_mask if keep is None else keep & length_mask
    return keep


def keep_mask(scores: torch.Tensor, mask: torch.Tensor | None = None, valid_lens: torch.Tensor | None = None,
              temperature: float = 1.0) -> torch.Tensor | None:
    """The arguments of :func:`masked_softmax` checked, and ``mask`` AND ``valid_lens`` as one bool mask
    broadcastable to ``scores`` (None when neither is given)."""
    if not isinstance(scores, torch.Tensor) or not scores.is_floating_point():
        got = getattr(scores, "dtype", type(scores).__name__)
        raise TypeError(f"scores must be a floating-point tensor, got {got}")
    if scores.dim() < 1:
        raise ValueError("scores must have at least one dimension (the keys)")
    check_temperature(temperature)
    return combine_masks(scores.shape, scores.device, mask, valid_lens)


def masked_softmax(
    scores: torch.Tensor,
    mask: torch.Tensor | None = None,
    valid_lens: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Softmax of ``scores / temperature`` over the keys (last dim), with masked keys at weight 0.

    Args:
        scores: (..., Tq, Tk) raw scores e_ij from a score function.
        mask: bool, broadcastable to ``scores``; **True = may attend (keep)**, False = masked out.
            Opposite of ``nn.MultiheadAttention``'s ``key_padding_mask``.
        valid_lens: integer (B,) — every query of batch b sees keys [0, len_b) — or (B, Tq), one
            length per query; B is the first dimension of ``scores`` (e.g. scores (B, H, Tq, Tk)).
            Combined with ``mask`` by AND.
        temperature: τ > 0; the weights are ``softmax(scores / τ)``.

    Returns:
        weights (..., Tq, Tk): each row sums to 1 over its kept keys; masked keys get exactly 0;
        a row with every key masked is all zeros ("attends to nothing"), never NaN.
    """
    keep = keep_mask(scores, mask, valid_lens, temperature)  # (..., Tq, Tk) or None; True = may attend
    if not (isinstance(temperature, (int, float)) and temperature == 1):  # τ = 1 would only copy the scores
        scores = scores / temperature  # (..., Tq, Tk)
    if keep is None:
        return torch.softmax(scores, dim=-1)
    # Finite minimum, not -inf: an all-masked row then softmaxes to a uniform row (no 0/0) that
    # the final multiplication zeroes; masked_fill also blocks gradients to masked scores.
    filled = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)  # (..., Tq, Tk)
    weights = torch.softmax(filled, dim=-1)  # (..., Tq, Tk)
    return weights * keep  # (..., Tq, Tk); masked keys exactly 0, all-masked rows all 0
