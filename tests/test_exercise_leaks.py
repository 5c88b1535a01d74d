"""No chapter prints an exercise's answer: a fast check of the chapters' sources, without building the book.

What a chapter page shows is its cells (markdown, code, stored outputs) and the code its fold-outs include
from the course package (``literalinclude`` with ``:pyobject:``). No run of three consecutive lines of any
answer's solution region (COURSE.md, "Exercise rules") may appear there — also when the answer is written
like the reference code: an exercise asks for something the chapter does not print (a variant, a
generalisation, another interface). tests/test_book.py checks the same on the built HTML.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from assignment_text import SOLUTION, normalise, secret_snippets

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.parent.name for p in (ROOT / "autograde" / "source").glob("*/*.ipynb"))
PAGES = sorted((ROOT / "book").glob("*.ipynb")) + sorted((ROOT / "book").glob("*.md"))
INCLUDE = re.compile(r"```\{literalinclude\}\s+(\S+)[^\n]*\n((?::[\w-]+:[^\n]*\n)*)")


def pyobject_source(path: Path, qualname: str) -> str:
    """The source of a function or class (``Class.method`` allowed) as literalinclude's :pyobject: shows it."""
    source = path.read_text()
    body, node = ast.parse(source).body, None
    for part in qualname.split("."):
        node = next(n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                    and n.name == part)
        body = node.body
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return "\n".join(source.splitlines()[first - 1:node.end_lineno])


def included(page: Path, text: str) -> list[str]:
    """The code that the literalinclude directives of ``text`` (on ``page``) put on the page."""
    out = []
    for match in INCLUDE.finditer(text):
        path = (page.parent / match.group(1)).resolve()
        options = dict(re.findall(r":([\w-]+):\s*([^\n]*)", match.group(2)))
        out.append(pyobject_source(path, options["pyobject"].strip()) if "pyobject" in options else path.read_text())
    return out


def page_text(page: Path) -> str:
    """Everything a chapter page shows, normalised: cell sources, stored text outputs, included code."""
    if page.suffix == ".md":
        parts = [page.read_text()]
    else:
        parts = []
        for cell in nbformat.read(page, as_version=4).cells:
            parts.append(cell.source)
            for output in cell.get("outputs", []):
                text = output.get("text") or output.get("data", {}).get("text/plain", "")
                parts.append(text if isinstance(text, str) else "".join(text))
    return normalise("\n".join(parts + included(page, "\n".join(parts))))


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return {page.name: page_text(page) for page in PAGES}


def solution_snippets(assignment: str) -> dict[str, set[str]]:
    """{grade id of an answer cell: its runs of three lines (the region itself when shorter)}."""
    nb = nbformat.read(ROOT / "autograde" / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    found = {}
    for cell in nb.cells:
        if SOLUTION.search(cell.source):
            only = nbformat.v4.new_code_cell("".join(f"### BEGIN SOLUTION\n{region}### END SOLUTION\n"
                                                     for region in SOLUTION.findall(cell.source)))
            found[cell.metadata.get("nbgrader", {}).get("grade_id", "?")] = secret_snippets(
                nbformat.v4.new_notebook(cells=[only]))
    return found


def test_the_pages_include_the_course_code(pages):
    assert len(pages) >= 8 and any("def " in text for text in pages.values()), "the fold-outs are resolved"
    assert "def masked_softmax(" in pages["ch02_score_align_fuse.ipynb"], "ch02 shows the course's masked_softmax"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_no_chapter_prints_an_answer(assignment, pages):
    snippets = solution_snippets(assignment)
    assert len(snippets) >= 4 and all(snippets.values()), f"{assignment}: every answer cell has a solution region"
    for answer, runs in snippets.items():
        for name, text in pages.items():
            shown = sorted(run for run in runs if run in text)
            assert not shown, f"{name} prints the answer of {assignment}'s {answer}: {shown[0]!r}"


def test_the_check_finds_an_answer_that_a_page_prints(tmp_path):
    """An answer copied from a fold-out is found, however it is indented."""
    nb = nbformat.read(ROOT / "autograde" / "source" / ASSIGNMENTS[0] / f"{ASSIGNMENTS[0]}.ipynb", as_version=4)
    answer, runs = next(iter(solution_snippets(ASSIGNMENTS[0]).items()))
    region = next(SOLUTION.search(c.source).group(1) for c in nb.cells
                  if c.metadata.get("nbgrader", {}).get("grade_id") == answer)
    page = tmp_path / "copied.md"
    page.write_text("A page that prints an answer:\n\n```python\ndef f():\n" +
                    "".join(f"        {line.strip()}\n" for line in region.splitlines()) + "```\n")
    assert any(run in page_text(page) for run in runs)
