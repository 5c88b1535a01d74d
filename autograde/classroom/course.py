"""Grade every submission of a course folder laid out as nbgrader expects.

``submitted/<student>/<assignment>/<assignment>.ipynb`` → ``autograded/``, the gradebook, ``feedback/``,
``grades.csv`` (nbgrader's export) and ``grading_report.csv`` (score, time and problems of each submission).
"""
from __future__ import annotations

import compileall
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import nbformat

from . import report
from .fanout import Job, attach_files, run_jobs
from .gradebook import Recorder, hidden_lines
from .sandbox import Limits, Sandbox, SandboxUnavailable
from .submission import assemble, read_submission

GRADER_VERSION = "1"  # part of each fingerprint: a new grader regrades everything


def find_submissions(course_dir: Path, only: set[str] | None = None) -> tuple[dict[str, list[str]], list[str]]:
    """{assignment: students} for every submission folder, and warnings about folders that hold none."""
    known = {p.name for p in (course_dir / "source").iterdir() if p.is_dir()} if (course_dir / "source").is_dir() else set()
    found: dict[str, list[str]] = {}
    warnings = []
    submitted = course_dir / "submitted"
    for student in sorted(submitted.iterdir()) if submitted.is_dir() else []:
        if not student.is_dir():
            continue
        folders = [f for f in sorted(student.iterdir()) if f.is_dir()]
        if not folders:
            warnings.append(f"submitted/{student.name}/ holds no assignment folder: nothing to grade")
        for folder in folders:
            if folder.name not in known:
                warnings.append(f"submitted/{student.name}/{folder.name}/: no assignment {folder.name!r} in source/")
            elif only is None or folder.name in only:
                found.setdefault(folder.name, []).append(student.name)
    return found, warnings


def _not_graded(nb: nbformat.NotebookNode, why: str) -> nbformat.NotebookNode:
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade"):
            cell.outputs = [nbformat.v4.new_output("error", ename="NotGraded", evalue=why,
                                                   traceback=[f"NotGraded: {why}"])]
    return nb


