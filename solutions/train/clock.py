"""Seconds of compute that a busy machine does not inflate.

A wall-clock time counts every moment another process holds the core, so on a shared machine the same work
"takes" twice as long when a neighbour is busy, and a comparison of two things timed one after the other
says more about the neighbour than about them. :func:`compute_clock` counts what this process itself
computed instead: on the CPU, its CPU time (user + system, summed over its threads; with one torch thread, as
the chapters run, that is the wall-clock time a quiet machine would show); on a GPU, the wall-clock time
between synchronisations, since a GPU is not shared that way and its kernels do not run on this process's
CPU time.
"""
from __future__ import annotations

import time
from typing import Callable

import torch

__all__ = ["compute_clock", "elapsed"]


def compute_clock(device: torch.device | str | None = None) -> Callable[[], float]:
    """A function returning seconds, whose differences are the compute spent on ``device`` (the CPU when None)."""
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda":
        def gpu_clock() -> float:
            torch.cuda.synchronize(device)
            return time.perf_counter()
        return gpu_clock
    return time.process_time


def elapsed(call: Callable[[], object], device: torch.device | str | None = None) -> float:
    """Compute seconds of one ``call()`` on ``device``, measured with :func:`compute_clock`."""
    clock = compute_clock(device)
    start = clock()
    call()
    return clock() - start
