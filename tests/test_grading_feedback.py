"""The grader's bookkeeping without a kernel: registering an assignment and exporting grades in-process
(nbgrader's own converter and export plugin), and the feedback page (nbgrader's template, hidden tests
redacted, images with alt text)."""
from __future__ import annotations

import base64
import csv
import re
import shutil
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
A = "ch02_score_align_fuse"
sys.path.insert(0, str(ROOT / "autograde"))
from classroom.gradebook import REDACTED, Recorder, hidden_lines  # noqa: E402

# a 1x1 PNG
PIXEL = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5dd4f9c0000000049454e44ae426082")).decode()


def course(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    root.mkdir()
    shutil.copy(ROOT / "autograde" / "nbgrader_config.py", root)
    shutil.copytree(ROOT / "autograde" / "source" / A, root / "source" / A)
    return root


def test_registering_writes_the_release_and_a_fresh_gradebook(tmp_path):
    root = course(tmp_path)
    recorder = Recorder(root)
    assert recorder.register(A) is None
    released = nbformat.read(root / "release" / A / f"{A}.ipynb", as_version=4)
    assert not any("### BEGIN HIDDEN TESTS" in c.source for c in released.cells)
    assert "BEGIN SOLUTION" not in "".join(c.source for c in released.cells)
    assert (root / "gradebook.db").is_file()
    assert recorder.register("no_such_assignment") is not None  # nbgrader's failure comes back as text


def test_a_recorded_submission_is_exported_and_its_page_hides_the_hidden_tests(tmp_path):
    root = course(tmp_path)
    recorder = Recorder(root)
    assert recorder.register(A) is None
    source = nbformat.read(root / "source" / A / f"{A}.ipynb", as_version=4)
    secret = hidden_lines(source)
    assert secret, "the assignment has hidden tests"
    nb = nbformat.read(root / "release" / A / f"{A}.ipynb", as_version=4)
    # the learner printed a hidden line and drew a figure
    nb.cells[0] = nbformat.v4.new_code_cell("print(...)", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text=f"leak: {secret[0]}\n"),
        nbformat.v4.new_output("display_data", data={"image/png": PIXEL, "text/plain": "<Figure>"})])
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    for cell in tests[1:]:  # every test but the first failed
        cell.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue="", traceback=[])]
    (root / "submitted" / "ada" / A).mkdir(parents=True)
    recorded = recorder.record("ada", A, nb, ["a note"], secret, "fingerprint", 1.0)
    first = tests[0].metadata.nbgrader
    assert recorded.score == first["points"] < recorded.max_score
    assert recorded.passed == {c.metadata.nbgrader["grade_id"]: c is tests[0] for c in tests}

    page = (root / "feedback" / "ada" / A / f"{A}.html").read_text()
    assert secret[0] not in page and REDACTED in page
    assert "Notes from the grader" in page and "a note" in page
    images = re.findall(r"<img\b[^>]*>", page)
    assert images and all("alt=" in tag for tag in images), images

    recorder.export(root / "grades.csv")
    rows = list(csv.DictReader((root / "grades.csv").open()))
    assert [(r["student_id"], float(r["score"]), float(r["max_score"])) for r in rows] == \
        [("ada", recorded.score, recorded.max_score)]


def test_a_fresh_gradebook_is_stamped_with_the_schema_head_without_a_subprocess(tmp_path, monkeypatch):
    import sqlite3
    import subprocess

    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    def no_programs(*args, **kwargs):
        raise AssertionError(f"a program was started: {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "check_output", no_programs)
    monkeypatch.setattr(subprocess, "run", no_programs)
    root = course(tmp_path)
    assert Recorder(root).register(A) is None
    with sqlite3.connect(root / "gradebook.db") as db:
        stamped = db.execute("SELECT version_num FROM alembic_version").fetchall()
    assert stamped == [(ScriptDirectory(ALEMBIC_DIR).get_current_head(),)], stamped


def test_worker_processes_start_without_the_gradebook_libraries():
    """A Dask worker re-runs grade.py's top level when it starts (as ``__mp_main__``) and then imports what
    a task needs: neither pulls in nbgrader, nbconvert, SQLAlchemy, or the IRI parsers of jsonschema."""
    import subprocess

    probe = (
        "import runpy, sys\n"
        f"runpy.run_path({str(ROOT / 'autograde' / 'grade.py')!r}, run_name='__mp_main__')\n"
        "import classroom.fanout\n"
        "heavy = sorted(m for m in ('nbgrader', 'nbconvert', 'sqlalchemy', 'lark') if m in sys.modules)\n"
        "print('heavy:', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "heavy: []" in done.stdout, done.stdout


def test_recording_keeps_one_engine_per_gradebook(tmp_path):
    """nbgrader opens a Gradebook (and an engine) per step; one engine per URL keeps its compiled SQL."""
    from nbgrader.api import Gradebook

    root = course(tmp_path)
    recorder = Recorder(root)
    assert recorder.register(A) is None
    with Gradebook(recorder.db_url) as first:
        engine = first.engine
    with Gradebook(recorder.db_url) as second:  # the first was closed: its connections were disposed of
        assert second.engine is engine
        assert second.find_assignment(A).name == A


def test_the_graded_kernel_starts_without_the_debugger(tmp_path):
    import asyncio

    from classroom.kernel import kernel_manager
    from classroom.sandbox import Limits, Sandbox

    async def probe() -> str:
        manager = kernel_manager(tmp_path, Sandbox(unsafe=True), Limits())
        await manager.start_kernel()
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            msg_id = client.execute("import sys", user_expressions={
                "seen": "(sys.modules.get('debugpy') is not None, 'ipykernel' in sys.modules)"})
            while True:
                reply = await client.get_shell_msg(timeout=60)
                if reply["parent_header"].get("msg_id") == msg_id:
                    return reply["content"]["user_expressions"]["seen"]["data"]["text/plain"]
        finally:
            client.stop_channels()
            await manager.shutdown_kernel(now=True)

    assert asyncio.run(probe()) == "(False, True)"
