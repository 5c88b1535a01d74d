"""Time and peak extra memory of attention implementations against sequence length.

Used by ``benchmarks/attention.py`` (the full sweep, written to a CSV) and by the appendix (a short sweep
in a measured cell). One call of a method computes the attention of (B, H, T, D) queries, keys and values,
forward only unless ``backward=True``.

*Peak extra memory* is what the call needs above its inputs: on a GPU, ``torch.cuda.max_memory_allocated``
minus the memory allocated before the call; on the CPU, the process's peak resident memory during the call
(Linux's ``VmHWM``, reset just before by writing 5 to ``/proc/self/clear_refs``) minus its resident memory
just before the call. Where the reset is not allowed, a fresh process runs the call (its ``VmHWM`` starts
afresh at ``exec``). So that a freed block is given back to the system rather than silently reused, the
CPU measurement first fixes glibc's mmap threshold at 64 KiB (``mallopt``): every larger tensor then gets
pages of its own, and shows in the resident memory.
"""
from __future__ import annotations

import ctypes
import gc
import json
import math
import os
import platform
import subprocess
import sys
import time
from typing import Callable

import statistics

import torch
from tqdm.auto import tqdm

from ..attention import attention, masked_softmax
from ..train.clock import compute_clock
from ..train.progress import show_progress
from .chunked import chunked_attention
from .kernels import flex_sliding_window, sdpa
from .windowed import sliding_window_attention
from ..seeding import or_default

__all__ = ["METHODS", "QUADRATIC", "DEFAULT_WINDOW", "method", "inputs", "time_call", "peak_extra_memory",
           "time_function", "peak_extra_memory_of", "predicted_naive_bytes", "available_memory", "device_name",
           "sweep"]

DEFAULT_WINDOW = 256  # w of the sliding-window method


def _naive(q, k, v, **_):
    """softmax(Q Kᵀ / √d) V as the equation reads, with no checks and no masks."""
    weights = masked_softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]))  # (B, H, T, T)
    return weights @ v  # (B, H, T, D)


#: name → (description, function(q, k, v, window=...)); the SDPA backends that a device lacks fail at run time.
METHODS: dict[str, tuple[str, Callable]] = {
    "naive": ("softmax(QKᵀ/√d) V in three lines", _naive),
    "readable core": ("the course's attention(), weights returned", lambda q, k, v, **_: attention(q, k, v)[0]),
    "chunked": ("chunked_attention, memory-efficient", lambda q, k, v, **_: chunked_attention(q, k, v)),
    "windowed": ("sliding_window_attention, w = window",
                 lambda q, k, v, window=DEFAULT_WINDOW, **_: sliding_window_attention(q, k, v, window)),
    "SDPA": ("F.scaled_dot_product_attention, PyTorch's choice", lambda q, k, v, **_: sdpa(q, k, v)),
    "SDPA math": ("F.scaled_dot_product_attention, math backend", lambda q, k, v, **_: sdpa(q, k, v, "math")),
    "SDPA flash": ("F.scaled_dot_product_attention, flash backend", lambda q, k, v, **_: sdpa(q, k, v, "flash")),
    "SDPA efficient": ("F.scaled_dot_product_attention, memory-efficient backend",
                       lambda q, k, v, **_: sdpa(q, k, v, "efficient")),
    "flex windowed": ("flex_attention compiled with a sliding-window block mask",
                      lambda q, k, v, window=DEFAULT_WINDOW, **_: flex_sliding_window(q, k, v, window)),
}


#: The methods that hold (B, H, T, T) matrices.
QUADRATIC = {"naive", "readable core", "SDPA math"}


def method(name: str) -> Callable:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {list(METHODS)}")
    return METHODS[name][1]


