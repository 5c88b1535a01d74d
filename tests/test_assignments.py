"""The nbgrader round trip, in a temporary copy of the course directory.

For every assignment in autograde/source/:
- a fresh `nbgrader generate_assignment` equals the committed student notebook in book/exercises/;
- the instructor notebook autogrades to full marks;
- the untouched student notebook autogrades to zero, and the run finishes;
- a submission with one exercise wrong loses exactly that exercise's points;
- a hostile submission (its kernel dies) is graded without stopping the run;
- `make grade`'s script writes feedback and a grades CSV;
- no solution region or hidden test appears in a student notebook.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from assignment_text import secret_lines

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "autograde" / "source"
EXERCISES = ROOT / "book" / "exercises"
ASSIGNMENTS = sorted(p.name for p in SOURCE.iterdir() if p.is_dir())

pytestmark = pytest.mark.slow


def run_nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args, "--log-level=WARN"],
        cwd=course, env=env, capture_output=True, text=True, timeout=900,
    )
    return done


def instructor_notebook(assignment: str) -> nbformat.NotebookNode:
    return nbformat.read(SOURCE / assignment / f"{assignment}.ipynb", as_version=4)


def exercises(nb: nbformat.NotebookNode) -> list[tuple[int, list[str], float]]:
    """(index of the answer cell, grade ids of its test cells, points) for each exercise, in order."""
    found = []
    for index, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            found.append([index, [], 0.0])
        elif meta.get("grade") and found:
            found[-1][1].append(meta["grade_id"])
            found[-1][2] += float(meta["points"])
    return [tuple(entry) for entry in found]


def break_answer(source: str) -> str:
    """Keep the learner's code runnable but make the exercise's function or class return nothing useful."""
    name = re.search(r"^(?:def|class)\s+(\w+)", source, re.M).group(1)
    return f"{source}\n\n{name} = lambda *args, **kwargs: None  # a wrong answer\n"


def submit(course: Path, student: str, assignment: str, nb: nbformat.NotebookNode) -> None:
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{assignment}.ipynb")


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A copy of the course directory with every assignment generated and four submissions each."""
    course = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "autograde" / "nbgrader_config.py", course)
    shutil.copytree(SOURCE, course / "source")
    for assignment in ASSIGNMENTS:
        done = run_nbgrader(course, "generate_assignment", assignment, "--force")
        assert done.returncode == 0, done.stdout + done.stderr
        student_nb = nbformat.read(course / "release" / assignment / f"{assignment}.ipynb", as_version=4)
        instructor = instructor_notebook(assignment)
        submit(course, "instructor", assignment, instructor)
        submit(course, "blank", assignment, student_nb)

        # One exercise wrong: the last one, which no other exercise builds on.
        answer_cell, _, _ = exercises(instructor)[-1]
        wrong = instructor_notebook(assignment)
        wrong.cells[answer_cell].source = break_answer(wrong.cells[answer_cell].source)
        submit(course, "one_wrong", assignment, wrong)

        # Hostile: the first answer kills its kernel; the grader must carry on.
        hostile = instructor_notebook(assignment)
        first_answer = exercises(hostile)[0][0]
        hostile.cells[first_answer].source = "import os\nos._exit(1)\n" + hostile.cells[first_answer].source
        submit(course, "hostile", assignment, hostile)

    done = subprocess.run([sys.executable, str(ROOT / "autograde" / "grade.py"), "--course-dir", str(course),
                           "--no-progress"], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    course.joinpath("grade.log").write_text(done.stdout + done.stderr)
    return course


def scores(course: Path, student: str, assignment: str) -> dict[str, tuple[float, float]]:
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook(assignment, assignment, student)
        return {grade.name: (grade.score, grade.max_score) for grade in notebook.grades}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_equals_committed_student_notebook(course, assignment):
    fresh = json.loads((course / "release" / assignment / f"{assignment}.ipynb").read_text())
    committed = json.loads((EXERCISES / f"{assignment}.ipynb").read_text())
    assert fresh == committed, f"book/exercises/{assignment}.ipynb is stale: run `make release`"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_assignment_is_worth_at_least_ten_points_over_four_exercises(assignment):
    found = exercises(instructor_notebook(assignment))
    assert len(found) >= 4, f"{assignment} has {len(found)} graded exercises"
    assert sum(points for _, _, points in found) >= 10
    assert all(ids and points > 0 for _, ids, points in found), "every answer cell is followed by a graded test"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_instructor_notebook_gets_full_marks(course, assignment):
    grades = scores(course, "instructor", assignment)
    lost = {name: s for name, s in grades.items() if s[0] != s[1]}
    assert not lost, f"the reference solution loses points in {lost}"
    assert sum(s[1] for s in grades.values()) == sum(p for _, _, p in exercises(instructor_notebook(assignment)))


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_student_notebook_gets_zero(course, assignment):
    grades = scores(course, "blank", assignment)
    assert grades and all(score == 0 for score, _ in grades.values()), grades


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_one_wrong_exercise_loses_exactly_its_points(course, assignment):
    _, wrong_ids, wrong_points = exercises(instructor_notebook(assignment))[-1]
    grades = scores(course, "one_wrong", assignment)
    for name, (score, max_score) in grades.items():
        expected = 0 if name in wrong_ids else max_score
        assert score == expected, f"{name}: {score} of {max_score}, expected {expected}"
    total = sum(s for s, _ in grades.values())
    assert total == sum(m for _, m in grades.values()) - wrong_points


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_hostile_submission_is_graded_without_stopping_the_run(course, assignment):
    """The first answer kills its kernel: that exercise gets 0, the others are still graded."""
    _, killer_ids, _ = exercises(instructor_notebook(assignment))[0]
    grades = scores(course, "hostile", assignment)
    assert all(grades[name][0] == 0 for name in killer_ids), grades
    assert 0 < sum(s for s, _ in grades.values()) < sum(m for _, m in grades.values()), grades
    assert (course / "feedback" / "hostile" / assignment / f"{assignment}.html").is_file()
    kept = course / "submitted" / "hostile" / assignment / f"{assignment}.ipynb"
    assert "os._exit(1)" in kept.read_text(), "the learner's own notebook must be left as submitted"
    assert "stopped the Python kernel" in (course / "feedback" / "hostile" / assignment / f"{assignment}.html").read_text()


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_feedback_and_grades_csv(course, assignment):
    for student in ("instructor", "blank", "one_wrong"):
        page = course / "feedback" / student / assignment / f"{assignment}.html"
        assert page.is_file(), f"no feedback page for {student}"
        assert "BEGIN HIDDEN TESTS" not in page.read_text()
    with (course / "grades.csv").open() as handle:
        rows = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(handle)}
    full = sum(p for _, _, p in exercises(instructor_notebook(assignment)))
    assert float(rows[("instructor", assignment)]["score"]) == full
    assert float(rows[("instructor", assignment)]["max_score"]) == full
    assert float(rows[("blank", assignment)]["score"]) == 0


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_notebook_holds_no_solution_or_hidden_test(assignment):
    instructor = instructor_notebook(assignment)
    student_text = "\n".join(c.source for c in nbformat.read(EXERCISES / f"{assignment}.ipynb", as_version=4).cells)
    assert "BEGIN SOLUTION" not in student_text and "HIDDEN TESTS" not in student_text
    for line in secret_lines(instructor):
        assert line not in student_text, f"student notebook leaks: {line!r}"
