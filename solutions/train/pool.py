"""Training on a pool of fresh data sets, one per epoch: shuffled batches, Adam, a one-cycle schedule.

The chapters on attention by region, by differentiability and beyond sequences draw new canvases (new
placements, new clutter, new distortions of the same digits) for every epoch, so that a model cannot learn
one placement by heart. :func:`fit_one_cycle` is that recipe around :func:`~solutions.train.fit`:

* epoch ``e`` (from 1) reads ``pool[e - 1]``, an object with ``images`` (N, ...) and ``labels`` (N,), in
  batches of ``batch_size`` shuffled by one generator seeded with ``seed`` (the same generator for every
  epoch, so the order depends on the seed alone);
* Adam, its learning rate following a one-cycle schedule (Smith & Topin 2017, arXiv:1708.07120) over all
  the steps of all the epochs, peaking at ``lr`` (per parameter group when ``param_groups`` are given).

Library code never seeds the global random state: the caller seeds the model's initialisation.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .loop import LossFn, fit
from ..seeding import or_default

__all__ = ["fit_one_cycle"]


def fit_one_cycle(model: nn.Module, pool: Sequence[Any], loss: LossFn, *, lr: float = 3e-3, seed: int | None = None,
                  batch_size: int = 32, param_groups: list[dict] | None = None,
                  after_epoch: Callable[[int], dict[str, float]] | None = None, progress: bool | None = None,
                  desc: str = "training") -> list[dict[str, float]]:
    """Train ``model`` for ``len(pool)`` epochs, one data set of ``pool`` per epoch; return :func:`fit`'s records.

    Args:
        model: the model; ``loss(model, (images, labels))`` gives the loss of a batch (as for :func:`fit`).
        pool: the data set of each epoch, each with ``images`` and ``labels`` of the same length N.
        lr: the peak learning rate of the one-cycle schedule (of every parameter, unless ``param_groups``).
        seed: seeds the generator that orders the batches.
        batch_size: examples per batch (the last batch of an epoch may be smaller).
        param_groups: Adam's parameter groups, each with its own peak ``"lr"``; default: every parameter of
            ``model`` at ``lr``.
        after_epoch: passed to :func:`fit` (e.g. a test accuracy after every epoch).
        progress, desc: whether to draw the progress bar (see :func:`fit`), and its label.
    """
    if not pool:
        raise ValueError("the pool holds no data set: one per epoch is needed")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    groups = [{"params": list(model.parameters()), "lr": lr}] if param_groups is None else param_groups
    optimizer = torch.optim.Adam(groups)
    steps = sum(math.ceil(len(data.labels) / batch_size) for data in pool)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                                    total_steps=steps)
    order = torch.Generator().manual_seed(or_default(seed))

    def batches(epoch: int):
        data = pool[epoch - 1]
        for index in torch.randperm(len(data.labels), generator=order).split(batch_size):
            index = index.to(data.images.device)
            yield data.images[index], data.labels[index]

    return fit(model, batches, loss, optimizer, epochs=len(pool), scheduler=scheduler,
               steps_per_epoch=steps // len(pool), after_epoch=after_epoch, progress=progress, desc=desc)
