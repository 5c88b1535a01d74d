"""How long the dataset generators take for 10,000 pairs, the size the chapters train on.

Run by hand from the repository root: ``.venv/bin/python benchmarks/data_generation.py``
(``--runs`` and ``--target`` change the defaults). Prints the median of a few runs per generator
and exits with status 1 if a median misses the target (1 s).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from solutions import seeding
from solutions.data import generate_dates, generate_sentences

GENERATORS = {"generate_dates": generate_dates, "generate_sentences": generate_sentences}


def time_generator(generate, n: int, runs: int, seed: int | None = None) -> list[float]:
    """Wall-clock seconds of ``runs`` calls ``generate(n, seed=seed)``, after one untimed warm-up call (seed:
    the course's seed 11 when not given)."""
    seed = seeding.seed(11) if seed is None else seed
    generate(n, seed=seed)  # warm-up: imports, caches, locale data
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        pairs = generate(n, seed=seed)
        times.append(time.perf_counter() - start)
        if len(pairs) != n:
            raise RuntimeError(f"{generate.__name__} made {len(pairs)} pairs, not {n}")
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000, help="pairs per call (default 10,000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per generator (default 5)")
    parser.add_argument("--target", type=float, default=1.0, help="target median in seconds (default 1)")
    args = parser.parse_args(argv)

    print(f"{args.pairs:,} pairs, median of {args.runs} runs, target {args.target:g} s")
    print(f"{'generator':<20} {'median s':>9} {'min s':>7} {'max s':>7}  result")
    missed = []
    for name, generate in GENERATORS.items():
        times = time_generator(generate, args.pairs, args.runs)
        median = statistics.median(times)
        ok = median < args.target
        if not ok:
            missed.append(name)
        print(f"{name:<20} {median:>9.3f} {min(times):>7.3f} {max(times):>7.3f}  {'ok' if ok else 'MISSED'}")
    if missed:
        print(f"target of {args.target:g} s missed by: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
