"""Record one graded submission in the gradebook and write its feedback page, with nbgrader's own code.

Only the process that collects the results writes (nbgrader's SQLite gradebook takes one writer at a
time; PostgreSQL would take several, but one writer keeps both the same). The steps are those of
``nbgrader autograde`` after execution (``LimitOutput``, ``SaveAutoGrades``, ``AssignLatePenalties``) and of
``nbgrader generate_feedback`` (``GetGrades``, ``ClearHiddenTests``, the ``feedback`` template), run in this
process instead of a new ``nbgrader`` process per student; registering an assignment
(``GenerateAssignment``) and exporting ``grades.csv`` (``CsvExportPlugin``) run here too. Before the page is
written, every line of a hidden test that appears in an output (printed by the learner's code, say) is
replaced by a notice.
"""
from __future__ import annotations

import functools
import json
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import nbformat
import sqlalchemy
from jupyter_core.paths import jupyter_config_dir
from nbconvert.exporters import HTMLExporter, TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader import api as nbgrader_api, utils
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.converters import GenerateAssignment
from nbgrader.coursedir import CourseDirectory
from nbgrader.dbutil import ALEMBIC_DIR
from nbgrader.plugins import CsvExportPlugin
from nbgrader.preprocessors import AssignLatePenalties, ClearHiddenTests, GetGrades, LimitOutput, SaveAutoGrades
from sqlalchemy.exc import SAWarning
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", re.S)
REDACTED = "[a line of a hidden test was removed from this output]"
MANIFEST = ".classroom.json"  # beside the autograded notebook: what was graded, for incremental runs
IMG_WITHOUT_ALT = re.compile(r"<img(?![^>]*\balt=)", re.I)


def load_course(course_dir: Path, db_url: str | None = None) -> tuple[Config, CourseDirectory]:
    """nbgrader's configuration of the course (its ``nbgrader_config.py``), with an optional gradebook URL."""
    config = Config()
    if (Path(course_dir) / "nbgrader_config.py").is_file():
        config = PyFileConfigLoader("nbgrader_config.py", path=str(course_dir)).load_config()
    config.CourseDirectory.root = str(course_dir)
    if db_url:
        config.CourseDirectory.db_url = db_url
    return config, CourseDirectory(config=config)


def hidden_lines(source_nb: nbformat.NotebookNode, min_length: int = 12) -> list[str]:
    """The lines of the hidden tests long enough to be recognised in an output."""
    lines = set()
    for cell in source_nb.cells:
        for block in HIDDEN.findall(cell.source):
            lines.update(line.strip() for line in block.splitlines() if len(line.strip()) >= min_length)
    return sorted(lines, key=len, reverse=True)


def redact(nb: nbformat.NotebookNode, secret: list[str]) -> int:
    """Replace each output line that contains a hidden-test line; the number of lines replaced."""
    if not secret:
        return 0
    count = 0

    def clean(text: str) -> str:
        nonlocal count
        out = []
        for line in text.splitlines(keepends=True):
            if any(s in line for s in secret):
                count += 1
                line = REDACTED + ("\n" if line.endswith("\n") else "")
            out.append(line)
        return "".join(out)

    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = clean(output["text"])
            for key, value in output.get("data", {}).items():
                if isinstance(value, str):
                    output["data"][key] = clean(value)
            if "traceback" in output:
                output["traceback"] = [clean(line) for line in output["traceback"]]
            if "evalue" in output:
                output["evalue"] = clean(output["evalue"])
    return count


def warnings_are_not_failures(nb: nbformat.NotebookNode) -> int:
    """Turn the stderr of test cells into stdout; the number of outputs changed.

    nbgrader scores a test cell 0 when it wrote anything to stderr, so a library's warning (PyTorch's, say)
    or a learner's debug print to stderr would fail a test that passed. Here a test fails only by raising:
    its error output, or the error status its kernel reported (see :mod:`.execute`)."""
    changed = 0
    for cell in nb.cells:
        if cell.cell_type == "code" and utils.is_grade(cell):
            for output in cell.outputs:
                if output.get("output_type") == "stream" and output.get("name") == "stderr":
                    output["name"] = "stdout"
                    changed += 1
    return changed


