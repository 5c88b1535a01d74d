"""Handwritten digits on larger canvases: shifted, scaled, rotated, warped, cluttered.

The digits are scikit-learn's bundled ``load_digits`` (1,797 real 8×8 images of 0–9, 16 grey levels; no
download). Each canvas image is drawn by one bilinear resampling of a source digit (``F.grid_sample``),
so every distortion is exact and differentiable to reason about:

* ``"T"``   translated: the digit, ``digit_size`` pixels across, anywhere on the canvas;
* ``"R"``   rotated by an angle uniform in ±90°, centred (Jaderberg et al. 2015's R);
* ``"RTS"`` rotated ±45°, scaled ×0.7–1.2 and placed anywhere (their RTS);
* ``"P"``   a projective warp: the digit's corners moved by Gaussian noise, centred (their P);
* ``"E"``   an elastic warp: a smooth random displacement field, centred (their E).

``clutter`` adds that many fragments of other digits (square windows of ``fragment`` pixels cut from them)
at random places, as in cluttered MNIST. Everything is drawn from a local ``torch.Generator`` in float64 on
the CPU and then cast and moved, so a seed gives the same images on every device; the global random state
is untouched.

Shape letters: N images, S canvas side (pixels).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import torch
import torch.nn.functional as F
from ..seeding import or_default

__all__ = ["DISTORTIONS", "DigitCanvases", "load_digit_images", "digit_split", "make_digit_canvases"]

DISTORTIONS = ("T", "R", "RTS", "P", "E")


class DigitCanvases(NamedTuple):
    """Canvas images and what drew them; unpacks as ``images, labels, sources, centres``."""

    images: torch.Tensor  # (N, 1, S, S) in [0, 1]
    labels: torch.Tensor  # (N,) int64, 0-9
    sources: torch.Tensor  # (N,) int64: the index of the source digit in load_digits
    centres: torch.Tensor  # (N, 2): where the digit's centre lies, (x, y) in pixels from the top-left corner


@lru_cache(maxsize=1)
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits  # here, so importing solutions.data needs no scikit-learn

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float64).unsqueeze(1) / 16.0  # (1797, 1, 8, 8)
    return images, torch.tensor(bunch.target, dtype=torch.int64)


def load_digit_images() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 digits: images (1797, 1, 8, 8) float64 in [0, 1] and labels (1797,)."""
    images, labels = _digits()
    return images.clone(), labels.clone()


