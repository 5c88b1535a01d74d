"""Training: the one loop every chapter uses (:func:`fit`) with optional early stopping (:class:`EarlyStopping`),
evaluation mode (:func:`evaluating`), progress bars."""
from .loop import EarlyStopping, count_parameters, evaluating, fit
from .progress import show_progress

__all__ = ["fit", "EarlyStopping", "evaluating", "count_parameters", "show_progress"]