class FeedbackExporter(HTMLExporter):
    """nbconvert's HTML exporter without its closing pass, which parses the finished page again with
    BeautifulSoup only to add alt text to images and tab stops to JupyterLab cells (the feedback template
    has none): that pass cost more than half of each page. Images without alt text get it here."""

    def from_notebook_node(self, nb, resources=None, **kw):
        info = nb.metadata.get("language_info", {})
        lexer = info.get("pygments_lexer", info.get("name"))
        self.register_filter("highlight_code", self.filters.get("highlight_code",
                                                                Highlight2HTML(pygments_lexer=lexer, parent=self)))
        resources = self._init_resources(resources)
        self.register_filter("filter_data_type", WidgetsDataTypeFilter(notebook_metadata=self._nb_metadata,
                                                                       parent=self, resources=resources))
        html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
        return IMG_WITHOUT_ALT.sub('<img alt="a figure drawn by this notebook"', html), resources



@functools.cache
def alembic_head() -> str:
    """The newest revision of nbgrader's gradebook schema, read in this process. nbgrader stamps a new
    gradebook with it by running the ``alembic`` program (a Python process of 2–5 s); the answer is the
    same: the head of nbgrader's own migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(ALEMBIC_DIR).get_current_head()


nbgrader_api.get_alembic_version = alembic_head


@functools.cache
def _engine(url: str, **options):
    """One SQLAlchemy engine per gradebook URL for this process. nbgrader makes a new engine for every
    ``Gradebook`` it opens (five per recorded submission), and each new engine starts with an empty cache
    of compiled SQL, so the same queries were compiled again for every student. ``Gradebook.close`` still
    disposes of the engine's connections; the engine and its cache stay."""
    return sqlalchemy.create_engine(url, **options)


nbgrader_api.create_engine = _engine


@dataclass
class Recorded:
    score: float
    max_score: float
    passed: dict[str, bool]  # test cell grade id -> passed


