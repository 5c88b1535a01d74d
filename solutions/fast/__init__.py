"""Appendix: making attention fast.

* :mod:`~solutions.fast.cost` — FLOPs and memory traffic of attention, and FlashAttention's IO count;
* :mod:`~solutions.fast.online_softmax` — the softmax's normaliser in one pass (Milakov & Gimelshein 2018);
* :mod:`~solutions.fast.chunked` — memory-efficient attention: chunks of queries and keys, the online
  softmax, a backward pass that recomputes (Rabe & Staats 2021; Dao et al. 2022);
* :mod:`~solutions.fast.windowed` — sliding-window attention with global positions (Beltagy et al. 2020);
* :mod:`~solutions.fast.kernels` — PyTorch's SDPA backends and ``flex_attention``.
"""
from .chunked import chunked_attention
from .cost import attention_cost, flash_hbm_accesses, standard_hbm_accesses
from .kernels import SDPA_BACKENDS, available_backends, flex_sliding_window, sdpa
from .online_softmax import SoftmaxStats, block_stats, merge_stats, online_softmax
from .windowed import sliding_window_attention, sliding_window_mask

__all__ = [
    "chunked_attention", "attention_cost", "flash_hbm_accesses", "standard_hbm_accesses", "SDPA_BACKENDS",
    "available_backends", "flex_sliding_window", "sdpa", "SoftmaxStats", "block_stats", "merge_stats",
    "online_softmax", "sliding_window_attention", "sliding_window_mask",
]
