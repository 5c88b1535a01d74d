"""Time and peak extra memory of attention against sequence length: naive, the readable core, chunked
(memory-efficient), sliding-window and PyTorch's SDPA, written to a CSV that the appendix plots.

    .venv/bin/python benchmarks/attention.py                      # CPU, 1 thread, T = 256 … 16,384
    .venv/bin/python benchmarks/attention.py --lengths 256 1024 --repeats 1 --out /tmp/quick.csv
    .venv/bin/python benchmarks/attention.py --device cuda --dtype bfloat16     # on a GPU

B=1, H=8, D=64, float32 and forward only by default; the median of ``--repeats`` calls after a warm-up.
Memory is measured as described in :mod:`solutions.fast.measure`. A path whose predicted peak (two
(B, H, T, T) matrices for naive and the readable core) exceeds ``--memory-fraction`` of the available
memory is skipped and recorded as such. The CSV names the device. At the end the script prints the
appendix's targets and exits with status 1 when one is missed:

- chunked: peak extra memory at the longest T ≤ 1/20 of naive's; time at T=4,096 ≤ 1.3 × SDPA's (CPU);
- windowed (w = 256): time(T=16,384) / time(T=4,096) ≤ 4.5 (linear); full attention is ≈ 16;
- on a GPU: chunked within 3 × SDPA's flash backend at T=8,192.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch

from solutions.fast.measure import DEFAULT_WINDOW, METHODS, device_name, predicted_naive_bytes, sweep

HERE = Path(__file__).resolve().parent
CPU_METHODS = ["naive", "readable core", "chunked", "windowed", "SDPA"]
GPU_METHODS = ["naive", "chunked", "windowed", "SDPA", "SDPA flash", "SDPA efficient", "SDPA math"]
FIELDS = ["device", "device_name", "torch", "threads", "dtype", "method", "T", "B", "H", "D", "window",
          "seconds", "seconds_min", "repeats", "peak_extra_bytes", "note"]


def value(rows: list[dict], name: str, T: int, field: str) -> float | None:
    for row in rows:
        if row["method"] == name and row["T"] == T and row[field] not in ("", None):
            return float(row[field])
    return None


def targets(rows: list[dict], device: torch.device) -> list[tuple[str, float | None, float, bool]]:
    """(target, measured ratio, limit, met) for each target the sweep has the numbers for."""
    longest = max(row["T"] for row in rows)
    checks = []

    def check(label, num, den, limit):
        ratio = None if num is None or den is None or den == 0 else num / den
        checks.append((label, ratio, limit, ratio is not None and ratio <= limit))

    naive_memory = value(rows, "naive", longest, "peak_extra_bytes")
    if naive_memory is None:  # skipped: its two (B, H, T, T) matrices are a lower bound of what it needs
        row = next(r for r in rows if r["T"] == longest)
        naive_memory = predicted_naive_bytes(longest, row["B"], row["H"], getattr(torch, row["dtype"]).itemsize)
    check(f"chunked / naive peak extra memory at T={longest}", value(rows, "chunked", longest, "peak_extra_bytes"),
          naive_memory, 1 / 20)
    if device.type == "cpu":
        check("chunked / SDPA time at T=4096", value(rows, "chunked", 4096, "seconds"),
              value(rows, "SDPA", 4096, "seconds"), 1.3)
    else:
        check("chunked / SDPA flash time at T=8192", value(rows, "chunked", 8192, "seconds"),
              value(rows, "SDPA flash", 8192, "seconds"), 3.0)
    check("windowed time(T=16384) / time(T=4096)", value(rows, "windowed", 16384, "seconds"),
          value(rows, "windowed", 4096, "seconds"), 4.5)
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--methods", nargs="+", default=None, choices=list(METHODS))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (default 1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--memory-fraction", type=float, default=0.8,
                        help="skip a quadratic path whose predicted peak exceeds this share of free memory")
    parser.add_argument("--no-memory", action="store_true", help="time only")
    parser.add_argument("--out", type=Path, default=None,
                        help="CSV to write (default benchmarks/results/attention_<device>.csv)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: PyTorch sees no GPU here")
    torch.set_num_threads(args.threads)
    args.methods = args.methods or (GPU_METHODS if device.type == "cuda" else CPU_METHODS)
    dtype = getattr(torch, args.dtype)
    out = args.out or HERE / "results" / f"attention_{device.type}.csv"

    rows = sweep(args.methods, args.lengths, batch=args.batch, heads=args.heads, head_dim=args.head_dim,
                 window=args.window, repeats=args.repeats, device=device, dtype=dtype, memory=not args.no_memory,
                 memory_fraction=args.memory_fraction, progress=True)
    base = dict(device=device.type, device_name=device_name(device), torch=torch.__version__,
                threads=torch.get_num_threads() if device.type == "cpu" else "", dtype=args.dtype,
                B=args.batch, H=args.heads, D=args.head_dim, window=args.window)
    rows = [dict(base, **row) for row in rows]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)

    print(f"torch {torch.__version__} on {device_name(device)} ({device.type}"
          f"{', %d thread(s)' % args.threads if device.type == 'cpu' else ''}), {args.dtype}, "
          f"B={args.batch} H={args.heads} D={args.head_dim} w={args.window}; written to {out}")
    print(f"{'T':>6}  {'method':<16}{'ms':>11}{'× SDPA':>9}{'extra MiB':>11}  note")
    for row in rows:
        sdpa = value(rows, "SDPA", row["T"], "seconds")
        ms = f"{row['seconds'] * 1e3:11.1f}" if row["seconds"] is not None else " " * 11
        ratio = f"{row['seconds'] / sdpa:9.2f}" if row["seconds"] is not None and sdpa else " " * 9
        mib = f"{row['peak_extra_bytes'] / 2**20:11.1f}" if row["peak_extra_bytes"] is not None else " " * 11
        print(f"{row['T']:>6}  {row['method']:<16}{ms}{ratio}{mib}  {row['note']}")
    missed = 0
    for label, ratio, limit, met in targets(rows, device):
        shown = "not measured" if ratio is None else f"{ratio:.3f}"
        print(f"target {label}: {shown} (≤ {limit:.3g}) {'met' if met else 'MISSED'}")
        missed += not met
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
