"""Training: the one loop every chapter uses (:func:`fit`), evaluation mode (:func:`evaluating`), progress bars."""
from .loop import count_parameters, evaluating, fit
from .progress import show_progress

__all__ = ["fit", "evaluating", "count_parameters", "show_progress"]
