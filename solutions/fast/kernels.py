"""PyTorch's own fast attention kernels, named so the appendix can compare them with the course's code.

``F.scaled_dot_product_attention`` picks one of several backends (``torch.nn.attention.SDPBackend``):
``math`` (the plain composite, which builds the (T, T) matrix), ``flash`` (FlashAttention's tiling: on a
GPU Dao 2023, arXiv:2307.08691; PyTorch also has a tiled CPU kernel under this name), ``efficient`` (the
memory-efficient kernel of xFormers, after Rabe & Staats 2021; GPU only) and ``cudnn`` (NVIDIA's, GPU only).
``flex_attention`` compiles a kernel from a mask written as a Python function, skipping the blocks the
mask removes: a sliding window then costs O(T · w).
"""
from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

__all__ = ["SDPA_BACKENDS", "sdpa", "available_backends", "flex_sliding_window"]

#: The backends by the appendix's names.
SDPA_BACKENDS = {
    "math": SDPBackend.MATH,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
}


def sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, backend: str | None = None,
         **kwargs) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` restricted to one backend (None: PyTorch's choice).

    Raises ``RuntimeError`` when that backend cannot run these inputs on this device.
    """
    if backend is None:
        return F.scaled_dot_product_attention(query, key, value, **kwargs)
    if backend not in SDPA_BACKENDS:
        raise ValueError(f"unknown SDPA backend {backend!r}; choose one of {sorted(SDPA_BACKENDS)}")
    with sdpa_kernel(SDPA_BACKENDS[backend]):
        return F.scaled_dot_product_attention(query, key, value, **kwargs)


def available_backends(query: torch.Tensor, key: torch.Tensor | None = None,
                       value: torch.Tensor | None = None) -> list[str]:
    """The backends that run on these inputs (tried once each on the same tensors)."""
    key = query if key is None else key
    value = query if value is None else value
    found = []
    for name in SDPA_BACKENDS:
        try:
            sdpa(query, key, value, name)
        except RuntimeError:
            continue
        found.append(name)
    return found


def flex_sliding_window(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, window: int, *,
                        is_causal: bool = False, compiled: bool = True) -> torch.Tensor:
    """Sliding-window attention by ``flex_attention`` with a block mask: |i − j| ≤ w (causal: 0 ≤ i − j ≤ w).

    ``compiled=True`` runs the kernel that ``torch.compile`` generates (the first call compiles, which takes
    seconds); ``compiled=False`` runs flex_attention's reference path, which builds the (T, T) scores.
    Inputs (B, H, T, D).
    """
    from torch.nn.attention.flex_attention import create_block_mask

    def in_window(b, h, i, j):
        return (i - j <= window) & (j - i <= (0 if is_causal else window))

    T = query.shape[-2]
    block_mask = create_block_mask(in_window, None, None, T, T, device=query.device)
    return _flex(compiled)(query, key, value, block_mask=block_mask)


@functools.cache
def _flex(compiled: bool) -> Callable:
    import warnings

    from torch.nn.attention.flex_attention import flex_attention
    if compiled:
        return torch.compile(flex_attention, dynamic=False)

    def eager(*args, **kwargs):
        with warnings.catch_warnings():  # the warning says what the docstring says: this path is unfused
            warnings.simplefilter("ignore", UserWarning)
            return flex_attention(*args, **kwargs)
    return eager