class Recorder:
    """Writes results for one course: ``autograded/``, the gradebook, ``feedback/``."""

    def __init__(self, course_dir: Path, db_url: str | None = None):
        self.config, self.coursedir = load_course(course_dir, db_url)
        self.course_dir = Path(course_dir)
        self.db_url = self.coursedir.db_url
        self.exporter = FeedbackExporter(config=self.config, template_name="feedback",
                                     extra_template_basedirs=[_nbgrader_path("server_extensions", "formgrader", "templates")],
                                     extra_template_paths=[_nbgrader_path("server_extensions", "formgrader", "static",
                                                                          "node_modules", "bootstrap", "dist", "css")])
        self.autograde_steps = [LimitOutput(config=self.config), SaveAutoGrades(config=self.config),
                                AssignLatePenalties(config=self.config)]
        self.feedback_steps = [GetGrades(config=self.config), CSSHTMLHeaderPreprocessor(config=self.config),
                               ClearHiddenTests(config=self.config)]

    def register(self, assignment: str) -> str | None:
        """``nbgrader generate_assignment --force``: the assignment and its test cells in the gradebook,
        ``release/`` rewritten. None when it worked, else what went wrong (nbgrader's log)."""
        with utils.temp_attrs(self.coursedir, assignment_id=assignment):
            step = GenerateAssignment(coursedir=self.coursedir, config=self.config)
            step.force, step.create_assignment = True, True
            done = utils.capture_log(step)
        return None if done["success"] else f"{done.get('log', '')}{done.get('error', '')}"

    def export(self, path: Path) -> None:
        """``nbgrader export``: every grade of the gradebook into a CSV file."""
        with Gradebook(self.db_url, self.coursedir.course_id) as gb:
            CsvExportPlugin(config=self.config, to=str(path)).export(gb)

    def folder(self, kind: str, student: str, assignment: str) -> Path:
        return self.course_dir / kind / student / assignment

    def is_current(self, student: str, assignment: str, fingerprint: str) -> bool:
        """Whether this exact submission was graded before and its grade is in the gradebook."""
        manifest = self.folder("autograded", student, assignment) / MANIFEST
        if not manifest.is_file() or json.loads(manifest.read_text()).get("fingerprint") != fingerprint:
            return False
        with Gradebook(self.db_url, self.coursedir.course_id) as gb:
            try:
                gb.find_submission(assignment, student)
            except MissingEntry:
                return False
        return (self.folder("feedback", student, assignment) / f"{assignment}.html").is_file()

    def record(self, student: str, assignment: str, nb: nbformat.NotebookNode, problems: list[str],
               secret: list[str], fingerprint: str, seconds: float) -> Recorded:
        submitted = self.folder("submitted", student, assignment)
        timestamp = self.coursedir.get_existing_timestamp(str(submitted))
        with Gradebook(self.db_url, self.coursedir.course_id) as gb, warnings.catch_warnings():
            warnings.simplefilter("ignore", SAWarning)  # nbgrader's own autoflush notices
            gb.update_or_create_student(student)
            if timestamp:
                gb.update_or_create_submission(assignment, student, timestamp=timestamp)
            else:
                gb.update_or_create_submission(assignment, student)
        resources = {"nbgrader": {"notebook": assignment, "assignment": assignment, "student": student,
                                  "db_url": self.db_url}}
        warnings_are_not_failures(nb)
        for step in self.autograde_steps:
            nb, resources = step.preprocess(nb, resources)

        autograded = self.folder("autograded", student, assignment)
        if autograded.exists():
            shutil.rmtree(autograded)
        autograded.mkdir(parents=True)
        if (submitted / "timestamp.txt").is_file():
            shutil.copy2(submitted / "timestamp.txt", autograded / "timestamp.txt")
        nbformat.write(nb, autograded / f"{assignment}.ipynb")

        # The feedback page: the grader's notes first, then the graded notebook without hidden tests.
        page = nbformat.from_dict(json.loads(json.dumps(nb)))
        redacted = redact(page, secret)
        if redacted:
            problems = problems + [f"{redacted} line(s) of hidden tests printed by your code were removed from this page"]
        if problems:
            notes = "\n".join(f"- {p}" for p in problems)
            page.cells.insert(0, nbformat.v4.new_markdown_cell(f"## Notes from the grader\n\n{notes}\n"))
        resources.update(config_dir=jupyter_config_dir(), inlining={})
        for step in self.feedback_steps:
            page, resources = step.preprocess(page, resources)
        html, _ = self.exporter.from_notebook_node(page, resources=dict(resources))
        feedback = self.folder("feedback", student, assignment)
        feedback.mkdir(parents=True, exist_ok=True)
        (feedback / f"{assignment}.html").write_text(html, encoding="utf-8")

        passed = {}
        for cell in nb.cells:
            if utils.is_grade(cell) and cell.cell_type == "code":
                score, max_score = utils.determine_grade(cell, None)
                passed[cell.metadata.nbgrader.grade_id] = score == max_score
        with Gradebook(self.db_url, self.coursedir.course_id) as gb:
            submission = gb.find_submission(assignment, student)
            recorded = Recorded(float(submission.score), float(submission.max_score), passed)
        (autograded / MANIFEST).write_text(json.dumps(
            {"fingerprint": fingerprint, "score": recorded.score, "max_score": recorded.max_score,
             "problems": problems, "seconds": round(seconds, 2), "passed": passed}, indent=1))
        return recorded


def _nbgrader_path(*parts: str) -> str:
    import nbgrader

    return str(Path(nbgrader.__file__).parent.joinpath(*parts))
