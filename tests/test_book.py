"""The book builds with -W (warnings are errors), holds every page with its figures and tables, and
shows no solution region and no hidden test of an exercise anywhere in the HTML or its sources."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from assignment_text import secret_lines

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


CHAPTERS = sorted(f for f in toc_files() if re.fullmatch(r"book/ch\d\d_\w+", f))
EXERCISES = sorted(f for f in toc_files() if f.startswith("book/exercises/"))


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "--path-output", str(out),
         "-W", "--keep-going"],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, f"the book does not build cleanly with -W:\n{done.stdout[-6000:]}{done.stderr[-4000:]}"
    return out / "_build" / "html"


def test_toc_lists_every_chapter_and_exercise():
    on_disk = {f"book/{p.stem}" for p in (ROOT / "book").glob("ch*.ipynb")}
    assert set(CHAPTERS) == on_disk and CHAPTERS, "every chapter notebook is in _toc.yml"
    released = {f"book/exercises/{p.stem}" for p in (ROOT / "book" / "exercises").glob("*.ipynb")}
    assert set(EXERCISES) == released and EXERCISES, "every exercise notebook is in _toc.yml"


def test_every_page_is_built(html):
    for page in toc_files():
        assert (html / f"{page}.html").is_file(), f"{page} is missing from the built book"
    assert "Attention" in (html / "book" / "intro.html").read_text()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_has_equations_figures_tables_and_citations(html, chapter):
    page = (html / f"{chapter}.html").read_text()
    assert re.search(r'class="math[^"]*"', page), "numbered equations render"
    assert re.search(r'<img[^>]+src="[^"]*_images/[^"]+\.png"', page), "figures are stored in the notebook"
    assert "<table" in page, "a table measured in the notebook"
    assert 'href="bibliography.html#id' in page or "bibliography.html#" in page, "citations link to the bibliography"
    assert "exercises/" in page, "the chapter links to its exercises"
    for image in re.findall(r'src="(?:\.\./)*(_images/[^"]+\.png)"', page):
        assert (html / image).is_file(), f"{image} is referenced but not built"


def test_no_solution_or_hidden_test_anywhere_in_the_book(html):
    public = "\n".join(p.read_text() for p in (ROOT / "solutions").glob("*.py"))
    secrets: set[str] = set()
    for source in (ROOT / "autograde" / "source").glob("*/*.ipynb"):
        secrets |= secret_lines(nbformat.read(source, as_version=4))
    # The reference implementations are published with the book; a line they share is not a secret.
    secrets = {line for line in secrets if line not in public}
    assert secrets, "the instructor notebooks define solution regions and hidden tests"
    built = [p for p in html.rglob("*") if p.suffix in {".html", ".ipynb", ".txt", ".md", ".js"} and p.is_file()]
    for path in built:
        text = path.read_text(errors="replace")
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, path
        if path.suffix in {".ipynb", ".md"}:
            leaked = [line for line in secrets if line in text]
        else:  # HTML escapes quotes and splits code into highlighted spans: compare the plain text
            plain = re.sub(r"<[^>]+>", "", text).replace("&quot;", '"').replace("&#39;", "'").replace("&gt;", ">") \
                .replace("&lt;", "<").replace("&amp;", "&")
            leaked = [line for line in secrets if line in plain]
        assert not leaked, f"{path.relative_to(html)} shows exercise secrets: {leaked[:3]}"


def test_exercise_pages_are_the_student_notebooks(html):
    for page in EXERCISES:
        built = nbformat.read(html / "_sources" / f"{page}.ipynb", as_version=4)
        student = nbformat.read(ROOT / f"{page}.ipynb", as_version=4)
        assert [c.source for c in built.cells] == [c.source for c in student.cells]
