"""Grade every submission in autograde/submitted/ with nbgrader, then write feedback and a grades CSV.

Usage (from anywhere; `make grade` runs it):  python autograde/grade.py [--course-dir DIR]

Submissions are laid out as nbgrader expects:  submitted/<student>/<assignment>/<assignment>.ipynb
Each submission is autograded on its own, so a broken or hostile notebook is reported and skipped,
never stopping the run. The steps are nbgrader's own commands:

    nbgrader generate_assignment <a> --force   # records the grade cells in gradebook.db
    nbgrader autograde <a> --student <s> --force
    nbgrader generate_feedback <a> --force     # feedback/<s>/<a>/<a>.html
    nbgrader export --to grades.csv
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

COURSE_DIR = Path(__file__).resolve().parent


def nbgrader(course_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run one nbgrader command inside the course directory (where nbgrader_config.py lives)."""
    command = [sys.executable, "-m", "nbgrader", *args, "--log-level=WARN"]
    # nbgrader runs helpers such as `alembic` by name: put this environment's bin/ first on PATH.
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    return subprocess.run(command, cwd=course_dir, env=env, capture_output=True, text=True)


def find_submissions(course_dir: Path) -> dict[str, list[str]]:
    """Map each assignment that has submissions to the sorted list of students who submitted it."""
    known = {p.name for p in (course_dir / "source").iterdir() if p.is_dir()}
    found: dict[str, list[str]] = {}
    submitted = course_dir / "submitted"
    for folder in sorted(submitted.glob("*/*")) if submitted.is_dir() else []:
        if not folder.is_dir():
            continue
        student, assignment = folder.parent.name, folder.name
        if assignment not in known:
            print(f"skipping {folder.relative_to(course_dir)}: no assignment called {assignment!r} in source/")
            continue
        found.setdefault(assignment, []).append(student)
    return found


def grade(course_dir: Path) -> int:
    submissions = find_submissions(course_dir)
    if not submissions:
        print(f"No submissions found. Put each one at {course_dir}/submitted/<student>/<assignment>/<assignment>.ipynb")
        return 1
    failures = []
    for assignment, students in submissions.items():
        done = nbgrader(course_dir, "generate_assignment", assignment, "--force")
        if done.returncode != 0:
            print(f"could not register {assignment} in the gradebook:\n{done.stdout}{done.stderr}")
            return 1
        for number, student in enumerate(students, 1):
            print(f"[{assignment} {number}/{len(students)}] autograding {student} ...", flush=True)
            done = nbgrader(course_dir, "autograde", assignment, "--student", student, "--force")
            if done.returncode != 0 or not (course_dir / "autograded" / student / assignment).is_dir():
                failures.append((student, assignment, (done.stdout + done.stderr).strip()))
        done = nbgrader(course_dir, "generate_feedback", assignment, "--force")
        if done.returncode != 0:
            failures.append(("(feedback)", assignment, (done.stdout + done.stderr).strip()))

    grades_csv = course_dir / "grades.csv"
    done = nbgrader(course_dir, "export", "--to", str(grades_csv))
    if done.returncode != 0:
        print(done.stdout + done.stderr)
        return 1

    print(f"\nGrades ({grades_csv}):")
    with grades_csv.open() as handle:
        for row in csv.DictReader(handle):
            if row["assignment"] in submissions and row["student_id"] in submissions[row["assignment"]]:
                print(f"  {row['student_id']:<20} {row['assignment']:<28} {float(row['score']):6.1f} / {float(row['max_score']):.1f}")
    print(f"Feedback pages: {course_dir / 'feedback'}/<student>/<assignment>/<assignment>.html")
    for student, assignment, log in failures:
        print(f"\nCould not autograde {student}/{assignment}; nbgrader said:\n{log}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--course-dir", type=Path, default=COURSE_DIR, help="nbgrader course root (default: this folder)")
    args = parser.parse_args(argv)
    return grade(args.course_dir.resolve())


if __name__ == "__main__":
    sys.exit(main())
