"""Every assert of an assignment's test cells says what it checked (COURSE.md, "Exercise rules").

A failing assert without a message shows the learner a bare ``AssertionError``; in a hidden test the grader
then has nothing to show but the test's own source, which it must not show. So every assert, visible or
hidden, carries a message.
"""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import nbformat
import pytest

from assignment_text import HIDDEN

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "autograde" / "source").glob("*/*.ipynb"))


def asserts_without_message(source: str) -> list[str]:
    return [ast.unparse(node)[:80] for node in ast.walk(ast.parse(textwrap.dedent(source)))
            if isinstance(node, ast.Assert) and node.msg is None]


@pytest.mark.parametrize("source", SOURCES, ids=[p.parent.name for p in SOURCES])
def test_every_assert_of_a_test_cell_has_a_message(source):
    nb = nbformat.read(source, as_version=4)
    tests = [cell for cell in nb.cells if cell.metadata.get("nbgrader", {}).get("grade")]
    assert tests, f"{source.parent.name} has test cells"
    for cell in tests:
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        for region in HIDDEN.findall(cell.source):
            bare = asserts_without_message(region)
            assert not bare, f"{grade_id}: a hidden assert without a message: {bare[0]}"
        bare = asserts_without_message(HIDDEN.sub("\n", cell.source))
        assert not bare, f"{grade_id}: a visible assert without a message: {bare[0]}"


def test_the_check_finds_a_bare_assert():
    assert asserts_without_message("x = 1\nassert x == 1\nassert x, 'x is set'\n") == ["assert x == 1"]
