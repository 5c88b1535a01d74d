"""Whether long loops draw a progress bar.

In JupyterLab a training cell shows a tqdm bar. When the notebooks are executed to store their
outputs (`make execute`) or re-run to check them (`make test`), the Makefile sets
``COURSE_PROGRESS=0`` and no bar is drawn, so what the book shows is the cell's real output.
"""
import os

__all__ = ["show_progress"]


def show_progress(progress: bool | None = None) -> bool:
    """``progress`` when given; otherwise True unless the environment sets ``COURSE_PROGRESS=0``."""
    if progress is not None:
        return bool(progress)
    return os.environ.get("COURSE_PROGRESS", "1") != "0"
