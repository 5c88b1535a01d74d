"""Channel attention: one weight in (0, 1) per channel of a feature map, computed from the whole map.

Squeeze-and-Excitation (Hu et al. 2018, arXiv:1709.01507, Section 3) summarises each channel by its mean
(the *squeeze*, eq. 2), passes the C means through a bottleneck MLP with reduction ratio r and a sigmoid
(the *excitation*, eq. 3) and rescales every channel by its weight (eq. 4):

    z_c = 1/(H W) Σ_i Σ_j u_c(i, j)                  (eq. 2)
    s   = σ(W_2 δ(W_1 z)),  W_1 ∈ R^{C/r × C},  W_2 ∈ R^{C × C/r}       (eq. 3)
    x̃_c = s_c · u_c                                  (eq. 4)

so one block adds 2C²/r weights (the paper's count, eq. 5, leaves the biases out).

Efficient Channel Attention (Wang et al. 2020, arXiv:1910.03151, Section 3.2) keeps the squeeze but drops
the bottleneck: the weights come from a 1-D convolution of size k *across the channel axis* of z, so each
channel interacts with its k − 1 neighbours only, through k shared weights (eq. 9, ω = σ(C1D_k(y))); k grows
with the number of channels, k = ψ(C) = |log₂(C)/γ + b/γ|_odd with γ = 2, b = 1 (eq. 12).

Shape letters (see :mod:`solutions`): B batch, C channels, H and W the height and width of a feature map,
R = C/r the bottleneck width of SE.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["SqueezeExcitation", "EfficientChannelAttention", "eca_kernel_size", "se_parameters", "eca_parameters"]


def se_parameters(channels: int, reduction: int, bias: bool = True) -> int:
    """Weights one SE block adds: 2C²/r (Hu et al. 2018, eq. 5, one block), plus C/r + C biases if ``bias``."""
    _check_reduction(channels, reduction)
    hidden = channels // reduction
    return 2 * channels * hidden + ((hidden + channels) if bias else 0)


def eca_kernel_size(channels: int, gamma: float = 2.0, b: float = 1.0) -> int:
    """k = ψ(C) = |log₂(C)/γ + b/γ|_odd (Wang et al. 2020, eq. 12): the odd number nearest to t.

    As the authors' code reads it: t = int(|log₂(C)/γ + b/γ|), and t + 1 when t is even; so C = 64 gives 3,
    C = 256 gives 5, C = 512 gives 5 and C = 2048 gives 7.
    """
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    t = int(abs(math.log2(channels) / gamma + b / gamma))
    return t if t % 2 else t + 1


def eca_parameters(channels: int, kernel_size: int | None = None) -> int:
    """Weights one ECA block adds: k (Wang et al. 2020, Section 3.2.2), k = ψ(C) unless given."""
    return eca_kernel_size(channels) if kernel_size is None else kernel_size


class SqueezeExcitation(nn.Module):
    """The SE block: squeeze (eq. 2), excitation (eq. 3), scale (eq. 4) of Hu et al. 2018.

    ``forward(u)`` takes u (B, C, H, W) and returns ``(x̃, s)``: the rescaled map (B, C, H, W) and the
    channel weights s (B, C), each in (0, 1).
    """

    def __init__(self, channels: int, reduction: int = 16, bias: bool = True):
        super().__init__()
        _check_reduction(channels, reduction)
        self.channels = channels
        self.reduce = nn.Linear(channels, channels // reduction, bias=bias)  # W_1
        self.expand = nn.Linear(channels // reduction, channels, bias=bias)  # W_2

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_map(u, self.channels, "SqueezeExcitation")
        z = u.mean(dim=(-2, -1))  # (B, C): the squeeze, eq. 2
        s = torch.sigmoid(self.expand(torch.relu(self.reduce(z))))  # (B, C): the excitation, eq. 3
        return u * s[..., None, None], s  # (B, C, H, W): the scale, eq. 4


class EfficientChannelAttention(nn.Module):
    """ECA (Wang et al. 2020): ω = σ(C1D_k(z)) over the channel means z (eq. 9), k = ψ(C) (eq. 12).

    ``forward(u)`` takes u (B, C, H, W) and returns ``(u · ω, ω)`` with ω (B, C) in (0, 1). The 1-D
    convolution is zero-padded at both ends of the channel axis, has no bias, and k weights in all.
    """

    def __init__(self, channels: int, kernel_size: int | None = None, gamma: float = 2.0, b: float = 1.0):
        super().__init__()
        k = eca_kernel_size(channels, gamma, b) if kernel_size is None else kernel_size
        if k < 1 or k % 2 == 0:
            raise ValueError(f"the kernel size must be odd and >= 1 (the output keeps C channels), got {k}")
        self.channels, self.kernel_size = channels, k
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=k // 2, bias=False)

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_map(u, self.channels, "EfficientChannelAttention")
        z = u.mean(dim=(-2, -1))  # (B, C): the same squeeze as SE
        omega = torch.sigmoid(self.conv(z.unsqueeze(1)).squeeze(1))  # (B, 1, C) -> (B, C), eq. 9
        return u * omega[..., None, None], omega


def _check_reduction(channels: int, reduction: int) -> None:
    if reduction < 1 or channels % reduction:
        raise ValueError(f"the reduction ratio r must divide the {channels} channels, got r = {reduction}")


def _check_map(u: torch.Tensor, channels: int, who: str) -> None:
    if u.dim() != 4 or u.shape[1] != channels:
        raise ValueError(f"{who} expects a feature map (B, {channels}, H, W), got shape {tuple(u.shape)}")