def grade_course(course_dir: Path, *, workers: int | None = None, scheduler: str | None = None,
                 regrade: bool = False, unsafe: bool = False, limits: Limits = Limits(),
                 db_url: str | None = None, assignments: set[str] | None = None,
                 progress: bool = True, out=sys.stdout) -> int:
    """Grade what is new or changed (everything with ``regrade``); 0 unless the grader itself failed."""
    course_dir = Path(course_dir).resolve()
    workers = (os.cpu_count() or 1) if workers is None else workers
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="sandbox-check-") as probe:
            Sandbox(unsafe=unsafe).check(Path(probe))
    except SandboxUnavailable as error:
        print(f"error: the sandbox cannot run here: {error}\nGrading refuses to run submissions unsandboxed; "
              "pass --unsafe to do it anyway (their code then runs with your rights).", file=out)
        return 2
    _byte_compile("solutions")
    if unsafe:
        print("warning: --unsafe: submissions run WITHOUT the sandbox, with your rights", file=out)

    submissions, warnings = find_submissions(course_dir, assignments)
    for warning in warnings:
        print(f"warning: {warning}", file=out)
    if not submissions:
        print(f"No submissions found. Put each one at {course_dir}/submitted/<student>/<assignment>/<assignment>.ipynb",
              file=out)
        return 1

    recorder = Recorder(course_dir, db_url)
    rows: list[report.Row] = []
    jobs: list[Job] = []
    context = {}
    pending: dict[tuple[str, str], tuple[str, list[str]]] = {}
    failed = False
    for assignment, students in submissions.items():
        error = recorder.register(assignment)
        if error is not None:
            print(f"error: could not register {assignment} in the gradebook:\n{error}", file=out)
            return 1
        source_path = course_dir / "source" / assignment / f"{assignment}.ipynb"
        source_nb = nbformat.read(source_path, as_version=4)
        release_nb = nbformat.read(course_dir / "release" / assignment / f"{assignment}.ipynb", as_version=4)
        source_hash = hashlib.sha256(source_path.read_bytes()).hexdigest()
        context[assignment] = (source_nb, release_nb, hidden_lines(source_nb))
        for student in students:
            folder = course_dir / "submitted" / student / assignment
            sub = read_submission(folder, student, assignment)
            fingerprint = hashlib.sha256(json.dumps(
                [sub.digest, source_hash, GRADER_VERSION, asdict(limits)]).encode()).hexdigest()
            if not regrade and recorder.is_current(student, assignment, fingerprint):
                manifest = json.loads((recorder.folder("autograded", student, assignment) / ".classroom.json").read_text())
                rows.append(report.Row(student, assignment, manifest["score"], manifest["max_score"], manifest["seconds"],
                                       manifest["problems"], manifest["passed"], skipped=True))
                continue
            nb, learner_cells = assemble(source_nb, release_nb, sub)
            if sub.notebook is None:
                recorded = recorder.record(student, assignment, _not_graded(nb, sub.problems[-1]), sub.problems,
                                           [], fingerprint, 0.0)
                rows.append(report.Row(student, assignment, recorded.score, recorded.max_score, 0.0,
                                       sub.problems, recorded.passed))
                continue
            job = Job(student, assignment, nbformat.writes(nb), learner_cells, asdict(limits), unsafe)
            problems = sub.problems + attach_files(job, folder)
            pending[student, assignment] = (fingerprint, problems)  # kept on this side only
            jobs.append(job)

    cached = sum(r.skipped for r in rows)
    print(f"Grading {len(jobs)} submission(s) on {'the cluster at ' + scheduler if scheduler else f'{workers} worker(s)'}"
          f"{f'; {cached} unchanged since the last run' if cached else ''}", file=out, flush=True)
    bar = _progress(len(jobs), progress)
    for job, result in run_jobs(jobs, workers, scheduler):
        bar.update(1)
        if isinstance(result, Exception):
            failed = True
            rows.append(report.Row(job.student, job.assignment, None, None, 0.0,
                                   [f"the grader failed: {type(result).__name__}: {result}"]))
            continue
        _, _, secret = context[job.assignment]
        fingerprint, problems = pending[job.student, job.assignment]
        problems = problems + result["problems"]
        try:
            recorded = recorder.record(job.student, job.assignment, nbformat.reads(result["notebook"], as_version=4),
                                       problems, secret, fingerprint, result["seconds"])
        except Exception as error:  # a gradebook that cannot be written is the grader's failure
            failed = True
            rows.append(report.Row(job.student, job.assignment, None, None, result["seconds"],
                                   [f"could not be recorded: {type(error).__name__}: {error}"]))
            continue
        rows.append(report.Row(job.student, job.assignment, recorded.score, recorded.max_score, result["seconds"],
                               problems, recorded.passed))
    bar.close()

    grades_csv = course_dir / "grades.csv"
    try:
        recorder.export(grades_csv)
    except Exception as error:
        print(f"error: nbgrader's export failed: {type(error).__name__}: {error}", file=out)
        failed = True
    report.write_csv(rows, course_dir / "grading_report.csv")
    pages = report.summary_pages(rows, course_dir / "feedback")
    print("\n" + report.table(rows), file=out)
    graded = len(rows) - cached
    print(f"\n{graded} graded, {cached} unchanged, in {time.monotonic() - started:.1f} s. Grades: {grades_csv}; "
          f"report: {course_dir / 'grading_report.csv'}; feedback: {course_dir / 'feedback'}/<student>/<assignment>/; "
          f"summaries: {', '.join(str(p) for p in pages)}", file=out)
    if failed:
        print("error: the grader itself failed on some submissions (see GRADER ERROR above)", file=out)
    return 1 if failed else 0


def _byte_compile(package: str) -> None:
    """Write the bytecode of a package the kernels import: inside the sandbox it is read-only, so a kernel
    that finds no bytecode compiles every module again (a tenth of a second per submission)."""
    folder = Path(__import__(package).__file__).parent
    compileall.compile_dir(str(folder), quiet=1, workers=1)


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="grading", unit="submission", disable=not enabled or total == 0,
                file=sys.stderr, dynamic_ncols=True)
