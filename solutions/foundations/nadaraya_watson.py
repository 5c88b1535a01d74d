"""Attention pooling as kernel regression: the Nadaraya–Watson estimator.

Nadaraya (1964) and Watson (1964) independently proposed to estimate a regression function from
pairs ``(x_i, y_i)`` by a weighted average of the observed outputs, the weights coming from a kernel
``K`` that measures how close each training input is to the point ``x`` we ask about:

    f(x) = sum_i K((x - x_i) / sigma) y_i / sum_j K((x - x_j) / sigma)            (NW)

In the language of attention (Zhang et al., *Dive into Deep Learning*, Section 11.2,
arXiv:2106.11342) the point ``x`` is a **query**, the training inputs ``x_i`` are **keys**, the
training outputs ``y_i`` are **values**, and the normalised kernel values are **attention weights**
that sum to one over the keys. With the Gaussian kernel ``K(u) ∝ exp(-u^2 / 2)`` the weights are a
softmax over negative squared distances,

    alpha(x, x_i) = softmax_i( -(x - x_i)^2 / (2 sigma^2) ),                         (G)

which is how this module computes them: the softmax subtracts the row maximum before
exponentiating, so no sum of tiny kernel values is ever divided by.

The two 1964 papers predate arXiv and number no equation for the estimator; (NW) and (G) are the
labels used in chapter 1 of the course.

Shape letters used throughout:
    ...  any leading (batch) dimensions, broadcast between queries, keys and values
    Tq   number of queries (points where we predict)
    Tk   number of keys (training inputs) and of values (training outputs)
    Dv   value dimension, for vector-valued outputs
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import masked_softmax, weighted_sum
from ..attention.shapes import broadcast_shapes
from ..train import fit

__all__ = [
    "gaussian_kernel_weights",
    "nadaraya_watson",
    "LearnedKernelRegression",
    "leave_one_out_mask",
    "fit_kernel_regression",
]


def _check_bandwidth(bandwidth: float | torch.Tensor) -> None:
    """Raise a ValueError unless every bandwidth is strictly positive."""
    if isinstance(bandwidth, torch.Tensor):
        if not bool((bandwidth > 0).all()):
            raise ValueError(f"bandwidth must be > 0, got {bandwidth.detach().cpu().tolist()}")
    elif not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth!r}")


def gaussian_kernel_weights(
    queries: torch.Tensor,
    keys: torch.Tensor,
    bandwidth: float | torch.Tensor = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Nadaraya–Watson attention weights with a Gaussian kernel, eq. (G).

    The estimator of Nadaraya (1964) and Watson (1964) predicts

        f(x) = sum_i K((x - x_i) / sigma) y_i / sum_j K((x - x_j) / sigma),

    and with ``K(u) ∝ exp(-u^2 / 2)`` the normalised kernel values are

        alpha(x, x_i) = softmax_i( -(x - x_i)^2 / (2 sigma^2) ).

    Args:
        queries: (..., Tq) scalar inputs ``x`` at which to predict.
        keys: (..., Tk) scalar training inputs ``x_i``. Leading dimensions broadcast with ``queries``.
        bandwidth: the kernel width ``sigma > 0``; a float or a tensor that broadcasts against
            (..., Tq, Tk), usually 0-d (so it can be a learned parameter).
        mask: optional bool tensor broadcastable to (..., Tq, Tk), e.g. (Tk,) or (Tq, Tk);
            True = this query may attend to this key. Masked keys get weight 0, and a query with every
            key masked gets all-zero weights (it attends to nothing), as everywhere in the course
            (:func:`solutions.attention.masking.masked_softmax`).

    Returns:
        weights: (..., Tq, Tk), positive (unmasked) and summing to 1 over the kept keys.
    """
    if queries.dim() < 1 or keys.dim() < 1:
        raise ValueError(
            f"queries and keys need a position dimension, got shapes {tuple(queries.shape)} and {tuple(keys.shape)}"
        )
    if not (queries.is_floating_point() and keys.is_floating_point()):
        raise ValueError(f"queries and keys must be floating point, got {queries.dtype} and {keys.dtype}")
    try:
        broadcast_shapes(queries.shape[:-1], keys.shape[:-1])
    except RuntimeError:
        raise ValueError(
            f"leading dimensions of queries {tuple(queries.shape)} and keys {tuple(keys.shape)} do not broadcast"
        ) from None
    _check_bandwidth(bandwidth)

    diff = queries.unsqueeze(-1) - keys.unsqueeze(-2)  # (..., Tq, Tk)
    scores = -diff.pow(2) / (2 * bandwidth**2)  # (..., Tq, Tk)
    return masked_softmax(scores, mask)  # (..., Tq, Tk), the course's one masked softmax