def digit_split(test: int = 400, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the source digits for training and for testing, disjoint: (1797 − test,) and (test,).

    Split the *source* digits, then draw canvases from each side: no handwritten digit is on both sides.
    """
    total = len(_digits()[1])
    if not 0 < test < total:
        raise ValueError(f"test must be between 1 and {total - 1}, got {test}")
    order = torch.randperm(total, generator=torch.Generator().manual_seed(or_default(seed)))
    return order[test:].sort().values, order[:test].sort().values


def make_digit_canvases(indices: torch.Tensor | None = None, distortion: str = "T", *, canvas: int = 28,
                        digit_size: int = 12, clutter: int = 0, fragment: int = 5, repeats: int = 1,
                        seed: int | None = None, device: torch.device | str | None = None,
                        dtype: torch.dtype | None = None) -> DigitCanvases:
    """Draw ``repeats`` canvases of side ``canvas`` for each source digit in ``indices`` (all by default).

    Args:
        indices: source digits (e.g. one side of :func:`digit_split`); each is drawn ``repeats`` times with
            fresh placements.
        distortion: one of :data:`DISTORTIONS` (see the module's docstring).
        digit_size: the width in pixels of the 8×8 digit once drawn (before any scaling).
        clutter, fragment: the number and the side of the fragments of other digits scattered around.
    """
    if distortion not in DISTORTIONS:
        raise ValueError(f"distortion must be one of {DISTORTIONS}, got {distortion!r}")
    if digit_size < 1 or canvas < digit_size:
        raise ValueError(f"need 1 <= digit_size <= canvas, got digit_size={digit_size}, canvas={canvas}")
    images, labels = _digits()
    indices = torch.arange(len(labels)) if indices is None else torch.as_tensor(indices, dtype=torch.int64)
    sources = indices.repeat_interleave(repeats)  # (N,)
    n = len(sources)
    gen = torch.Generator().manual_seed(or_default(seed))
    angle, zoom, shift = _pose(distortion, n, canvas, digit_size, gen)
    grid = _affine_grid(angle, zoom, shift, canvas, digit_size)  # (N, S, S, 2) in the source's coordinates
    if distortion == "P":
        grid = _projective(grid, gen)
    elif distortion == "E":
        grid = _elastic(grid, canvas, gen)
    out = F.grid_sample(images[sources], grid, align_corners=False)  # (N, 1, S, S)
    for _ in range(clutter):
        out = torch.maximum(out, _fragment(images, n, canvas, digit_size, fragment, gen))
    centres = (shift + 1) * canvas / 2  # (N, 2): normalised [-1, 1] -> pixels
    return DigitCanvases(out.clamp(0, 1).to(device=device, dtype=dtype or torch.get_default_dtype()),
                         labels[sources].to(device), sources.to(device), centres.to(device=device, dtype=dtype))


def _uniform(gen, n, low, high):
    return low + (high - low) * torch.rand(n, generator=gen, dtype=torch.float64)


def _pose(distortion, n, canvas, digit_size, gen):
    """Angle (rad), zoom and centre (normalised canvas coordinates) of each digit."""
    zero, one = torch.zeros(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64)
    angle, zoom = zero, one
    if distortion == "R":
        angle = _uniform(gen, n, -math.pi / 2, math.pi / 2)
    elif distortion == "RTS":
        angle, zoom = _uniform(gen, n, -math.pi / 4, math.pi / 4), _uniform(gen, n, 0.7, 1.2)
    if distortion in ("T", "RTS"):
        reach = 1 - digit_size * zoom * (math.sqrt(2) if distortion == "RTS" else 1) / canvas  # stay on the canvas
        reach = reach.clamp(min=0)
        shift = torch.stack([_uniform(gen, n, -1, 1) * reach, _uniform(gen, n, -1, 1) * reach], dim=-1)  # (N, 2)
    else:
        shift = torch.zeros(n, 2, dtype=torch.float64)
    return angle, zoom, shift


def _affine_grid(angle, zoom, shift, canvas, digit_size):
    """The sampling grid that draws each 8×8 digit, rotated by ``angle``, ``digit_size · zoom`` pixels wide,
    centred at ``shift``: canvas point p reads the digit at R(−angle)(p − shift) · canvas / (digit_size · zoom)."""
    factor = canvas / (digit_size * zoom)  # (N,)
    cos, sin = torch.cos(angle) * factor, torch.sin(angle) * factor
    linear = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # (N, 2, 2)
    offset = -(linear @ shift.unsqueeze(-1))  # (N, 2, 1)
    theta = torch.cat([linear, offset], dim=-1)  # (N, 2, 3)
    return F.affine_grid(theta, [len(angle), 1, canvas, canvas], align_corners=False)


def _projective(grid, gen, strength=0.12):
    """A homography of the grid: x' = (a x + b y + c) / (g x + h y + 1), g and h ~ N(0, strength²), plus a
    small affine jitter, centred, so the digit is seen from a tilted viewpoint."""
    n = grid.shape[0]
    x, y = grid[..., 0], grid[..., 1]  # (N, S, S) each
    g, h = (strength * torch.randn(2, n, 1, 1, generator=gen, dtype=torch.float64)).unbind(0)
    jitter = 1 + strength * torch.randn(4, n, 1, 1, generator=gen, dtype=torch.float64)
    w = g * x + h * y + 1
    return torch.stack([(jitter[0] * x + (jitter[1] - 1) * y) / w, ((jitter[2] - 1) * x + jitter[3] * y) / w], -1)


def _elastic(grid, canvas, gen, strength=0.3, smooth=4.0):
    """Add a random displacement field, smoothed by a Gaussian of ``smooth`` pixels (Simard et al. 2003)."""
    n = grid.shape[0]
    noise = torch.randn(n, 2, canvas, canvas, generator=gen, dtype=torch.float64)  # (N, 2, S, S)
    radius = int(3 * smooth)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-t**2 / (2 * smooth**2))
    kernel = kernel / kernel.sum()
    field = F.conv2d(noise.reshape(-1, 1, canvas, canvas), kernel.view(1, 1, 1, -1), padding=(0, radius))
    field = F.conv2d(field, kernel.view(1, 1, -1, 1), padding=(radius, 0)).view(n, 2, canvas, canvas)
    field = field / field.flatten(1).std(dim=1).view(n, 1, 1, 1)  # unit spread, then scaled
    return grid + strength * field.permute(0, 2, 3, 1)


def _fragment(images, n, canvas, digit_size, fragment, gen):
    """One fragment of a random other digit per canvas: a ``fragment``-pixel square window of it."""
    others = torch.randint(len(images), (n,), generator=gen)
    zero = torch.zeros(n, dtype=torch.float64)
    reach = 1 - digit_size / canvas
    shift = torch.stack([_uniform(gen, n, -1, 1) * reach, _uniform(gen, n, -1, 1) * reach], -1)
    drawn = F.grid_sample(images[others], _affine_grid(zero, zero + 1, shift, canvas, digit_size),
                          align_corners=False)  # (N, 1, S, S): the whole other digit
    spread = max(digit_size - fragment, 0) / 2
    jitter = torch.stack([_uniform(gen, n, -spread, spread), _uniform(gen, n, -spread, spread)], -1)  # (N, 2)
    centre = (shift + 1) * canvas / 2 + jitter  # (N, 2): a point on the other digit, in pixels
    corner = (centre - fragment / 2).round().long().clamp(0, canvas - fragment)  # (N, 2): the window on the digit
    pixels = torch.arange(canvas)
    inside_x = (pixels >= corner[:, :1]) & (pixels < corner[:, :1] + fragment)  # (N, S)
    inside_y = (pixels >= corner[:, 1:]) & (pixels < corner[:, 1:] + fragment)  # (N, S)
    window = (inside_y.unsqueeze(-1) & inside_x.unsqueeze(-2)).unsqueeze(1)  # (N, 1, S, S)
    return drawn * window
