"""Grade every submission in autograde/submitted/ with nbgrader, then write feedback and a grades CSV.

Usage (from anywhere; `make grade` runs it):  python autograde/grade.py [--course-dir DIR]

Submissions are laid out as nbgrader expects:  submitted/<student>/<assignment>/<assignment>.ipynb
Each submission is autograded on its own, so a broken or hostile notebook never stops the run. A cell
that kills the Python kernel (``os._exit``, a segfault, running out of memory) makes nbgrader give up
on the whole notebook; then the cell is found by running the notebook cell by cell, its answer cell is
replaced by one that raises an error saying so, and the notebook is autograded again: only the
exercise that killed the kernel (and those that build on it) lose their points. The learner's own
file is kept beside it as ``<assignment>.ipynb.submitted``. The steps are nbgrader's own commands:

    nbgrader generate_assignment <a> --force   # records the grade cells in gradebook.db
    nbgrader autograde <a> --student <s> --force
    nbgrader generate_feedback <a> --force     # feedback/<s>/<a>/<a>.html
    nbgrader export --to grades.csv
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

COURSE_DIR = Path(__file__).resolve().parent
MAX_KERNEL_DEATHS = 5  # cells replaced in one submission before giving up on it
CELL_TIMEOUT = 120  # seconds, as Execute.timeout in nbgrader_config.py
KILLED_KERNEL = (
    "raise RuntimeError(\n"
    "    'While grading, this answer cell (or the test of this exercise) stopped the Python kernel, '\n"
    "    'so it was not run. Your code is in {backup}.'\n"
    ")\n"
)


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


def notebook_as_graded(course_dir: Path, assignment: str, submitted: Path) -> nbformat.NotebookNode:
    """The submission with its locked cells and tests taken from source/, hidden tests included,
    as nbgrader's autograde runs it."""
    source = nbformat.read(course_dir / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    by_id = {c.metadata["nbgrader"]["grade_id"]: c for c in source.cells if "nbgrader" in c.metadata}
    nb = nbformat.read(submitted, as_version=4)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if (meta.get("locked") or meta.get("grade")) and not meta.get("solution") and meta.get("grade_id") in by_id:
            cell.source = by_id[meta["grade_id"]].source
    return nb


def cell_that_kills_the_kernel(nb: nbformat.NotebookNode, folder: Path) -> int | None:
    """Run ``nb`` cell by cell; the index of the cell during which the kernel died, or None."""
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, allow_errors=True, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}})
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            try:
                client.execute_cell(cell, index)
            except DeadKernelError:
                return index
            except Exception:  # a timeout or any other failure is nbgrader's to grade
                continue
    return None


def neutralise_kernel_killer(course_dir: Path, assignment: str, student: str) -> bool:
    """Replace the answer cell whose exercise kills the kernel; True when one was found and replaced."""
    folder = course_dir / "submitted" / student / assignment
    submitted = folder / f"{assignment}.ipynb"
    backup = folder / f"{assignment}.ipynb.submitted"
    if not backup.exists():
        shutil.copy2(submitted, backup)
    index = cell_that_kills_the_kernel(notebook_as_graded(course_dir, assignment, submitted), folder)
    if index is None:
        return False
    nb = nbformat.read(submitted, as_version=4)
    answers = [i for i, c in enumerate(nb.cells[: index + 1])
               if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")]
    if not answers:  # the kernel died outside every exercise (e.g. in the set-up cell): nothing to save
        return False
    nb.cells[answers[-1]].source = KILLED_KERNEL.format(backup=backup.name)
    nbformat.write(nb, submitted)
    print(f"    cell {answers[-1]} of {student}/{assignment} stops the kernel; it is replaced and regraded")
    return True


def autograde(course_dir: Path, assignment: str, student: str) -> subprocess.CompletedProcess:
    """nbgrader autograde for one student, retried when a cell kills the kernel."""
    for _ in range(MAX_KERNEL_DEATHS + 1):
        done = nbgrader(course_dir, "autograde", assignment, "--student", student, "--force")
        graded = (course_dir / "autograded" / student / assignment).is_dir()
        if done.returncode == 0 and graded:
            return done
        if "Kernel died" not in done.stdout + done.stderr:
            return done
        if not neutralise_kernel_killer(course_dir, assignment, student):
            return done
    return done


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
            done = autograde(course_dir, assignment, student)
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