def inputs(T: int, batch: int = 1, heads: int = 8, head_dim: int = 64, device="cpu", dtype=torch.float32,
           requires_grad: bool = False, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded standard-normal q, k, v of shape (B, H, T, D)."""
    gen = torch.Generator().manual_seed(or_default(seed))
    return tuple(torch.randn(batch, heads, T, head_dim, generator=gen).to(device=device, dtype=dtype)
                 .requires_grad_(requires_grad) for _ in range(3))


def _call(name: str, q, k, v, window: int, backward: bool) -> None:
    out = method(name)(q, k, v, window=window)
    if backward:
        out.sum().backward()


def time_call(name: str, q, k, v, *, window: int = DEFAULT_WINDOW, backward: bool = False,
              repeats: int = 3, clock: str = "wall") -> list[float]:
    """Seconds of ``repeats`` calls after one warm-up call (on a GPU, synchronised); one call when the warm-up
    took more than 10 s. ``clock``: ``"wall"`` (what a user waits) or ``"compute"`` (this process's CPU time on
    the CPU, see :func:`~solutions.train.compute_clock`: what a claim about relative speed should compare on a
    machine others share)."""
    def call() -> None:
        with torch.enable_grad() if backward else torch.no_grad():
            _call(name, q, k, v, window, backward)

    # a call of more than 10 s (the quadratic paths at T = 16,384) is timed once: its spread is small
    return _seconds(call, repeats, _clock(clock, q.device), once_after=10.0)


def _clock(kind: str, device: torch.device) -> Callable[[], float]:
    """The clock named ``kind`` ("wall" or "compute") for calls on ``device``; both synchronise a GPU."""
    if kind not in ("wall", "compute"):
        raise ValueError(f"clock must be 'wall' or 'compute', got {kind!r}")
    return compute_clock(device) if kind == "compute" or device.type == "cuda" else time.perf_counter


def _seconds(call: Callable[[], object], repeats: int, clock: Callable[[], float] = time.perf_counter,
             once_after: float = math.inf) -> list[float]:
    """Seconds of ``repeats`` calls after one warm-up call, read on ``clock``; one call only when the warm-up took
    more than ``once_after`` seconds."""
    def once() -> float:
        start = clock()
        call()
        return clock() - start

    if once() > once_after:
        repeats = 1
    return [once() for _ in range(repeats)]


def time_function(fn: Callable[[], object], repeats: int = 3, clock: str = "wall") -> list[float]:
    """Seconds of ``repeats`` calls of ``fn()`` on the CPU after one warm-up call, without gradients (any
    function: a layer of a chapter, where :func:`time_call` times the attention methods of :data:`METHODS`);
    ``clock`` as in :func:`time_call`."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")

    def call() -> None:
        with torch.no_grad():
            fn()

    return _seconds(call, repeats, _clock(clock, torch.device("cpu")))


def peak_extra_memory_of(fn: Callable[[], object]) -> int | None:
    """Bytes the CPU call ``fn()`` (without gradients) needs above the memory resident before it, at its peak,
    measured in this process as :func:`peak_extra_memory` does; None where Linux does not let a process reset
    its peak resident memory (there a fresh process would be needed, which an arbitrary function cannot be
    sent to). Call ``fn`` once before, so that the code of its kernels is not counted."""
    if not _reset_peak_resident():
        return None
    return _resident_peak(fn)


