"""Grading a whole class: into a shared PostgreSQL gradebook, through a Dask scheduler's address, the same
grades as the serial path, a clear refusal without a sandbox, the report."""
from __future__ import annotations

import csv
import functools
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers import sandbox_problem
from postgres_server import LocalPostgres, binaries

ROOT = Path(__file__).resolve().parents[1]
A = "ch02_score_align_fuse"
sys.path.insert(0, str(ROOT / "autograde"))
from classroom.sandbox import Limits, Sandbox, SandboxUnavailable  # noqa: E402

SANDBOX = sandbox_problem()


def needs_sandbox(test):
    """Grading refuses to run without the sandbox: a machine without one fails these tests, loudly."""
    @functools.wraps(test)
    def checked(*args, **kwargs):
        assert SANDBOX is None, f"the grading sandbox cannot run on this machine: {SANDBOX}"
        return test(*args, **kwargs)
    return checked


def make_course(folder: Path) -> Path:
    """A course with three ch02 submissions: full marks, blank, one wrong exercise (fuse_heads, 1 point)."""
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "autograde" / "nbgrader_config.py", folder)
    shutil.copytree(ROOT / "autograde" / "source" / A, folder / "source" / A)
    right = nbformat.read(folder / "source" / A / f"{A}.ipynb", as_version=4)
    blank = nbformat.read(ROOT / "book" / "exercises" / f"{A}.ipynb", as_version=4)
    wrong = nbformat.read(folder / "source" / A / f"{A}.ipynb", as_version=4)
    for cell in wrong.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "fuse_heads":
            cell.source += "\nfuse_heads = lambda weights, values: values.sum(-2)\n"
    for name, nb in (("full", right), ("blank", blank), ("wrong_fuse", wrong)):
        (folder / "submitted" / name / A).mkdir(parents=True)
        nbformat.write(nb, folder / "submitted" / name / A / f"{A}.ipynb")
    return folder


def grade(course: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "autograde" / "grade.py"), "--course-dir", str(course),
                           "--no-progress", *args], capture_output=True, text=True, timeout=900)


def scores(course: Path) -> dict[str, float]:
    with (course / "grading_report.csv").open() as handle:
        return {r["student"]: float(r["score"]) for r in csv.DictReader(handle)}


EXPECTED = {"full": 16.0, "blank": 0.0, "wrong_fuse": 15.0}


@needs_sandbox
@pytest.mark.skipif(binaries() is None, reason="PostgreSQL is not installed (make postgres)")
def test_grades_go_into_a_shared_postgresql_gradebook(tmp_path):
    from nbgrader.api import Gradebook

    course = make_course(tmp_path / "course")
    with LocalPostgres() as server:
        url = server.create_database("gradebook")
        done = grade(course, "--db-url", url, "--workers", "2")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert not (course / "gradebook.db").exists(), "the SQLite gradebook was used instead"
        with Gradebook(url, "attention-mechanisms") as gb:  # a second client of the same database
            found = {s.student.id: s.score for s in gb.assignment_submissions(A)}
        assert found == EXPECTED
        with (course / "grades.csv").open() as handle:  # nbgrader export read the same database
            assert {r["student_id"]: float(r["score"]) for r in csv.DictReader(handle)} == EXPECTED


@needs_sandbox
def test_serial_path_and_a_scheduler_address_give_the_same_grades(tmp_path):
    from dask.distributed import LocalCluster

    serial = make_course(tmp_path / "serial")
    done = grade(serial, "--workers", "0")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert scores(serial) == EXPECTED
    remote = make_course(tmp_path / "remote")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=0,
                      dashboard_address=":0") as cluster:
        done = grade(remote, "--scheduler", cluster.scheduler_address)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert scores(remote) == EXPECTED
    assert "cluster at tcp://" in done.stdout
    for name in EXPECTED:  # the same feedback, whichever path graded it
        assert (remote / "feedback" / name / A / f"{A}.html").is_file()
    assert (remote / "feedback" / f"summary_{A}.png").stat().st_size > 10_000


def test_grading_refuses_without_a_sandbox_unless_told(tmp_path, monkeypatch):
    from classroom import course as course_module

    course = make_course(tmp_path / "course")

    class Broken(Sandbox):
        def check(self, scratch_root):
            if not self.unsafe:
                raise SandboxUnavailable("user namespaces are switched off")

    monkeypatch.setattr(course_module, "Sandbox", Broken)
    lines = []

    class Out:
        def write(self, text):
            lines.append(text)

        def flush(self):
            pass

    code = course_module.grade_course(course, workers=0, progress=False, out=Out())
    assert code == 2
    assert "--unsafe" in "".join(lines) and "user namespaces" in "".join(lines)
    assert not (course / "autograded").exists(), "nothing may run unsandboxed without --unsafe"


def test_limits_reject_nonsense():
    with pytest.raises(ValueError, match="notebook_seconds"):
        Limits(notebook_seconds=0)
    done = subprocess.run([sys.executable, str(ROOT / "autograde" / "grade.py"), "--workers", "-1"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "--workers" in done.stderr
