"""Time the course's readable attention path, its fused switch, and PyTorch's own kernel.

    .venv/bin/python benchmarks/attention_paths.py                 # B=1, H=8, Dh=64, T=1024 and 4096
    .venv/bin/python benchmarks/attention_paths.py --lengths 512 2048 --threads 1 --backward

The readable path (``attention(..., fused=False)``) builds the (T, T) score and weight matrices; the fused
path hands the same computation to ``F.scaled_dot_product_attention``; the third row calls that kernel
directly, so the fused path's overhead is the difference between the last two. Prints the median of
``--repeats`` runs (after one warm-up) per length, and each path's time relative to PyTorch's kernel.
Runs on the GPU when there is one (``--device cpu`` to force the CPU).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from solutions import seeding
from solutions.attention import attention
from solutions.devices import default_device

PATHS = {
    "readable": lambda q, k, v: attention(q, k, v)[0],
    "fused": lambda q, k, v: attention(q, k, v, fused=True)[0],
    "F.scaled_dot_product_attention": lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
}


def _time(fn, q, k, v, backward: bool, repeats: int, device: torch.device) -> float:
    def once() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn(q, k, v)
        if backward:
            out.sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    once()  # warm-up
    return statistics.median(once() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads on the CPU (default: torch's)")
    parser.add_argument("--backward", action="store_true", help="time forward + backward")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else default_device()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {where}; B={args.batch}, H={args.heads}, Dh={args.head_dim}, "
          f"{'forward + backward' if args.backward else 'forward'}, median of {args.repeats}")
    rows = []
    with tqdm(total=len(args.lengths) * len(PATHS), desc="timing", leave=False) as bar:
        for T in args.lengths:
            gen = seeding.generator(0)
            q, k, v = (torch.randn(args.batch, args.heads, T, args.head_dim, generator=gen).to(device)
                       .requires_grad_(args.backward) for _ in range(3))
            times = {}
            for name, fn in PATHS.items():
                times[name] = _time(fn, q, k, v, args.backward, args.repeats, device)
                bar.update()
            rows += [(T, name, seconds, seconds / times["F.scaled_dot_product_attention"])
                     for name, seconds in times.items()]
    print(f"{'T':>6}  {'path':<32} {'ms':>10}  {'× SDPA':>7}")
    for T, name, seconds, ratio in rows:
        print(f"{T:>6}  {name:<32} {seconds * 1e3:>10.1f}  {ratio:>7.2f}")


if __name__ == "__main__":
    main()
