"""The chapter's small convnet, with a channel or spatial attention module after each convolution.

Each of the ``len(widths)`` stages is conv 3×3 → batch norm → ReLU → [module] → max-pool 2×2; global
average pooling and a linear layer give the logits. ``attention`` picks the module: ``None`` (the plain
net), ``"se"``, ``"eca"`` or ``"cbam"``. :class:`STNClassifier` puts a spatial transformer in front.

Shape letters (see :mod:`solutions`): B batch, C channels, H and W the height and width of a feature map.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .cbam import CBAM
from .channel import EfficientChannelAttention, SqueezeExcitation
from .spatial_transformer import SpatialTransformer

__all__ = ["ConvNetConfig", "ConvNet", "STNClassifier"]

MODULES = (None, "se", "eca", "cbam")


@dataclass
class ConvNetConfig:
    in_channels: int = 1
    widths: tuple[int, ...] = (16, 32, 32)  # channels of each stage
    classes: int = 10
    attention: str | None = None  # None, "se", "eca" or "cbam", after every stage's ReLU
    reduction: int = 4  # r of SE and of CBAM's channel MLP
    spatial_kernel: int = 7  # CBAM's spatial filter

    @classmethod
    def tiny(cls, **overrides) -> "ConvNetConfig":
        return cls(**{"widths": (4, 8), **overrides})


class ConvNet(nn.Module):
    """``forward(x)`` with x (B, C_in, H, W) returns ``(logits (B, classes), weights)``.

    ``weights`` has one entry per stage: ``None`` for the plain net, the channel weights (B, C) for SE and
    ECA, and ``(channel weights (B, C), spatial map (B, H, W))`` for CBAM.
    """

    def __init__(self, config: ConvNetConfig):
        super().__init__()
        if config.attention not in MODULES:
            raise ValueError(f"attention must be one of {MODULES}, got {config.attention!r}")
        self.config = config
        self.stages = nn.ModuleList()
        self.attention = nn.ModuleList()  # one module (or nn.Identity) per stage
        width_in = config.in_channels
        for width in config.widths:
            self.stages.append(nn.Sequential(nn.Conv2d(width_in, width, 3, padding=1, bias=False),
                                             nn.BatchNorm2d(width), nn.ReLU()))
            self.attention.append(_module(config, width))
            width_in = width
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(width_in, config.classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list]:
        weights = []
        for stage, module in zip(self.stages, self.attention):
            x = stage(x)  # (B, C, H, W)
            if isinstance(module, nn.Identity):
                weights.append(None)
            else:
                x, w = module(x)
                weights.append(w)
            x = self.pool(x)  # (B, C, H/2, W/2)
        return self.head(x.mean(dim=(-2, -1))), weights  # (B, classes)


class STNClassifier(nn.Module):
    """A spatial transformer, then a :class:`ConvNet` on its output (Jaderberg et al. 2015's ST-CNN).

    ``forward(x)`` returns ``(logits, (rectified input (B, C, Ho, Wo), θ (B, 2, 3)))``.
    """

    def __init__(self, config: ConvNetConfig, hidden: int = 8, size: tuple[int, int] | None = None):
        super().__init__()
        self.transformer = SpatialTransformer(config.in_channels, hidden, size)
        self.classifier = ConvNet(config)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        rectified, theta = self.transformer(x)
        logits, _ = self.classifier(rectified)
        return logits, (rectified, theta)


def _module(config: ConvNetConfig, width: int) -> nn.Module:
    if config.attention == "se":
        return SqueezeExcitation(width, config.reduction)
    if config.attention == "eca":
        return EfficientChannelAttention(width)
    if config.attention == "cbam":
        return CBAM(width, config.reduction, config.spatial_kernel)
    return nn.Identity()