def device_name(device) -> str:
    """The GPU's name, or the CPU's model name from /proc/cpuinfo (the architecture where that is missing)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def predicted_naive_bytes(T: int, batch: int = 1, heads: int = 8, element_bytes: int = 4,
                          backward: bool = False) -> int:
    """What the naive path holds at its peak: two (B, H, T, T) matrices (four with the backward pass)."""
    return (4 if backward else 2) * batch * heads * T * T * element_bytes


def available_memory() -> int:
    """Bytes the kernel reports as available (MemAvailable), or 0 when unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def peak_extra_memory(name: str, T: int, *, batch: int = 1, heads: int = 8, head_dim: int = 64,
                      window: int = DEFAULT_WINDOW, backward: bool = False, device="cpu",
                      dtype=torch.float32) -> int:
    """Bytes the call needs above its inputs at its peak (see the module docstring for how)."""
    spec = dict(name=name, T=T, batch=batch, heads=heads, head_dim=head_dim, window=window, backward=backward,
                dtype=str(dtype).removeprefix("torch."))
    if torch.device(device).type == "cuda":
        return _cuda_peak(spec, torch.device(device))
    if _reset_peak_resident():
        return _cpu_peak(spec)
    done = subprocess.run([sys.executable, "-m", "solutions.fast.measure", json.dumps(spec)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"measuring {name} at T={T} failed:\n{done.stderr[-2000:]}")
    return int(done.stdout.split()[-1])


def _cuda_peak(spec: dict, device: torch.device) -> int:
    q, k, v = inputs(spec["T"], spec["batch"], spec["heads"], spec["head_dim"], device,
                     getattr(torch, spec["dtype"]), spec["backward"])
    gc.collect()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    with torch.enable_grad() if spec["backward"] else torch.no_grad():
        _call(spec["name"], q, k, v, spec["window"], spec["backward"])
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def _memory_status(field: str) -> int:
    """A field of /proc/self/status (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak_resident() -> bool:
    """Set the peak resident memory (VmHWM) to the current one; False where Linux does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _fixed_mmap_threshold(size: int = 64 * 1024, trim: bool = True) -> None:
    """Blocks above ``size`` bytes are mapped and unmapped on their own (glibc's M_MMAP_THRESHOLD = −3, with
    M_TRIM_THRESHOLD = −1 at twice that, as glibc's own adjustment keeps them), and with ``trim`` the free
    memory already in the heap goes back to the system (``malloc_trim``), so that a block the call reuses
    from it is counted when it is touched again."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, size)
        libc.mallopt(-1, 2 * size)
        if trim:
            libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: measure as the allocator allows
        pass


def _cpu_peak(spec: dict) -> int:
    q, k, v = inputs(spec["T"], spec["batch"], spec["heads"], spec["head_dim"], "cpu",
                     getattr(torch, spec["dtype"]), spec["backward"])
    _call(spec["name"], *inputs(64, 1, 1, spec["head_dim"], requires_grad=spec["backward"]), spec["window"],
          spec["backward"])  # load every kernel first, so that its code is not counted
    return _resident_peak(lambda: _call(spec["name"], q, k, v, spec["window"], spec["backward"]), spec["backward"])


def _resident_peak(call: Callable[[], object], grad: bool = False) -> int:
    """Bytes ``call()`` needs above the memory resident before it, at its peak (Linux's VmHWM, reset first
    where the kernel allows; in a fresh process the peak so far is the start-up's, below the call's)."""
    gc.collect()
    _fixed_mmap_threshold()
    _reset_peak_resident()
    before = _memory_status("VmRSS")
    with torch.enable_grad() if grad else torch.no_grad():
        call()
    peak = _memory_status("VmHWM") - before
    _fixed_mmap_threshold(32 * 2**20, trim=False)  # back to where glibc's own adjustment ends: fast reuse
    return max(0, peak)


def sweep(names: list[str], lengths: list[int], *, batch: int = 1, heads: int = 8, head_dim: int = 64,
          window: int = DEFAULT_WINDOW, repeats: int = 3, device="cpu", dtype=torch.float32,
          memory: bool = True, memory_fraction: float = 0.8, progress: bool | None = None,
          clock: str = "wall") -> list[dict]:
    """Time (median and minimum of ``repeats``, on ``clock``: see :func:`time_call`) and peak extra memory of
    each method at each length, one dict per pair.

    Every timing comes first and every memory measurement after, so that the way memory is measured (see
    the module docstring) never slows a timed call. A quadratic method whose predicted peak exceeds
    ``memory_fraction`` of the free memory is skipped, and a method this device cannot run (an SDPA backend
    it lacks) is recorded as failed; both say so in "note".
    """
    device = torch.device(device)
    free = available_memory() if device.type == "cpu" else torch.cuda.mem_get_info(device)[0]
    rows = [dict(method=name, T=T, seconds=None, seconds_min=None, repeats=0, peak_extra_bytes=None, note="")
            for T in lengths for name in names]
    for row in rows:
        need = predicted_naive_bytes(row["T"], batch, heads, dtype.itemsize)
        if row["method"] in QUADRATIC and need > memory_fraction * free:
            row["note"] = f"skipped: needs about {need / 2**30:.1f} GiB"
    steps = len(rows) * (2 if memory else 1)
    with tqdm(total=steps, desc="attention", disable=not show_progress(progress)) as bar:
        for T in lengths:
            q, k, v = inputs(T, batch, heads, head_dim, device, dtype)
            for row in (r for r in rows if r["T"] == T):
                bar.set_postfix_str(f"time T={T} {row['method']}")
                if not row["note"]:
                    try:
                        times = time_call(row["method"], q, k, v, window=window, repeats=repeats, clock=clock)
                        row.update(seconds=statistics.median(times), seconds_min=min(times), repeats=len(times))
                    except RuntimeError as error:  # e.g. a backend this device does not have
                        row["note"] = f"failed: {str(error).splitlines()[0][:120]}"
                bar.update()
        del q, k, v
        for row in rows if memory else ():
            bar.set_postfix_str(f"memory T={row['T']} {row['method']}")
            if not row["note"]:
                row["peak_extra_bytes"] = peak_extra_memory(row["method"], row["T"], batch=batch, heads=heads,
                                                            head_dim=head_dim, window=window, device=device,
                                                            dtype=dtype)
            bar.update()
    return rows


if __name__ == "__main__":  # a fresh process measuring one call: python -m solutions.fast.measure '{spec}'
    print(_cpu_peak(json.loads(sys.argv[1])))
