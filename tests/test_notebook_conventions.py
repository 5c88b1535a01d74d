"""The two kinds of notebook cells (README, "For maintainers"), checked on every chapter and instructor notebook.

* A *measured* cell (it trains, times or reads what was trained; see ``notebook_cells``) carries the tag
  ``nbval-ignore-output``: nbval does not byte-compare its output, which differs in the last digits
  between CPUs and on a GPU. Every other output stays byte-checked, so only measured cells carry the tag.
* What a chapter's prose concludes from a measured cell is asserted after it in a *claim cell*, tagged
  ``remove-cell`` (hidden from the book) and ``claim``, holding at least one ``assert`` on measured values.
"""
from pathlib import Path

import nbformat
import pytest

from notebook_cells import CLAIM_TAG, IGNORE_TAG, analyse

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))  # the chapters and the appendix
INSTRUCTOR = sorted((ROOT / "autograde" / "source").glob("*/*.ipynb"))


def _name(path):
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", CHAPTERS + INSTRUCTOR, ids=_name)
def test_measured_cells_and_only_they_skip_the_byte_check(path):
    cells = analyse(nbformat.read(path, as_version=4))
    untagged = [c.index for c in cells if c.measured and IGNORE_TAG not in c.tags and _has_outputs(path, c.index)]
    assert not untagged, (f"{_name(path)}: measured cells {untagged} must be tagged {IGNORE_TAG!r} "
                          "(python tests/notebook_cells.py --tag NOTEBOOK adds the tags)")
    hidden = [c.index for c in cells if IGNORE_TAG in c.tags and not c.measured]
    assert not hidden, (f"{_name(path)}: cells {hidden} are tagged {IGNORE_TAG!r} but train, time or read "
                        "nothing measured: their output must stay byte-checked")


@pytest.mark.parametrize("path", CHAPTERS, ids=_name)
def test_claims_follow_what_the_chapter_measures(path):
    cells = analyse(nbformat.read(path, as_version=4))
    for claim in (c for c in cells if c.is_claim):
        assert "remove-cell" in claim.tags, f"{_name(path)} cell {claim.index}: a claim cell is hidden (remove-cell)"
        assert "assert " in claim.source or "assert(" in claim.source, \
            f"{_name(path)} cell {claim.index}: a claim cell holds at least one assert"
        assert claim.tainted_reads, f"{_name(path)} cell {claim.index}: a claim cell checks measured values"
    for i, cell in enumerate(cells):
        if not (cell.measured and cell.has_text_output and not cell.is_claim):
            continue
        produced = cell.produced | cell.tainted_reads
        later = [c for c in cells[i + 1:] if c.is_claim and c.tainted_reads & produced]
        assert later, (f"{_name(path)} cell {cell.index} prints measured values ({sorted(produced)[:6]}) "
                       "but no claim cell after it asserts anything about them")


def _has_outputs(path, index):
    return bool(nbformat.read(path, as_version=4).cells[index].get("outputs"))


# ------------------------------------------------------------------------------ the analysis itself
def _notebook(*cells):
    nb = nbformat.v4.new_notebook()
    for source, tags in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = list(tags)
        cell.outputs = [nbformat.v4.new_output("stream", text="x\n")]
        nb.cells.append(cell)
    return nb


def test_analysis_follows_trained_values_and_forgets_reassigned_ones():
    nb = _notebook(
        ("data = make_data(seed=0)\nprint(len(data))", []),                        # 0 deterministic
        ("history = train_seq2seq(model, data, epochs=3)", []),                    # 1 trains
        ("table = {}\ntable['acc'] = evaluate(model, data).accuracy", []),         # 2 the trained model
        ("def run(n):\n    return fit(m, b, l, o, epochs=n)", []),                  # 3 defines a trainer
        ("out = run(2)\nresults = []\nresults.append(out)", []),                   # 4 calls it
        ("print(results[-1], history[-1])", []),                                  # 5 reads measured values
        ("history = [1, 2]\nprint(history)", []),                                  # 6 reassigned: deterministic
        ("t0 = time.perf_counter()", []),                                          # 7 a clock
        ("assert results[-1] < 1", ["remove-cell", CLAIM_TAG]),                    # 8 a claim
    )
    measured = [c.index for c in analyse(nb) if c.measured]
    assert measured == [1, 2, 4, 5, 7, 8]
    cells = analyse(nb)
    assert cells[5].tainted_reads == {"results", "history"} and cells[8].is_claim
    assert cells[4].produced == {"out", "results"}  # results = [] alone is not measured; the append is


def test_model_trained_in_place_taints_its_later_use():
    nb = _notebook(("model = Model()", []), ("train_transformer(model, data, epochs=1)", []),
                   ("print(evaluate(model, data))", []))
    assert [c.measured for c in analyse(nb)] == [False, True, True]


def test_constants_set_beside_a_training_run_stay_deterministic():
    nb = _notebook(("EPOCHS = 3\nhistory = train_seq2seq(model, data, epochs=EPOCHS)", []),
                   ("print(EPOCHS)", []), ("print(history)", []))
    assert [c.measured for c in analyse(nb)] == [True, False, True]
