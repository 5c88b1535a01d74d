"""The course's one source of seeds.

Every seed a chapter, an instructor notebook, a benchmark or a default of ``solutions`` uses comes from here:
the seed numbered ``n`` is ``n + offset``, where the offset is read from the environment variable
``COURSE_SEED_OFFSET`` each time a seed is asked for (0 when it is unset, so the stored outputs are those of
seeds 0, 1, 2 …). ``make test-seeds OFFSET=k`` re-runs every chapter with another offset, so that nothing the
book concludes rests on seeds somebody chose. Offsets that are multiples of 1,000 give disjoint sets of seeds.

Functions of ``solutions`` that draw random numbers take a ``seed`` argument; called without one, they use
:func:`seed` ``(0)``, so the offset reaches them too. Library code never seeds the global random state: a
chapter calls :func:`manual_seed` before it builds and trains a model.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["OFFSET_VARIABLE", "offset", "seed", "seeds", "generator", "manual_seed", "or_default"]

OFFSET_VARIABLE = "COURSE_SEED_OFFSET"


def offset() -> int:
    """The offset added to every seed: the integer in ``COURSE_SEED_OFFSET``, 0 when it is unset or empty."""
    text = os.environ.get(OFFSET_VARIABLE, "").strip()
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{OFFSET_VARIABLE} must be a whole number such as 1000, got {text!r}") from None
    if value < 0:
        raise ValueError(f"{OFFSET_VARIABLE} must be 0 or more, got {value}")
    return value


def seed(n: int = 0) -> int:
    """The seed numbered ``n``: ``n`` plus the offset."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"a seed number is a whole number >= 0, got {n!r}")
    return n + offset()


def seeds(count: int, start: int = 0) -> tuple[int, ...]:
    """``count`` seeds, numbered ``start``, ``start + 1``, … (e.g. one per training run)."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    return tuple(seed(start + i) for i in range(count))


def generator(n: int = 0) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`seed` ``(n)``; draw on the CPU and move the result, so that
    every device sees the same numbers."""
    return torch.Generator().manual_seed(seed(n))


def manual_seed(n: int = 0) -> int:
    """Seed the global random state of torch (every device), Python's ``random`` and NumPy with
    :func:`seed` ``(n)``, and return that seed: what a chapter calls before it builds and trains a model."""
    value = seed(n)
    torch.manual_seed(value)
    random.seed(value)
    np.random.seed(value)
    return value


def or_default(value: int | None) -> int:
    """``value`` when a caller gave a seed, else :func:`seed` ``(0)``: the default of a ``seed=None`` argument."""
    return seed(0) if value is None else value
