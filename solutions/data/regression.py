"""A tiny 1-D regression problem for attention pooling (Nadaraya–Watson, chapter 1).

Shape letters: n_train training points, n_test test points.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from ..seeding import or_default

__all__ = ["target_function", "RegressionData", "make_regression_data"]


def target_function(x: torch.Tensor) -> torch.Tensor:
    """The smooth function the chapter's data come from: ``f(x) = 2 sin(x) + x^0.8`` (for x >= 0)."""
    return 2 * torch.sin(x) + x.pow(0.8)


class RegressionData(NamedTuple):
    """Training and test data for chapter 1; unpacks as ``x_train, y_train, x_test, y_test``."""

    x_train: torch.Tensor  # (n_train,) sorted inputs, uniform in [0, 5]
    y_train: torch.Tensor  # (n_train,) noisy outputs f(x) + noise
    x_test: torch.Tensor  # (n_test,) evenly spaced inputs in [0, 5]
    y_test: torch.Tensor  # (n_test,) noise-free outputs f(x)


def make_regression_data(
    n_train: int,
    n_test: int,
    noise: float = 0.5,
    seed: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> RegressionData:
    """A tiny 1-D regression problem with the target ``f(x) = 2 sin(x) + x^0.8`` (`target_function`).

    ``x_train`` is ``n_train`` sorted draws from Uniform[0, 5] and ``y_train = f(x_train) + eps`` with
    ``eps ~ N(0, noise^2)``; ``x_test`` is ``n_test`` evenly spaced points on [0, 5] and
    ``y_test = f(x_test)`` without noise. The numbers come from a local ``torch.Generator`` (the
    global random state is untouched) and are drawn in float64 on the CPU, then cast and moved, so
    the same seed gives the same data on every device.

    Returns:
        `RegressionData` (x_train, y_train, x_test, y_test).
    """
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be >= 1, got {n_train} and {n_test}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    dtype = torch.get_default_dtype() if dtype is None else dtype
    generator = torch.Generator().manual_seed(or_default(seed))
    x_train = torch.sort(5 * torch.rand(n_train, generator=generator, dtype=torch.float64)).values  # (n_train,)
    eps = noise * torch.randn(n_train, generator=generator, dtype=torch.float64)  # (n_train,)
    y_train = target_function(x_train) + eps
    x_test = torch.linspace(0, 5, n_test, dtype=torch.float64)  # (n_test,)
    y_test = target_function(x_test)
    return RegressionData(*(t.to(device=device, dtype=dtype) for t in (x_train, y_train, x_test, y_test)))
