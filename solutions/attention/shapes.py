"""Broadcasting of shapes, without torch's symbolic-shape machinery.

The first call of ``torch.broadcast_shapes`` in a process imports ``torch.fx.experimental.symbolic_shapes``
and SymPy with it: about half a second in every fresh Python process (a learner's kernel, each graded
submission) for a rule NumPy applies directly: align the shapes on the right; sizes must agree or be 1.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def broadcast_shapes(*shapes: Sequence[int]) -> torch.Size:
    """The shape that tensors of ``shapes`` broadcast to, as ``torch.broadcast_shapes`` gives it.

    Raises ``RuntimeError`` (as torch does) when two sizes differ and neither is 1.
    """
    try:
        return torch.Size(np.broadcast_shapes(*(tuple(shape) for shape in shapes)))
    except ValueError:
        raise RuntimeError(f"shapes {', '.join(str(tuple(s)) for s in shapes)} do not broadcast") from None
