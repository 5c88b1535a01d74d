"""Training: the one loop every chapter uses (:func:`fit`) with optional early stopping (:class:`EarlyStopping`),
the recipe of fresh data every epoch with a one-cycle schedule (:func:`fit_one_cycle`), evaluation mode
(:func:`evaluating`), progress bars, and a clock of compute seconds that a busy machine does not inflate
(:func:`compute_clock`)."""
from .clock import compute_clock, elapsed
from .loop import EarlyStopping, count_parameters, evaluating, fit
from .pool import fit_one_cycle
from .progress import show_progress

__all__ = ["fit", "fit_one_cycle", "EarlyStopping", "evaluating", "count_parameters", "show_progress", "compute_clock",
           "elapsed"]
