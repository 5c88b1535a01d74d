"""Read a learner's submission, whatever state it is in, and build the notebook the grader runs.

The notebook that runs is the instructor's, cell for cell: its set-up, task and test cells (hidden tests
included, read from ``source/`` outside the sandbox), with the learner's answer cells put in by their
nbgrader ``grade_id`` and the code cells the learner added kept where they added them. So an edited or
deleted test cell is restored, a deleted answer cell counts as unanswered, and cell metadata the learner
changed (points, grade flags) is ignored. Every repair is reported back to the learner as a *problem*.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

# A learner's cell that contains these markers would make nbgrader's feedback strip or mangle it.
MARKERS = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "BEGIN SOLUTION", "END SOLUTION")


@dataclass
class Submission:
    """What the grader knows about one student's submission of one assignment."""

    student: str
    assignment: str
    path: Path | None  # the notebook file read, or None when there was none
    notebook: nbformat.NotebookNode | None = None  # as submitted, upgraded to nbformat 4
    problems: list[str] = field(default_factory=list)
    digest: str = ""  # sha256 of the submitted files, for incremental grading


def folder_digest(folder: Path) -> str:
    """A hash of every file the student submitted (names and bytes), ignoring the grader's own backups."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.name.endswith(".submitted") or ".ipynb_checkpoints" in path.parts:
            continue
        h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def read_submission(folder: Path, student: str, assignment: str) -> Submission:
    """The submission in ``folder``; a missing, empty, malformed or misnamed notebook becomes a problem,
    not an exception."""
    folder = Path(folder)
    expected = folder / f"{assignment}.ipynb"
    found = Submission(student, assignment, None, digest=folder_digest(folder) if folder.is_dir() else "")
    path = expected
    if not expected.is_file():
        others = sorted(p for p in folder.glob("*.ipynb")) if folder.is_dir() else []
        if len(others) == 1:
            path = others[0]
            found.problems.append(f"the notebook was called {path.name!r}, not {expected.name!r}; "
                                  "it was graded anyway")
        elif others:
            found.problems.append(f"no notebook called {expected.name!r}, and several others "
                                  f"({', '.join(p.name for p in others)}): nothing was graded")
            return found
        else:
            found.problems.append(f"no notebook was submitted (expected {expected.name!r})")
            return found
    found.path = path
    raw = path.read_bytes()
    if not raw.strip():
        found.problems.append(f"{path.name} is an empty file")
        return found
    try:
        data = json.loads(raw.decode("utf-8"))
        version = data.get("nbformat") if isinstance(data, dict) else None
        if version not in (3, 4):
            raise ValueError(f"not a notebook (nbformat version {version!r})")
        found.notebook = nbformat.reads(raw.decode("utf-8"), as_version=4)
        if version == 3:
            found.problems.append(f"{path.name} was saved as an nbformat 3 notebook; it was converted to version 4")
    except (ValueError, UnicodeDecodeError, KeyError, AttributeError, TypeError) as error:
        found.problems.append(f"{path.name} could not be read as a notebook ({type(error).__name__}: "
                              f"{str(error)[:200]}); nothing could be graded")
        found.notebook = None
    return found


def _grade_id(cell) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta.get("grade_id") if isinstance(meta, dict) else None


def _defuse(source: str) -> str:
    for marker in MARKERS:
        source = source.replace(marker, marker.replace(" ", "\u00a0"))
    return source


def assemble(source_nb: nbformat.NotebookNode, release_nb: nbformat.NotebookNode,
             submission: Submission) -> tuple[nbformat.NotebookNode, list[str]]:
    """The notebook to run for ``submission``, and the indices of the learner's cells in it.

    ``release_nb`` gives each cell's metadata (nbgrader's checksums included) and ``source_nb`` the text of
    the instructor's cells, hidden tests included. Answer cells come from the submission by grade id.
    """
    instructor = {_grade_id(c): c for c in source_nb.cells if _grade_id(c)}
    learner = submission.notebook.cells if submission.notebook is not None else []
    answers = {_grade_id(c): c for c in learner if _grade_id(c)}
    originals = {c.source for c in release_nb.cells}
    added: dict[str | None, list] = {}  # learner's own cells, by the grade id of the cell before them
    anchor = None
    for cell in learner:
        if _grade_id(cell) in instructor:
            anchor = _grade_id(cell)
        elif cell.get("cell_type") == "code" and cell.source.strip() and cell.source not in originals:
            added.setdefault(anchor, []).append(cell)

    cells, learner_cells = [], []

    def add_learner_cells(after):
        for cell in added.get(after, []):
            learner_cells.append(len(cells))
            cells.append(nbformat.v4.new_code_cell(_defuse(cell.source)))

    add_learner_cells(None)
    for template in release_nb.cells:
        gid = _grade_id(template)
        cell = nbformat.from_dict(json.loads(json.dumps(template)))
        meta = template.metadata.get("nbgrader", {})
        if gid and meta.get("solution"):
            answer = answers.get(gid)
            if answer is None or answer.get("cell_type") != template.cell_type:
                if submission.notebook is not None:
                    submission.problems.append(f"the answer cell {gid!r} was missing; it was graded as unanswered")
            else:
                cell.source = _defuse(answer.source)
            if template.cell_type == "code":
                learner_cells.append(len(cells))
        elif gid and gid in instructor:
            cell.source = instructor[gid].source
            theirs = answers.get(gid)
            if submission.notebook is not None and meta.get("grade"):
                if theirs is None:
                    submission.problems.append(f"the test cell {gid!r} was missing; it was put back")
                elif theirs.source.strip() not in (template.source.strip(), instructor[gid].source.strip()):
                    submission.problems.append(f"the test cell {gid!r} had been edited; the original was run")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
        if gid:
            add_learner_cells(gid)
    nb = nbformat.v4.new_notebook(cells=cells, metadata=json.loads(json.dumps(release_nb.metadata)))
    return nb, learner_cells
