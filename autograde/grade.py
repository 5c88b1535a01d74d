"""Grade every submission in autograde/submitted/: sandboxed, in parallel, only what changed.

Usage (from anywhere; `make grade` runs it):

    python autograde/grade.py [--course-dir DIR] [--workers N | --scheduler ADDRESS] [--regrade]
                              [--assignment A ...] [--db-url URL] [--unsafe] [--cell-timeout S]
                              [--notebook-timeout S] [--memory GIB]

Submissions are laid out as nbgrader expects: submitted/<student>/<assignment>/<assignment>.ipynb.
Each is run in a fresh IPython kernel inside a bubblewrap sandbox (no network, no course files, memory,
CPU-time and output limits) and recorded with nbgrader's own preprocessors into the gradebook; the run
ends with a table, grades.csv, grading_report.csv and, per assignment, feedback/summary_<a>.html with the
score distribution and each test's pass rate. See autograde/classroom/ for how each piece works.
Exit status: 0 when every submission was graded (whatever its score), 1 when the grader itself failed,
2 when the sandbox cannot run here (use --unsafe only on a machine where that is acceptable).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from classroom.sandbox import GIB, Limits  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--course-dir", type=Path, default=Path(__file__).resolve().parent,
                        help="nbgrader course root (default: this folder)")
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel kernels on this machine (default: one per core; 0: serial, no Dask)")
    parser.add_argument("--scheduler", help="address of a Dask scheduler whose workers grade (e.g. tcp://host:8786)")
    parser.add_argument("--regrade", action="store_true", help="grade every submission again, changed or not")
    parser.add_argument("--assignment", action="append", help="grade only this assignment (repeatable)")
    parser.add_argument("--db-url", help="gradebook URL (default: nbgrader_config.py's, else sqlite gradebook.db); "
                                         "e.g. postgresql+psycopg://user@host/dbname")
    parser.add_argument("--unsafe", action="store_true", help="run submissions without the sandbox")
    parser.add_argument("--cell-timeout", type=float, default=Limits.cell_seconds, help="seconds per cell")
    parser.add_argument("--notebook-timeout", type=float, default=Limits.notebook_seconds,
                        help="seconds for a whole notebook")
    parser.add_argument("--memory", type=float, default=Limits.memory_bytes / GIB, help="GiB per kernel")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 0:
        parser.error("--workers must be 0 or more")
    if args.workers is not None and args.scheduler:
        parser.error("--workers and --scheduler exclude each other")
    try:
        limits = Limits(cell_seconds=args.cell_timeout, notebook_seconds=args.notebook_timeout,
                        memory_bytes=int(args.memory * GIB))
    except ValueError as error:
        parser.error(str(error))
    # Imported here, not at the top: each Dask worker process re-runs this file's top level when it
    # starts, and needs none of the gradebook's libraries (nbgrader, nbconvert, SQLAlchemy).
    from classroom.course import grade_course

    return grade_course(args.course_dir, workers=args.workers, scheduler=args.scheduler, regrade=args.regrade,
                        unsafe=args.unsafe, limits=limits, db_url=args.db_url,
                        assignments=set(args.assignment) if args.assignment else None,
                        progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
