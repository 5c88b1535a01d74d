"""The spatial transformer (Jaderberg et al. 2015, arXiv:1506.02025, Section 3).

A localisation net looks at the input U and regresses the six numbers of an affine map θ (Section 3.1).
The *grid generator* (Section 3.2, eq. 1) maps every point (x^t_i, y^t_i) of the output's regular grid to
the point of the input it samples,

    (x^s_i, y^s_i)ᵀ = A_θ (x^t_i, y^t_i, 1)ᵀ,        A_θ = [[θ11, θ12, θ13], [θ21, θ22, θ23]]      (eq. 1)

in coordinates normalised to [−1, 1] across the image; the *sampler* (Section 3.3) reads the input there
with a bilinear kernel (eq. 5),

    V^c_i = Σ_n Σ_m U^c_nm max(0, 1 − |x^s_i − m|) max(0, 1 − |y^s_i − n|),                       (eq. 5)

which is differentiable in U and in the sample points, so θ is learnt from the task's loss alone.
``F.affine_grid`` is the grid generator and ``F.grid_sample`` the sampler. The localisation net's last
layer starts with zero weights and the identity's bias, so before training the transformer returns its
input (up to interpolation; exactly, with ``align_corners=False``, when the output has the input's size).

Shape letters (see :mod:`solutions`): B batch, C channels, H and W the input's height and width,
Ho and Wo the output's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SpatialTransformer", "affine_resample", "identity_theta"]


def identity_theta(batch: int = 1, *, device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None) -> torch.Tensor:
    """The identity's A_θ, (B, 2, 3): [[1, 0, 0], [0, 1, 0]] for every example."""
    eye = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], device=device, dtype=dtype)  # (2, 3)
    return eye.expand(batch, 2, 3).clone()


def affine_resample(u: torch.Tensor, theta: torch.Tensor, size: tuple[int, int] | None = None,
                    mode: str = "bilinear", padding_mode: str = "zeros") -> torch.Tensor:
    """The grid generator (eq. 1) and the sampler (eq. 5): ``V = grid_sample(U, affine_grid(θ))``.

    Args:
        u: the input U, (B, C, H, W).
        theta: A_θ, (B, 2, 3), mapping output coordinates to input coordinates, both in [−1, 1]
            (x to the right, y down; ``align_corners=False``: ±1 are the outer edges of the edge pixels).
        size: (Ho, Wo) of the output V; the input's (H, W) by default.
    Returns:
        V, (B, C, Ho, Wo). Points that fall outside the input read zeros.
    """
    if u.dim() != 4 or theta.shape != (u.shape[0], 2, 3):
        raise ValueError(f"expected U (B, C, H, W) and θ (B, 2, 3), got {tuple(u.shape)} and {tuple(theta.shape)}")
    ho, wo = u.shape[-2:] if size is None else size
    grid = F.affine_grid(theta, [u.shape[0], u.shape[1], ho, wo], align_corners=False)  # (B, Ho, Wo, 2): eq. 1
    return F.grid_sample(u, grid, mode=mode, padding_mode=padding_mode, align_corners=False)  # eq. 5


class SpatialTransformer(nn.Module):
    """Localisation net → θ → ``affine_grid`` → ``grid_sample``, initialised to the identity.

    The localisation net is two 5×5 convolutions (``hidden`` channels), each followed by batch norm, a 2×2
    max-pool and a ReLU, an average pool to a 4×4 grid (so that it still knows *where* things are), and two linear
    layers with a tanh between them (a tanh cannot die as a ReLU can while θ's layer starts at zero).
    ``forward(u)`` returns ``(V, θ)``: the resampled input (B, C, Ho, Wo) and A_θ (B, 2, 3).
    """

    def __init__(self, in_channels: int = 1, hidden: int = 8, size: tuple[int, int] | None = None):
        super().__init__()
        self.size = size
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 5, padding=2), nn.BatchNorm2d(hidden), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 5, padding=2), nn.BatchNorm2d(hidden), nn.MaxPool2d(2), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),  # (B, hidden · 16)
            nn.Linear(hidden * 16, 4 * hidden), nn.Tanh())
        self.theta = nn.Linear(4 * hidden, 6)
        nn.init.zeros_(self.theta.weight)  # θ = the identity, whatever the input, until it learns otherwise
        with torch.no_grad():
            self.theta.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        theta = self.theta(self.features(u)).view(-1, 2, 3)  # (B, 2, 3)
        return affine_resample(u, theta, self.size), theta
