"""Each assignment grades fairly: its fairness set, graded with nbgrader in a temporary copy of the course.

An assignment has a fairness set when ``tests/fairness/<assignment>.py`` exists (COURSE.md, "Exercise
rules"). Such a module defines ``VARIANTS``, a list of dicts:

    name      a short identifier (it becomes the student id)
    kind      "wrong"     one bug: loses at least one point in exercise ``loses``, full marks elsewhere
              "reference" runs the course's reference implementation or a function the task forbids:
                          the same, with the message saying so
              "right"     correct but written differently (einsum, float64, extra batch dims, another
                          valid algorithm): full marks
    answers   {grade id of an answer cell: the source that replaces it}; usually one cell, two for a
              cascade (a wrong exercise plus another answer built on it: only the wrong one loses)
    loses     the grade id of the answer cell whose exercise must lose points (wrong and reference)
    message   optional: part of the message the learner must read in the feedback of the failing test

Every variant is a copy of the instructor notebook with those answer cells replaced. All of them are
autograded in one ``nbgrader autograde`` run and get their feedback in one ``nbgrader generate_feedback``
run. The tests check the scores per exercise, and that the feedback of each failing test shows an error with
a message (``message`` among them) and no line of the hidden tests.
"""
from __future__ import annotations

import html as html_lib
import importlib.util
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from assignment_text import HIDDEN, SOLUTION
from test_assignments import ASSIGNMENTS, ROOT, SOURCE, exercises, instructor_notebook, run_nbgrader, scores, submit

FAIRNESS = Path(__file__).resolve().parent / "fairness"
KINDS = ("wrong", "reference", "right")


