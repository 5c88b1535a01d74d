"""The course's one training loop, and a context manager for evaluation.

Every model of the course trains through :func:`fit`: a chapter supplies the batches, a function that
returns the loss of one batch, and an optimizer; :func:`fit` does the rest (training mode, gradient
clipping, the learning-rate schedule, a progress bar, one record per epoch, and optionally early stopping on a
validation number with :class:`EarlyStopping`). Library code never seeds the global random state: a chapter seeds
it (``torch.manual_seed``) before it builds and trains a model.
"""
from __future__ import annotations

import copy
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from .progress import show_progress

__all__ = ["fit", "EarlyStopping", "evaluating", "count_parameters"]

Batches = Callable[[int], Iterable[Any]] | Iterable[Any]
LossFn = Callable[[nn.Module, Any], "torch.Tensor | tuple[torch.Tensor, dict[str, float]]"]


@dataclass(frozen=True)
class EarlyStopping:
    """Stop :func:`fit` when ``monitor`` has not improved for ``patience`` epochs, and keep the best weights.

    ``monitor`` names a number of the epoch's record, normally one that ``after_epoch`` returns (e.g. a
    validation loss). An epoch improves on the best so far when its value is lower by more than ``min_delta``
    (``mode="min"``) or higher by more than ``min_delta`` (``mode="max"``). With ``restore_best`` the model
    gets back the weights of its best epoch when training ends, stopped early or not. With ``enough =
    (key, value)`` training also ends at once after a best epoch whose ``record[key]`` reaches ``value``
    (e.g. a perfect validation exact match while the loss is monitored: nothing is left to gain).
    """

    monitor: str = "valid_loss"  # the record's key to watch
    patience: int = 3  # epochs without improvement before stopping
    mode: str = "min"  # "min" (a loss) or "max" (an accuracy)
    min_delta: float = 0.0  # an improvement must exceed this
    restore_best: bool = True  # load the best epoch's weights at the end
    enough: tuple[str, float] | None = None  # (key, value): a best epoch whose record reaches it ends training

    def reached(self, record: dict[str, float]) -> bool:
        """Whether ``record`` (a best epoch's) is good enough to end training."""
        return self.enough is not None and float(record[self.enough[0]]) >= self.enough[1]

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {self.mode!r}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        if self.min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {self.min_delta}")

    def improves(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``with evaluating(model):`` — evaluation mode (no dropout) and no gradients; the mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def fit(model: nn.Module, batches: Batches, loss: LossFn, optimizer: torch.optim.Optimizer, *,
        epochs: int = 1, scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        clip: float | None = None, after_epoch: Callable[[int], dict[str, float]] | None = None,
        steps_per_epoch: int | None = None, progress: bool | None = None,
        early_stopping: EarlyStopping | None = None, desc: str = "training") -> list[dict[str, float]]:
    """Minimise ``loss`` over ``epochs`` passes through the batches; one record per epoch.

    Args:
        model: put in training mode at the start of every epoch.
        batches: the batches of one epoch: a re-iterable (a list), or a function ``epoch -> iterable``
            (epochs count from 1) that can reshuffle or draw new batches every epoch.
        loss: ``loss(model, batch)`` returns the scalar loss of the batch, or ``(loss, extras)`` with a
            dict of numbers to average over the epoch as well; ``extras["size"]``, if present, weighs the
            batch in every average (e.g. its number of examples; default 1).
        optimizer: stepped after every batch (gradients zeroed first, clipped to norm ``clip`` if given).
        scheduler: stepped after every optimizer step.
        after_epoch: ``after_epoch(epoch) -> dict`` of extra numbers for the epoch's record, e.g. a
            validation score (training mode is restored afterwards).
        steps_per_epoch: the number of batches per epoch, for the progress bar (``len(batches)`` by default).
        progress: draw a tqdm bar; by default unless the environment sets ``COURSE_PROGRESS=0``.
        early_stopping: stop before ``epochs`` (then a maximum) when the record's ``early_stopping.monitor``
            stops improving, and restore the best epoch's weights (see :class:`EarlyStopping`).

    Returns:
        ``[{"epoch": e, "loss": mean loss, **mean extras, **after_epoch(e)}]``: weighted means over the epoch,
        one record per epoch run (fewer than ``epochs`` when training stopped early).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if steps_per_epoch is None and not callable(batches):
        steps_per_epoch = len(batches) if hasattr(batches, "__len__") else None
    total = None if steps_per_epoch is None else epochs * steps_per_epoch
    history = []
    best, best_epoch, best_state = None, 0, None
    with tqdm(total=total, disable=not show_progress(progress), desc=desc, leave=False) as bar:
        for epoch in range(1, epochs + 1):
            model.train()
            sums: dict[str, float] = defaultdict(float)
            count = 0.0
            for batch in (batches(epoch) if callable(batches) else batches):
                value, extras = _split(loss(model, batch))
                optimizer.zero_grad()
                value.backward()
                if clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), clip)
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                size = float(extras.pop("size", 1.0))
                sums["loss"] += value.item() * size
                for name, number in extras.items():
                    sums[name] += float(number) * size
                count += size
                bar.update()
            if count == 0:
                raise ValueError(f"epoch {epoch} had no batches: are the training data empty?")
            record = {"epoch": epoch, **{name: total_ / count for name, total_ in sums.items()}}
            if after_epoch is not None:
                record.update(after_epoch(epoch))
                model.train()
            bar.set_postfix(loss=f"{record['loss']:.3f}")
            history.append(record)
            if early_stopping is not None:
                if early_stopping.monitor not in record:
                    raise ValueError(f"early stopping monitors {early_stopping.monitor!r}, but the epoch's record has "
                                     f"only {sorted(record)}: return it from after_epoch")
                value = float(record[early_stopping.monitor])
                if early_stopping.improves(value, best):
                    best, best_epoch = value, epoch
                    if early_stopping.restore_best:
                        best_state = copy.deepcopy(model.state_dict())
                    if early_stopping.reached(record):
                        break
                elif epoch - best_epoch >= early_stopping.patience:
                    break
    if best_state is not None and best_epoch != history[-1]["epoch"]:
        model.load_state_dict(best_state)
    return history


def _split(result) -> tuple[torch.Tensor, dict[str, float]]:
    if isinstance(result, tuple):
        value, extras = result
        return value, dict(extras)
    return result, {}


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
