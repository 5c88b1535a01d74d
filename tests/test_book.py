"""The book builds with -W (warnings are errors), holds every page with its figures and tables, and
shows no solution region and no hidden test of an exercise anywhere in the HTML or its sources."""
from __future__ import annotations

import html as html_lib
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from assignment_text import normalise, secret_snippets
from helpers import build_book

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


CHAPTERS = sorted(f for f in toc_files() if re.fullmatch(r"book/(ch\d\d|appendix)_\w+", f))
EXERCISES = sorted(f for f in toc_files() if f.startswith("book/exercises/"))


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    return build_book(tmp_path_factory.mktemp("book"))


def test_toc_lists_every_chapter_and_exercise():
    on_disk = {f"book/{p.stem}" for p in (ROOT / "book").glob("*.ipynb")}
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



def test_every_page_states_the_licences_and_credits_the_outline(html):
    for page in toc_files():
        text = (html / f"{page}.html").read_text()
        footer = re.search(r'<footer class="bd-footer-content.*?</footer>', text, re.S)
        assert footer, f"{page} has no footer"
        footer = footer.group(0)
        assert "creativecommons.org/licenses/by-sa/4.0" in footer and "CC BY-SA 4.0" in footer, page
        assert "license/mit" in footer and "MIT" in footer, page
        assert '<span lang="zh-Hans">「【AI】注意力机制与深度学习模型」</span>' in footer, page
        assert "The course authors" not in text, page
    for name in ("LICENSE", "LICENSE-CONTENT", "CONTRIBUTORS"):
        assert (ROOT / name).is_file(), name
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert "Attribution-ShareAlike 4.0 International" in (ROOT / "LICENSE-CONTENT").read_text()
    assert "注意力机制与深度学习模型" in (ROOT / "CONTRIBUTORS").read_text()


def test_a_jupyterhub_button_appears_once_a_hub_is_set(html, tmp_path):
    exercise = "book/exercises/ch02_score_align_fuse.html"
    assert "/hub/user-redirect/git-pull" not in (html / exercise).read_text(), "no hub is set: no button"
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["launch_buttons"]["jupyterhub_url"] = "https://hub.example.edu"
    extensions = config["sphinx"]["local_extensions"]  # relative to the config file: point at the book's
    config["sphinx"]["local_extensions"] = {name: str(ROOT / path) for name, path in extensions.items()}
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config, allow_unicode=True))
    built = build_book(tmp_path / "out", config=tmp_path / "_config.yml")
    page = (built / exercise).read_text()
    assert "https://hub.example.edu/hub/user-redirect/git-pull?" in page
    assert "attention-mechanisms" in page.split("https://hub.example.edu/hub/user-redirect/git-pull?", 1)[1][:400]


def test_bibliography_links_every_arxiv_id_and_doi(html):
    bib = (ROOT / "book" / "references.bib").read_text()
    assert not re.search(r"arXiv:\s*\d", bib), "arXiv ids go in eprint fields (then they become links)"
    page = (html / "book" / "bibliography.html").read_text()
    eprints = re.findall(r"^\s*eprint\s*=\s*\{([^}]+)\}", bib, re.M)
    dois = re.findall(r"^\s*doi\s*=\s*\{([^}]+)\}", bib, re.M)
    assert len(eprints) >= 30 and dois
    for eprint in eprints:
        assert f'href="https://arxiv.org/abs/{eprint}"' in page, eprint
    for doi in dois:
        assert f'href="https://doi.org/{doi}"' in page, doi


CITATION = re.compile(r'<a class="reference internal" href="bibliography\.html#(id\d+)"[^>]*>(.*?)</a>', re.S)


def bibliography_labels(html: Path) -> dict[str, str]:
    """Anchor of each bibliography entry → its label ("Cho et al. 2014a")."""
    page = (html / "book" / "bibliography.html").read_text()
    return dict(re.findall(r'<div class="citation" id="(id\d+)"[^>]*>\s*<span class="label">'
                           r'<span class="fn-bracket">\[</span>(?:<a[^>]*>)?([^<]+)<', page))


