"""CBAM: channel attention, then spatial attention (Woo et al. 2018, arXiv:1807.06521, Section 3).

The block refines a feature map F in two steps, each a product with a map of weights in (0, 1) broadcast
over the other axes (eq. 1):

    F′ = M_c(F) ⊗ F,        F″ = M_s(F′) ⊗ F′                                       (eq. 1)

The channel map pools each channel twice, by its mean and by its maximum, and sends both C-vectors through
one shared MLP (W_0 ∈ R^{C/r × C}, ReLU, W_1 ∈ R^{C × C/r}) before adding them (eq. 2):

    M_c(F) = σ(W_1 δ(W_0 F^c_avg) + W_1 δ(W_0 F^c_max))                              (eq. 2)

The spatial map pools each *position* across the channels, by mean and by maximum, stacks the two maps
and convolves them with one 7×7 filter (eq. 3):

    M_s(F) = σ(f^{7×7}([F^s_avg; F^s_max]))                                           (eq. 3)

The channel module adds the 2C²/r weights of SE's MLP (shared by both pools); the spatial module 2·7·7 = 98.

Shape letters (see :mod:`solutions`): B batch, C channels, H and W the height and width of a feature map.
"""
from __future__ import annotations

import torch
from torch import nn

from .channel import _check_map, _check_reduction

__all__ = ["ChannelGate", "SpatialGate", "CBAM", "cbam_parameters"]


def cbam_parameters(channels: int, reduction: int, kernel_size: int = 7, bias: bool = True) -> int:
    """Weights one CBAM block adds: 2C²/r for the shared MLP (+ C/r + C biases) and 2k² for the spatial filter."""
    _check_reduction(channels, reduction)
    hidden = channels // reduction
    return 2 * channels * hidden + ((hidden + channels) if bias else 0) + 2 * kernel_size**2


class ChannelGate(nn.Module):
    """CBAM's channel module M_c (eq. 2): ``forward(F)`` returns ``(M_c(F) ⊗ F, M_c(F))``, weights (B, C)."""

    def __init__(self, channels: int, reduction: int = 16, bias: bool = True):
        super().__init__()
        _check_reduction(channels, reduction)
        self.channels = channels
        self.mlp = nn.Sequential(nn.Linear(channels, channels // reduction, bias=bias), nn.ReLU(),  # W_0, δ
                                 nn.Linear(channels // reduction, channels, bias=bias))  # W_1

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_map(f, self.channels, "ChannelGate")
        avg, peak = f.mean(dim=(-2, -1)), f.amax(dim=(-2, -1))  # (B, C) each: F^c_avg, F^c_max
        weights = torch.sigmoid(self.mlp(avg) + self.mlp(peak))  # (B, C): eq. 2, one MLP for both
        return f * weights[..., None, None], weights


class SpatialGate(nn.Module):
    """CBAM's spatial module M_s (eq. 3): ``forward(F)`` returns ``(M_s(F) ⊗ F, M_s(F))``, map (B, H, W).

    A k×k convolution (k = 7 in the paper, odd, zero padding k // 2 so the map keeps H × W) without bias:
    2k² weights.
    """

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"the kernel size must be odd and >= 1 (the map keeps H x W), got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)  # f^{7×7}

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if f.dim() != 4:
            raise ValueError(f"SpatialGate expects a feature map (B, C, H, W), got shape {tuple(f.shape)}")
        pools = torch.stack([f.mean(dim=1), f.amax(dim=1)], dim=1)  # (B, 2, H, W): [F^s_avg; F^s_max]
        weights = torch.sigmoid(self.conv(pools)).squeeze(1)  # (B, H, W): eq. 3
        return f * weights.unsqueeze(1), weights


class CBAM(nn.Module):
    """The channel module, then the spatial module on its output (eq. 1).

    ``forward(F)`` returns ``(F″, (channel weights (B, C), spatial map (B, H, W)))``.
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7, bias: bool = True):
        super().__init__()
        self.channel = ChannelGate(channels, reduction, bias)
        self.spatial = SpatialGate(kernel_size)

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        f1, channel_weights = self.channel(f)  # F′ = M_c(F) ⊗ F
        f2, spatial_map = self.spatial(f1)  # F″ = M_s(F′) ⊗ F′
        return f2, (channel_weights, spatial_map)