def fairness_set(assignment: str) -> list[dict]:
    spec = importlib.util.spec_from_file_location(f"fairness_{assignment}", FAIRNESS / f"{assignment}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.VARIANTS


WITH_SETS = [a for a in ASSIGNMENTS if (FAIRNESS / f"{a}.py").is_file()]
CASES = [(a, v["name"]) for a in WITH_SETS for v in fairness_set(a)]


def answer_ids(nb: nbformat.NotebookNode) -> dict[str, tuple[list[str], float]]:
    """{grade id of each answer cell: (grade ids of its test cells, points)}."""
    return {nb.cells[index].metadata["nbgrader"]["grade_id"]: (tests, points)
            for index, tests, points in exercises(nb)}


def variant_notebook(assignment: str, variant: dict) -> nbformat.NotebookNode:
    nb = instructor_notebook(assignment)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in variant["answers"]:
            cell.source = variant["answers"][grade_id].strip("\n") + "\n"
    return nb


def hidden_lines(nb: nbformat.NotebookNode, submitted: nbformat.NotebookNode, min_length: int = 12) -> set[str]:
    """The distinctive lines of the hidden tests of ``nb``: not those shown outside a hidden region, nor
    those that the ``submitted`` notebook's answers happen to hold (``for block in blocks:``)."""
    hidden, public = set(), set()
    for cell in nb.cells:
        for region in HIDDEN.findall(cell.source):
            hidden.update(line.strip() for line in region.splitlines() if len(line.strip()) >= min_length)
        public.update(line.strip() for line in HIDDEN.sub("", SOLUTION.sub("", cell.source)).splitlines())
    for cell in submitted.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            public.update(line.strip() for line in cell.source.splitlines())
    return hidden - public


def page_text(path: Path) -> str:
    """The text a feedback page shows: tags removed, entities decoded."""
    return html_lib.unescape(re.sub(r"<[^>]+>", "", path.read_text()))


@pytest.mark.parametrize("assignment", WITH_SETS)
def test_fairness_set_is_well_formed(assignment):
    variants = fairness_set(assignment)
    answers = answer_ids(instructor_notebook(assignment))
    names = [v["name"] for v in variants]
    assert len(set(names)) == len(names), "variant names are unique"
    for v in variants:
        assert re.fullmatch(r"[a-z0-9_]+", v["name"]), f"{v['name']}: a student id of lower-case letters, digits, _"
        assert v["kind"] in KINDS, f"{v['name']}: kind must be one of {KINDS}"
        assert v["answers"] and set(v["answers"]) <= set(answers), f"{v['name']}: unknown answer cells"
        if v["kind"] == "right":
            assert "loses" not in v, f"{v['name']}: a right answer loses nothing"
        else:
            assert v["loses"] in v["answers"], f"{v['name']}: the exercise that loses points is one it changes"
    lose = {v["loses"] for v in variants if v["kind"] != "right"}
    assert lose == set(answers), f"every exercise has a wrong answer in the set; missing: {set(answers) - lose}"
    assert {"reference", "right"} <= {v["kind"] for v in variants}, "the set has reference-calling and right answers"


class GradedCourses(dict):
    """{assignment: the course folder}, every variant of the assignment's fairness set autograded, with
    feedback. An assignment is graded when a test first asks for it, so that ``-k <assignment>`` grades
    that assignment alone."""

    def __init__(self, tmp_path_factory):
        super().__init__()
        self.tmp_path_factory = tmp_path_factory

    def __missing__(self, assignment: str) -> Path:
        course = self.tmp_path_factory.mktemp(f"fair_{assignment}")
        shutil.copy(ROOT / "autograde" / "nbgrader_config.py", course)
        shutil.copytree(SOURCE / assignment, course / "source" / assignment)
        done = run_nbgrader(course, "generate_assignment", assignment, "--force")
        assert done.returncode == 0, done.stdout + done.stderr
        for variant in fairness_set(assignment):
            submit(course, variant["name"], assignment, variant_notebook(assignment, variant))
        for args in (("autograde", assignment, "--force"), ("generate_feedback", assignment, "--force")):
            done = run_nbgrader(course, *args)
            assert done.returncode == 0, done.stdout + done.stderr
        self[assignment] = course
        print(summary(course, assignment))  # shown with pytest -s
        return course


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> GradedCourses:
    return GradedCourses(tmp_path_factory)


def summary(course: Path, assignment: str) -> str:
    """The fairness table: each variant's points per exercise."""
    answers = answer_ids(instructor_notebook(assignment))
    rows = [f"| variant | kind | {' | '.join(answers)} |", "|---" * (len(answers) + 2) + "|"]
    for variant in fairness_set(assignment):
        grades = scores(course, variant["name"], assignment)
        cells = [f"{sum(grades[t][0] for t in tests):g}/{points:g}" for tests, points in answers.values()]
        rows.append(f"| {variant['name']} | {variant['kind']} | {' | '.join(cells)} |")
    return "\n".join(rows)


def _variant(assignment: str, name: str) -> dict:
    return next(v for v in fairness_set(assignment) if v["name"] == name)


@pytest.mark.slow
@pytest.mark.parametrize("assignment, name", CASES)
def test_variant_loses_points_in_its_own_exercise_only(graded, assignment, name):
    variant = _variant(assignment, name)
    grades = scores(graded[assignment], name, assignment)
    for answer, (tests, points) in answer_ids(instructor_notebook(assignment)).items():
        got = sum(grades[t][0] for t in tests)
        if variant["kind"] != "right" and answer == variant["loses"]:
            assert got <= points - 1, \
                f"{name} ({variant['kind']}) must lose at least a point in {answer}: {got}/{points}"
        else:
            assert got == points, f"{name} ({variant['kind']}) must keep the points of {answer}: {got}/{points}"


@pytest.mark.slow
@pytest.mark.parametrize("assignment, name", [c for c in CASES if _variant(*c)["kind"] != "right"])
def test_feedback_shows_the_message_and_no_hidden_test(graded, assignment, name):
    variant = _variant(assignment, name)
    course = graded[assignment]
    nb = nbformat.read(course / "autograded" / name / assignment / f"{assignment}.ipynb", as_version=4)
    tests, _ = answer_ids(instructor_notebook(assignment))[variant["loses"]]
    errors = [out for cell in nb.cells if cell.metadata.get("nbgrader", {}).get("grade_id") in tests
              for out in cell.get("outputs", []) if out.output_type == "error"]
    assert errors, f"{name}: the failing test cell shows an error"
    for error in errors:
        assert error.evalue.strip(), f"{name}: the failing test says what was checked ({error.ename} without a message)"
        assert len(error.traceback) <= 1, f"{name}: the feedback shows no traceback lines, got {error.traceback}"
    if "message" in variant:
        assert any(variant["message"] in e.evalue for e in errors), \
            f"{name}: expected {variant['message']!r} in the message, got {[e.evalue for e in errors]}"
    page = page_text(course / "feedback" / name / assignment / f"{assignment}.html")
    for error in errors:
        first_line = error.evalue.strip().splitlines()[0]
        assert first_line in page, f"{name}: the feedback page shows the message {first_line!r}"
    secret = hidden_lines(instructor_notebook(assignment), variant_notebook(assignment, variant))
    assert secret, "the hidden tests have lines to look for"
    shown = sorted(secret & {line.strip() for line in page.splitlines()})
    assert not shown, f"{name}: the feedback page shows hidden test lines: {shown[:3]}"
