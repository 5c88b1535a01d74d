"""`make lab` starts JupyterLab for the learner, as any user (root too), with the learner's tools.

The server is started with the Makefile's own command and driven through its REST API: an exercise is
opened and a kernel started for it, nbgrader's Validate runs on it, and the instructor's formgrader is
not there. Its log holds no "No nbgrader_config.py file found" warning.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import websocket

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = "ch02_score_align_fuse.ipynb"
TOKEN = "course-lab-test"
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """``make lab`` on a free port; yields (base URL, path of its log)."""
    log = tmp_path_factory.mktemp("lab") / "lab.log"
    port = free_port()
    args = f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={TOKEN}"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(log.parent / "runtime")}
    with log.open("w") as out:
        server = subprocess.Popen(["make", "--no-print-directory", "lab", f"LAB_ARGS={args}"], cwd=ROOT,
                                  stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(base + "api/status", params={"token": TOKEN}, timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            assert server.poll() is None, f"make lab exited with {server.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"make lab did not answer within 120 s:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        yield base, log
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # make and the server it started
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def api(base: str, method: str, path: str, **kwargs) -> requests.Response:
    response = requests.request(method, base + path, headers={"Authorization": f"token {TOKEN}"}, timeout=300, **kwargs)
    return response


def run_in_kernel(base: str, kernel_id: str, code: str, timeout: float = 120) -> str:
    """Run ``code`` in a kernel over its websocket (as the notebook page does); returns what it printed."""
    url = base.replace("http://", "ws://") + f"api/kernels/{kernel_id}/channels?token={TOKEN}"
    connection = websocket.create_connection(url, timeout=timeout)
    msg_id = uuid.uuid4().hex
    connection.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": uuid.uuid4().hex,
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }))
    printed, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = json.loads(connection.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                printed.append(content["text"])
            elif kind == "error":
                pytest.fail(f"the kernel raised {content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(printed)
    finally:
        connection.close()
    pytest.fail(f"the kernel did not finish {code!r} within {timeout} s")


def test_lab_starts_for_this_user(lab):
    base, log = lab
    assert api(base, "GET", "api/status").json()["started"]
    assert "Running as root is not recommended" not in log.read_text()


def test_an_exercise_opens_through_the_rest_api(lab):
    base, _ = lab
    listing = api(base, "GET", "api/contents").json()
    names = {item["name"] for item in listing["content"]}
    released = {p.name for p in (ROOT / "book" / "exercises").glob("*.ipynb")}
    assert released and released <= names, "the lab opens on book/exercises/"

    notebook = api(base, "GET", f"api/contents/{EXERCISE}", params={"content": 1}).json()
    assert notebook["type"] == "notebook"
    assert any(cell["metadata"].get("nbgrader", {}).get("solution") for cell in notebook["content"]["cells"]), \
        "the exercise has answer cells"

    session = api(base, "POST", "api/sessions",
                  json={"path": EXERCISE, "type": "notebook", "kernel": {"name": "python3"}})
    assert session.status_code == 201, session.text
    kernel = session.json()["kernel"]
    try:
        printed = run_in_kernel(base, kernel["id"], "import solutions, sys; print(sys.prefix)")
        assert Path(printed.strip()) == (ROOT / ".venv").resolve() or Path(printed.strip()) == Path(sys.prefix), \
            f"the exercise's kernel runs in the course environment, not {printed!r}"
    finally:
        assert api(base, "DELETE", f"api/sessions/{session.json()['id']}").status_code == 204


def test_the_learner_has_validate_not_the_formgrader(lab):
    base, log = lab
    page = api(base, "GET", "lab").text
    config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                  page, re.S).group(1))
    disabled = set(config["disabledExtensions"])
    assert {"nbgrader:formgrader", "nbgrader:create-assignment", "nbgrader:course-list"} <= disabled
    assert "nbgrader:validate-assignment" not in disabled
    assert api(base, "GET", "formgrader").status_code == 404, "the instructor's formgrader is not served"

    result = api(base, "POST", "assignments/validate", data={"path": EXERCISE}).json()
    assert result["success"], result["value"]
    assert result["value"].get("failed"), "Validate reports the tests an untouched exercise fails"
    assert "No nbgrader_config.py file found" not in log.read_text()
