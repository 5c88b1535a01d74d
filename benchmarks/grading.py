"""Grade a class of N submissions of one assignment twice — serially and on every core — and compare.

    python benchmarks/grading.py [--students 200] [--assignment ch02_score_align_fuse] [--workers N]

The class is mixed: a quarter full marks, a quarter blank (the student notebook as released), and half
with typical bugs (one exercise's function returning a wrong value, chosen in turn). Both runs grade the
same submissions into their own course folder with the same command instructors use
(`autograde/grade.py`), the serial one with `--workers 0`. The script prints wall time, submissions per
minute and the speed-up, checks that each gradebook holds exactly N submissions with the same score per
student, and writes benchmarks/results/grading.csv. Run it on a quiet machine: it measures CPU time.
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 300.0  # for 200 submissions on a 2-core machine, scaled linearly for other class sizes
TARGET_SPEEDUP = 1.8  # parallel over serial, with two cores


def answer_cells(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")]


def build_class(course: Path, assignment: str, students: int) -> None:
    course.mkdir(parents=True)
    shutil.copy(ROOT / "autograde" / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "autograde" / "source" / assignment, course / "source" / assignment)
    right = nbformat.read(course / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    blank = nbformat.read(ROOT / "book" / "exercises" / f"{assignment}.ipynb", as_version=4)
    answers = answer_cells(right)
    for n in range(students):
        kind = ("full", "blank", "bug", "bug")[n % 4]
        nb = nbformat.read(course / "source" / assignment / f"{assignment}.ipynb", as_version=4)
        if kind == "blank":
            nb = blank
        elif kind == "bug":
            cell = nb.cells[answers[(n // 4) % len(answers)]]
            name = re.search(r"^(?:def|class)\s+(\w+)", cell.source, re.M).group(1)
            cell.source += f"\n_right = {name}\n{name} = lambda *a, **k: None  # a typical slip: returns nothing\n"
        folder = course / "submitted" / f"student{n:03d}" / assignment
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{assignment}.ipynb")


def grade(course: Path, workers: int) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "autograde" / "grade.py"), "--course-dir", str(course),
                           "--workers", str(workers), "--regrade"], capture_output=False, text=True)
    if done.returncode != 0:
        sys.exit(f"grading failed in {course}")
    return time.perf_counter() - start


def gradebook_scores(course: Path, assignment: str) -> dict[str, float]:
    sys.path.insert(0, str(ROOT / "autograde"))
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {s.student.id: s.score for s in gb.assignment_submissions(assignment)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--assignment", default="ch02_score_align_fuse")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if args.students < 1 or args.workers < 1:
        parser.error("--students and --workers must be positive")
    with tempfile.TemporaryDirectory(prefix="grading-benchmark-") as tmp:
        serial, parallel = Path(tmp) / "serial", Path(tmp) / "parallel"
        build_class(serial, args.assignment, args.students)
        build_class(parallel, args.assignment, args.students)
        t_parallel = grade(parallel, args.workers)
        t_serial = grade(serial, 0)
        a, b = gradebook_scores(serial, args.assignment), gradebook_scores(parallel, args.assignment)
    same = a == b
    rows = [("serial (1 kernel at a time)", 1, t_serial), (f"Dask, {args.workers} workers", args.workers, t_parallel)]
    print(f"\n{args.students} submissions of {args.assignment} on {os.cpu_count()} cores")
    for label, _, seconds in rows:
        print(f"  {label:<28} {seconds:7.1f} s  {60 * args.students / seconds:6.1f} submissions/min")
    print(f"  speed-up {t_serial / t_parallel:.2f}x; gradebooks hold {len(a)} and {len(b)} submissions; "
          f"same scores: {same}")
    out = ROOT / "benchmarks" / "results" / "grading.csv"
    out.parent.mkdir(exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "workers", "students", "seconds", "per_minute", "speedup", "same_scores"])
        for label, workers, seconds in rows:
            writer.writerow([label, workers, args.students, f"{seconds:.1f}", f"{60 * args.students / seconds:.1f}",
                             f"{t_serial / seconds:.2f}", same])
    met = t_parallel <= TARGET_SECONDS * args.students / 200 and t_serial / t_parallel >= TARGET_SPEEDUP
    print(f"  targets (200 submissions in {TARGET_SECONDS:.0f} s or less, {TARGET_SPEEDUP}x from the second core): "
          f"{'met' if met else 'MISSED'}")
    return 0 if same and len(a) == len(b) == args.students and met else 1


if __name__ == "__main__":
    sys.exit(main())
