"""Hostile submissions, graded in one run alongside honest ones (the instructor's `make grade`).

Each hostile submission attacks the grader in one way. For each: it gets its fair score (what its honest
cells earn), its feedback says what happened, the run completes, every honest submission keeps full
marks, nothing outside its own folder changes, and grading it again gives the same grade. The run uses
the ch02 assignment (16 points: cosine 2, low-rank bilinear 2, concat 3, padding mask 2, masked softmax 3,
heads fusion 1, self-attention 3) with short limits so that the loops and the sleeper end quickly.
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers import sandbox_problem

ROOT = Path(__file__).resolve().parents[1]
A = "ch02_score_align_fuse"
SOURCE = ROOT / "autograde" / "source" / A / f"{A}.ipynb"
POINTS = {"cosine_scores": 2, "low_rank_bilinear_scores": 2, "concat_scores": 3, "padding_mask": 2,
          "masked_softmax": 3, "fuse_heads": 1, "self_attention": 3}
FULL = sum(POINTS.values())
LIMITS = ["--cell-timeout", "20", "--notebook-timeout", "60", "--memory", "3"]

SANDBOX = sandbox_problem()  # reported by the fixture below


def notebook(answers: dict | None = None, after: dict | None = None, drop: set = frozenset(),
             tests: dict | None = None) -> nbformat.NotebookNode:
    """The instructor's notebook (right answers) with answer cells replaced, cells added after a grade id,
    cells dropped, or test cells rewritten."""
    nb = nbformat.read(SOURCE, as_version=4)
    cells = []
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in drop:
            continue
        if answers and gid in answers:
            cell.source = answers[gid]
        if tests and gid in tests:
            cell.source = tests[gid]
        cells.append(cell)
        for source in (after or {}).get(gid, []):
            cells.append(nbformat.v4.new_code_cell(source))
    nb.cells = cells
    return nb


def right(gid: str) -> str:
    return next(c.source for c in nbformat.read(SOURCE, as_version=4).cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def wrong(gid: str) -> str:
    """The right answer, then the function rebound to return twice its value (right shape, wrong numbers)."""
    return right(gid) + f"\n_right_{gid} = {gid}\n{gid} = lambda *a, **k: _right_{gid}(*a, **k) * 2\n"


def blank() -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "book" / "exercises" / f"{A}.ipynb", as_version=4)


def hostile_set(course: Path) -> dict[str, dict]:
    """name -> {notebook | file | files, score, message}. ``score`` is the fair score."""
    secret_paths = [course / "source" / A / f"{A}.ipynb", course / "gradebook.db",
                    course / "submitted" / "honest" / A / f"{A}.ipynb"]
    spy = (
        "found = []\n"
        f"for path in {[str(p) for p in secret_paths]!r}:\n"
        "    try:\n"
        "        found.append(len(open(path, 'rb').read()))\n"
        "    except OSError as error:\n"
        "        found.append(type(error).__name__)\n"
        "print('SPY', found)\n"
        "import resource, socket\n"
        "try:\n"
        "    socket.create_connection(('pypi.org', 443), timeout=5)\n"
        "    print('NETWORK open')\n"
        "except OSError as error:\n"
        "    print('NETWORK', type(error).__name__)\n"
        "print('LIMITS', resource.getrlimit(resource.RLIMIT_AS)[0] >> 20, resource.getrlimit(resource.RLIMIT_CPU)[0] > 0)\n"
    )
    vandal = (
        "import os, sqlite3\n"
        "done = []\n"
        f"for path in [{str(course / 'gradebook.db')!r}, {str(course / 'submitted' / 'honest' / A / (A + '.ipynb'))!r},\n"
        f"             {str(course / 'VANDAL.txt')!r}, {str(Path.home() / 'VANDAL.txt')!r}]:\n"
        "    try:\n"
        "        with open(path, 'w') as f:\n"
        "            f.write('{}')\n"
        "        done.append(path)\n"
        "    except OSError:\n"
        "        pass\n"
        "try:\n"
        f"    db = sqlite3.connect({str(course / 'gradebook.db')!r})\n"
        "    db.execute(\"update grade set auto_score = 0\")\n"
        "    db.commit()\n"
        "    done.append('gradebook rows')\n"
        "except Exception:\n"
        "    pass\n"
        "print('VANDAL', done)\n"
    )
    nb3 = nbformat.v4.downgrade(nbformat.read(SOURCE, as_version=4)) if hasattr(nbformat.v4, "downgrade") else None
    cases = {
        # honest ones
        "honest": dict(notebook=notebook(), score=FULL),
        "honest_too": dict(notebook=notebook(), score=FULL),
        "honest_blank": dict(notebook=blank(), score=0),
        # runaway code
        "infinite_loop": dict(notebook=notebook({"fuse_heads": "while True:\n    pass\n" + right("fuse_heads")}),
                              score=FULL - POINTS["fuse_heads"], message="was stopped"),
        "loop_ignoring_interrupts": dict(
            notebook=notebook({"masked_softmax": "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                                 "while True:\n    pass\n" + right("masked_softmax")}),
            score=FULL - POINTS["masked_softmax"], message="was stopped"),
        "memory_bomb": dict(notebook=notebook({"concat_scores": "x = bytearray(40 * 2**30)\n" + right("concat_scores")}),
                            score=FULL - POINTS["concat_scores"], message="ran out of memory"),
        "growing_list": dict(notebook=notebook(after={"setup": ["hoard = []\nwhile True:\n    hoard.append(bytearray(10**8))\n"]}),
                             score=FULL, message="ran out of memory"),
        "os_exit": dict(notebook=notebook(after={"test_padding_mask": ["import os\nos._exit(1)\n"]}),
                        score=FULL, message="stopped the Python kernel"),
        "sys_exit": dict(notebook=notebook({"cosine_scores": "import sys\nsys.exit(3)\n" + right("cosine_scores")}),
                         score=FULL - POINTS["cosine_scores"], message=""),
        "segfault": dict(notebook=notebook(after={"test_low_rank_bilinear_scores": ["import ctypes\nctypes.string_at(0)\n"]}),
                         score=FULL, message="stopped the Python kernel"),
        "sleeper": dict(notebook=notebook(after={"test_padding_mask": ["import time\ntime.sleep(100)\n"] * 6}),
                        score=sum(POINTS[g] for g in ("cosine_scores", "low_rank_bilinear_scores", "concat_scores", "padding_mask")),
                        message="the whole notebook may take"),
        # slow cells, then a crash: the new kernel's replay of what came before runs into the notebook's budget
        "slow_replay": dict(notebook=notebook(after={"test_low_rank_bilinear_scores": ["import time\ntime.sleep(18)\n"] * 2
                                                     + ["import os\nos._exit(1)\n"]}),
                            score=POINTS["cosine_scores"] + POINTS["low_rank_bilinear_scores"],
                            message="the whole notebook may take"),
        # cells tampered with
        "edited_tests": dict(notebook=notebook(answers={g: blank_answer(g) for g in POINTS},
                                               tests={f"test_{g}": "pass\n" for g in POINTS}),
                             score=0, message="had been edited"),
        "deleted_tests": dict(notebook=notebook(drop={f"test_{g}" for g in POINTS}), score=FULL, message="was missing; it was put back"),
        "deleted_answer": dict(notebook=notebook(drop={"fuse_heads"}), score=FULL - POINTS["fuse_heads"],
                               message="answer cell 'fuse_heads' was missing"),
        "cheating_metadata": dict(notebook=points_raised(), score=FULL - POINTS["cosine_scores"], message=""),
        # oracles patched
        "patched_allclose": dict(notebook=notebook({"cosine_scores": wrong("cosine_scores") + "\nimport torch, torch.testing\n"
                                                   "torch.allclose = lambda *a, **k: True\n"
                                                   "torch.testing.assert_close = lambda *a, **k: None\n"}),
                                 score=FULL - POINTS["cosine_scores"], message="torch.allclose"),
        "builtins_hijack": dict(notebook=notebook({"low_rank_bilinear_scores": wrong("low_rank_bilinear_scores") + "\nimport builtins, torch\n"
                                                  "builtins.all = lambda *a: True\nbuiltins.isinstance = lambda *a: True\n"
                                                  "torch.Tensor.allclose = lambda *a, **k: True\n"}),
                                score=FULL - POINTS["low_rank_bilinear_scores"], message="builtins"),
        "ipython_hooks": dict(notebook=notebook({"concat_scores": wrong("concat_scores") + "\nip = get_ipython()\n"
                                                "ip.set_custom_exc((AssertionError,), lambda *a, **k: None)\n"
                                                "ip.showtraceback = lambda *a, **k: None\n"
                                                "ip.input_transformers_cleanup.append(lambda lines: ['pass\\n'])\n"}),
                              score=FULL - POINTS["concat_scores"], message="IPython"),
        "imports_the_reference": dict(notebook=notebook({"self_attention": "from solutions.attention import attention as self_attention\n"}),
                                      score=FULL - POINTS["self_attention"], message="reference"),
        # reaching outside
        "reads_hidden_tests": dict(notebook=notebook(after={"setup": [spy]}), score=FULL, message=""),
        "writes_outside": dict(notebook=notebook(after={"setup": [vandal]}), score=FULL, message=""),
        "prints_hidden_tests": dict(notebook=notebook(after={"test_self_attention": ["print('\\n'.join(In))\n"]}),
                                    score=FULL, message=""),
        "hidden_marker_in_answer": dict(notebook=notebook({"fuse_heads": "# ### BEGIN HIDDEN TESTS\n" + right("fuse_heads")}),
                                        score=FULL, message=""),
        "warns_on_stderr": dict(notebook=notebook({"fuse_heads": right("fuse_heads") + "\nimport sys, warnings\n_fuse = fuse_heads\n\n"
                                                   "def fuse_heads(*args, **kwargs):\n    print('debugging', file=sys.stderr)\n"
                                                   "    warnings.warn('a harmless warning')\n    return _fuse(*args, **kwargs)\n"}),
                                score=FULL, message=""),
        "fifty_megabytes": dict(notebook=notebook(after={"setup": ["print('x' * (50 * 1024 * 1024))\n"]}),
                                score=FULL, message="the rest was cut"),
        # broken files
        "malformed_json": dict(file=b'{"cells": [', score=0, message="could not be read"),
        "empty_file": dict(file=b"", score=0, message="empty file"),
        "wrong_file_name": dict(files={"homework.ipynb": nbformat.writes(notebook()).encode()}, score=FULL,
                                message="was called 'homework.ipynb'"),
        "missing_notebook": dict(files={"notes.txt": b"I forgot"}, score=0, message="no notebook was submitted"),
        "empty_folder": dict(files={}, score=0, message="no notebook was submitted"),
    }
    if nb3 is not None:
        cases["nbformat_3"] = dict(file=nbformat.writes(nb3, version=3).encode(), score=FULL, message="nbformat 3")
    return cases


def blank_answer(gid: str) -> str:
    return next(c.source for c in blank().cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def points_raised() -> nbformat.NotebookNode:
    """Its cosine_scores answer is wrong, and it marks that answer cell as worth 100 points, graded, locked."""
    nb = notebook({"cosine_scores": wrong("cosine_scores")})
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "cosine_scores":
            cell.metadata["nbgrader"].update(points=100, grade=True)
    return nb


def tree_digest(folder: Path, skip: set[str]) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.relative_to(folder).parts[0] not in skip}


def grade(course: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "autograde" / "grade.py"), "--course-dir", str(course),
                           "--workers", "2", "--no-progress", *LIMITS, *args],
                          capture_output=True, text=True, timeout=1500)


def rows(course: Path) -> dict[str, dict]:
    with (course / "grading_report.csv").open() as handle:
        return {r["student"]: r for r in csv.DictReader(handle)}


OUTPUTS = {"autograded", "feedback", "release", "gradebook.db", "grades.csv", "grading_report.csv"}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    # Not a skip: grading refuses to run without the sandbox, so a machine without one cannot grade at all.
    assert SANDBOX is None, f"the grading sandbox cannot run on this machine: {SANDBOX}"
    course = tmp_path_factory.mktemp("hostile")
    shutil.copy(ROOT / "autograde" / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "autograde" / "source" / A, course / "source" / A)
    cases = hostile_set(course)
    for name, case in cases.items():
        folder = course / "submitted" / name / A
        folder.mkdir(parents=True)
        if "notebook" in case:
            nbformat.write(case["notebook"], folder / f"{A}.ipynb")
        elif "file" in case:
            (folder / f"{A}.ipynb").write_bytes(case["file"])
        for fname, data in case.get("files", {}).items():
            (folder / fname).write_bytes(data)
    before = tree_digest(course, OUTPUTS)
    first = grade(course)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    report = rows(course)
    after = tree_digest(course, OUTPUTS)
    # Run again: nothing changed, so nothing is graded; then change three submissions and regrade them.
    again = grade(course)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    cached = rows(course)
    changed = ["patched_allclose", "os_exit", "segfault", "growing_list", "ipython_hooks", "honest"]
    for name in changed:
        path = course / "submitted" / name / A / f"{A}.ipynb"
        path.write_bytes(path.read_bytes() + b"\n")
    third = grade(course)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    return dict(course=course, cases=cases, report=report, before=before, after=after, cached=cached,
                regraded=rows(course), changed=changed, log=first.stdout)


def _names():
    return sorted(hostile_set(Path("/course")))


@pytest.mark.parametrize("name", _names())
def test_fair_score_and_message(graded, name):
    case, row = graded["cases"][name], graded["report"][name]
    assert row["score"] != "", f"{name}: the grader itself failed: {row['problems']}"
    assert float(row["score"]) == case["score"], f"{name}: {row['score']} / 16, fair is {case['score']}; {row['problems']}"
    page = graded["course"] / "feedback" / name / A / f"{A}.html"
    assert page.is_file(), f"{name}: no feedback page"
    text = page.read_text()
    if case.get("message"):
        assert case["message"] in text, f"{name}: the feedback does not say {case['message']!r}"
    assert len(text) < 2_000_000, f"{name}: feedback page of {len(text)} characters"


def test_honest_submissions_keep_full_marks(graded):
    for name in ("honest", "honest_too"):
        assert float(graded["report"][name]["score"]) == FULL


def test_nothing_outside_the_submissions_own_output_changes(graded):
    assert graded["before"] == graded["after"], "a submission changed the course folder"
    assert not (Path.home() / "VANDAL.txt").exists()


def test_sandbox_hides_the_course(graded):
    """The spy could read none of the instructor notebook, the gradebook, another student's notebook, had no
    network and ran under the limits; the vandal could write nowhere outside its scratch folder."""
    nb = nbformat.read(graded["course"] / "autograded" / "reads_hidden_tests" / A / f"{A}.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "SPY ['FileNotFoundError', 'FileNotFoundError', 'FileNotFoundError']" in printed, printed[:500]
    assert "NETWORK open" not in printed and "NETWORK " in printed, "the sandbox has no network"
    assert "LIMITS 3072 True" in printed, "the kernel runs under the memory (3 GiB here) and CPU-time limits"
    nb = nbformat.read(graded["course"] / "autograded" / "writes_outside" / A / f"{A}.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "VANDAL []" in printed, printed[:500]


def test_no_hidden_test_reaches_any_feedback(graded):
    source = nbformat.read(SOURCE, as_version=4)
    sys.path.insert(0, str(ROOT / "autograde"))
    from classroom.gradebook import hidden_lines

    secret = hidden_lines(source)
    assert secret
    for page in (graded["course"] / "feedback").rglob("*.html"):
        text = page.read_text()
        leaked = [line for line in secret if line in text]
        assert not leaked, f"{page}: {leaked[:3]}"


def test_unchanged_submissions_are_not_graded_again_and_changed_ones_get_the_same_grade(graded):
    assert all(r["regraded"] == "no" for r in graded["cached"].values()), "a second run regraded unchanged work"
    for name, row in graded["regraded"].items():
        assert row["score"] == graded["report"][name]["score"], name
        assert row["regraded"] == ("yes" if name in graded["changed"] else "no"), name


def test_the_run_reports_a_table(graded):
    assert "student" in graded["log"] and "problems" in graded["log"]
    assert (graded["course"] / "feedback" / f"summary_{A}.png").is_file()
    assert (graded["course"] / "grades.csv").is_file()