def test_citations_are_author_year_and_tell_same_year_papers_apart(html):
    """A citation in the text ends with the year of its entry's label, letter included: the two Cho et al.
    papers of 2014 read (2014a) and (2014b) in chapter 4 and in the bibliography alike."""
    labels = bibliography_labels(html)
    assert len(labels) >= 10, labels
    seen = {}
    for chapter in CHAPTERS:
        for anchor, text in CITATION.findall((html / f"{chapter}.html").read_text()):
            text = html_lib.unescape(re.sub(r"<[^>]+>", "", text)).strip()
            assert anchor in labels, f"{chapter}: a citation links to #{anchor}, which is no bibliography entry"
            year = re.search(r"(\d{4}[a-z]?)$", labels[anchor]).group(1)
            assert re.search(rf"(^|\D){year}$", text), f"{chapter}: '{text}' cites [{labels[anchor]}]"
            seen.setdefault(chapter, set()).add(labels[anchor])
    cho = {label for label in seen.get("book/ch04_bahdanau_attention", ()) if label.startswith("Cho et al. 2014")}
    assert cho == {"Cho et al. 2014a", "Cho et al. 2014b"}, f"chapter 4 cites {cho}"

def exercise_secrets() -> set[str]:
    """Runs of lines from the solution regions of every assignment, and from the hidden tests where the
    published reference code lacks them. A solution region counts even when it reads like the reference
    code: a page that prints it (a fold-out including that code) gives the answer away."""
    public = normalise("\n".join(p.read_text() for p in (ROOT / "solutions").rglob("*.py")))
    secrets: set[str] = set()
    for source in (ROOT / "autograde" / "source").glob("*/*.ipynb"):
        nb = nbformat.read(source, as_version=4)
        secrets |= secret_snippets(nb, kinds=("solution",))
        secrets |= {snippet for snippet in secret_snippets(nb, kinds=("hidden",)) if snippet not in public}
    return secrets


def leaked(path: Path, secrets: set[str]) -> list[str]:
    """The secrets that the built file ``path`` (HTML, notebook or text) shows."""
    text = path.read_text(errors="replace")
    if "BEGIN SOLUTION" in text or "BEGIN HIDDEN TESTS" in text:
        return ["a BEGIN SOLUTION / BEGIN HIDDEN TESTS marker"]
    if path.suffix == ".ipynb":
        text = "\n".join(cell.source for cell in nbformat.reads(text, as_version=4).cells)
    elif path.suffix == ".html":  # HTML splits code into highlighted spans and escapes quotes
        text = html_lib.unescape(re.sub(r"<[^>]+>", "", text))
    text = normalise(text)
    return [snippet for snippet in secrets if snippet in text]


def test_the_leak_check_tells_instructor_from_student_notebooks(tmp_path):
    secrets = exercise_secrets()
    for source in (ROOT / "autograde" / "source").glob("*/*.ipynb"):
        nb = nbformat.read(source, as_version=4)
        for cell in nb.cells:  # an instructor notebook whose markers were stripped still leaks
            cell.source = cell.source.replace("### BEGIN SOLUTION", "").replace("### BEGIN HIDDEN TESTS", "")
        nbformat.write(nb, tmp_path / source.name)
        assert leaked(tmp_path / source.name, secrets), f"{source.name}: the check misses its solutions"
        solutions = secret_snippets(nbformat.read(source, as_version=4), kinds=("solution",))
        assert solutions and solutions <= secrets, f"{source.name}: every answer's solution region is checked"
        assert not leaked(ROOT / "book" / "exercises" / source.name, secrets)


def test_no_solution_or_hidden_test_anywhere_in_the_book(html):
    secrets = exercise_secrets()
    assert secrets, "the instructor notebooks define solution regions and hidden tests"
    for path in html.rglob("*"):
        if path.is_file() and path.suffix in {".html", ".ipynb", ".txt", ".md", ".js"}:
            found = leaked(path, secrets)
            assert not found, f"{path.relative_to(html)} shows exercise secrets: {found[:2]}"


def test_exercise_pages_are_the_student_notebooks(html):
    for page in EXERCISES:
        built = nbformat.read(html / "_sources" / f"{page}.ipynb", as_version=4)
        student = nbformat.read(ROOT / f"{page}.ipynb", as_version=4)
        assert [c.source for c in built.cells] == [c.source for c in student.cells]