def nadaraya_watson(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    bandwidth: float | torch.Tensor = 1.0,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nadaraya–Watson kernel regression (attention pooling), eq. (NW) with a Gaussian kernel.

        f(x) = sum_i alpha(x, x_i) y_i,   alpha(x, x_i) = softmax_i( -(x - x_i)^2 / (2 sigma^2) )

    Args:
        queries: (..., Tq) points at which to predict.
        keys: (..., Tk) training inputs.
        values: (..., Tk) scalar training outputs, or (..., Tk, Dv) vector outputs: values have as
            many dimensions as keys (scalars) or one more (vectors).
        bandwidth: ``sigma > 0``, a float or a tensor (see `gaussian_kernel_weights`).
        mask: optional bool mask, True = may attend (see `gaussian_kernel_weights`).

    Returns:
        predictions: (..., Tq) for scalar values, (..., Tq, Dv) for vector values.
        weights: (..., Tq, Tk) the attention weights used.
    """
    if values.dim() == keys.dim():
        vector_values = False
        tk_values = values.shape[-1]
    elif values.dim() == keys.dim() + 1:
        vector_values = True
        tk_values = values.shape[-2]
    else:
        raise ValueError(
            f"values must have as many dimensions as keys (scalar values) or one more (vector values); "
            f"got keys {tuple(keys.shape)} and values {tuple(values.shape)}"
        )
    if tk_values != keys.shape[-1]:
        raise ValueError(
            f"keys have {keys.shape[-1]} positions but values have {tk_values} "
            f"(keys {tuple(keys.shape)}, values {tuple(values.shape)})"
        )
    weights = gaussian_kernel_weights(queries, keys, bandwidth, mask)  # (..., Tq, Tk)
    if vector_values:
        predictions = weighted_sum(weights, values)  # (..., Tq, Dv)
    else:
        predictions = weighted_sum(weights, values.unsqueeze(-1)).squeeze(-1)  # (..., Tq, 1) -> (..., Tq)
    return predictions, weights


class LearnedKernelRegression(nn.Module):
    """Gaussian-kernel Nadaraya–Watson regression with a learnable bandwidth.

    The bandwidth is stored as its logarithm, ``sigma = exp(log_bandwidth)``, so gradient steps can
    never make it zero or negative:

        f(x) = sum_i softmax_i( -(x - x_i)^2 / (2 exp(2 s)) ) y_i,   s = log_bandwidth.

    Args:
        bandwidth: the initial ``sigma > 0``.
    """

    def __init__(self, bandwidth: float = 1.0) -> None:
        super().__init__()
        _check_bandwidth(bandwidth)
        self.log_bandwidth = nn.Parameter(torch.tensor(math.log(bandwidth)))

    @property
    def bandwidth(self) -> torch.Tensor:
        """The current bandwidth ``sigma = exp(log_bandwidth)`` (a 0-d tensor, differentiable)."""
        return self.log_bandwidth.exp()

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions (..., Tq) or (..., Tq, Dv) and weights (..., Tq, Tk); see `nadaraya_watson`."""
        return nadaraya_watson(queries, keys, values, self.bandwidth, mask)

    def extra_repr(self) -> str:
        return f"bandwidth={self.bandwidth.item():.4g}"


def leave_one_out_mask(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """A (n, n) bool mask that is False on the diagonal: training point k may not be its own key.

    Why it is needed: if we train the bandwidth by predicting each training output ``y_k`` with
    every training pair as a key, *including* ``(x_k, y_k)`` itself, then shrinking ``sigma``
    towards 0 puts all of query ``x_k``'s weight on its own key and predicts ``y_k`` exactly. The
    training loss then falls to zero as ``sigma -> 0``: the model memorises the noisy targets and
    interpolates badly between them. Leaving each point out of its own keys (leave-one-out
    cross-validation, the classical way to choose a kernel bandwidth) forces every prediction to
    come from the *neighbours*, so the loss has a minimum at a useful, non-zero bandwidth.

    Args:
        n: number of training points (at least 2, so every query keeps one key).
        device: where to create the mask.

    Returns:
        mask: (n, n) bool, ``mask[q, k]`` True when query q may attend to key k, i.e. ``q != k``.
    """
    if n < 2:
        raise ValueError(f"leave-one-out needs at least 2 points, got n={n}")
    return ~torch.eye(n, dtype=torch.bool, device=device)  # (n, n)


def fit_kernel_regression(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    epochs: int = 200,
    lr: float = 0.05,
    progress: bool | None = None,
) -> list[float]:
    """Train a kernel regression model by full-batch Adam on the leave-one-out squared error.

    Every training input is a query whose keys/values are all *other* training pairs
    (`leave_one_out_mask`), and the loss is

        L = mean_k ( y_k - sum_{i != k} alpha(x_k, x_i) y_i )^2 .

    There is no randomness (full batch, fixed order), so the result is deterministic.

    Args:
        model: called as ``model(queries, keys, values, mask=...) -> (predictions, weights)``,
            e.g. `LearnedKernelRegression`; it should already be on the data's device.
        x_train: (..., n) training inputs.
        y_train: (..., n) or (..., n, Dv) training outputs.
        epochs: number of full-batch steps.
        lr: Adam learning rate.
        progress: show a tqdm progress bar (by default unless ``COURSE_PROGRESS=0``, see :mod:`solutions.train`).

    Returns:
        The training loss of each epoch, measured before that epoch's step.
    """
    if x_train.dim() < 1:
        raise ValueError(f"x_train needs a position dimension, got shape {tuple(x_train.shape)}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    n = x_train.shape[-1]
    mask = leave_one_out_mask(n, device=x_train.device)  # (n, n)

    def loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        predictions, _ = model(x, x, y, mask=mask)  # every training point predicted from the others
        return F.mse_loss(predictions, y)

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = fit(model, [(x_train, y_train)], loss, optimizer, epochs=epochs, progress=progress, desc="fitting")
    losses = [record["loss"] for record in history]
    return losses
