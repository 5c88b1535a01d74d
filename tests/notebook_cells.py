"""Which cells of a notebook are *measured*: their output depends on training, timing or sampling.

The analysis reads each code cell with :mod:`ast`, one top-level statement at a time, and never runs it.
A statement is measured when it calls a training or timing function (:data:`SOURCES`, or a function the
notebook defines on top of one) or reads a name that holds a measured value. The names a measured
statement assigns or mutates (``table[k] = ...``, ``results.append(...)``, and the model a trainer gets
as its first argument, trained in place) then hold measured values; a name assigned again by a
deterministic statement no longer does. A cell is measured when one of its statements is.

The course's convention (README, "For maintainers"): a measured cell carries the tag
``nbval-ignore-output`` (its numbers differ in the last digits between CPUs and on a GPU), and what the
prose concludes from it is asserted in a hidden *claim cell* after it, tagged ``remove-cell`` and ``claim``.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field

SOURCES = frozenset({
    # training (the one loop and every chapter's trainer), EM included
    "fit", "fit_one_cycle", "fit_kernel_regression", "train_seq2seq", "train_transformer", "pretrain",
    "train_classifier", "train_direction", "train_model1", "train_hmm", "train_lookup", "train_glimpses",
    "train_attention_estimator",
    # clocks, and the appendix's measuring functions (time and peak memory, solutions.fast.measure)
    "perf_counter", "perf_counter_ns", "process_time", "monotonic", "time", "sweep", "time_call",
    "peak_extra_memory", "time_function", "peak_extra_memory_of", "compute_clock", "elapsed",
    # Monte Carlo samples of a gradient estimator (the random stream differs between a CPU and a GPU)
    "gradient_samples",
    # vectors fitted by a matrix factorisation, whose last digits (and so its ties) depend on LAPACK's kernels
    "svd", "svd_lowrank", "eigh", "lstsq",
})
MUTATORS = frozenset({"append", "extend", "update", "add", "insert", "setdefault", "pop"})
IGNORE_TAG, CLAIM_TAG = "nbval-ignore-output", "claim"


@dataclass
class Cell:
    index: int
    source: str
    tags: set[str]
    has_text_output: bool
    measured: bool = False
    tainted_reads: set[str] = field(default_factory=set)  # measured names it reads
    produced: set[str] = field(default_factory=set)       # names it leaves holding measured values

    @property
    def is_claim(self) -> bool:
        return CLAIM_TAG in self.tags


def _called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    return node.func.attr if isinstance(node.func, ast.Attribute) else None


def _base_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _body_nodes(statement: ast.stmt):
    """Every node a statement runs now: not the bodies of functions and lambdas it only defines."""
    stack = [statement]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                stack.append(child)


@dataclass
class _Statement:
    reads: set[str] = field(default_factory=set)
    writes: set[str] = field(default_factory=set)
    mutates: set[str] = field(default_factory=set)
    calls: dict[str, set[str]] = field(default_factory=dict)  # called name -> base names of its first argument
    defines: dict[str, set[str]] = field(default_factory=dict)  # function name -> names its body uses


def _statement(node: ast.stmt) -> _Statement:
    s = _Statement()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        used |= {_called_name(n) for n in ast.walk(node) if isinstance(n, ast.Call)} - {None}
        s.defines[node.name] = used
        s.writes.add(node.name)
        return s
    for sub in _body_nodes(node):
        if isinstance(sub, ast.Name):
            (s.reads if isinstance(sub.ctx, ast.Load) else s.writes).add(sub.id)
        elif isinstance(sub, ast.Call):
            name = _called_name(sub)
            if name:
                first = _base_name(sub.args[0]) if sub.args else None
                s.calls.setdefault(name, set()).update({first} if first else set())
            if isinstance(sub.func, ast.Attribute) and sub.func.attr in MUTATORS and _base_name(sub.func.value):
                s.mutates.add(_base_name(sub.func.value))
        elif isinstance(sub, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            for target in (sub.targets if isinstance(sub, ast.Assign) else [sub.target]):
                for part in ast.walk(target):
                    if isinstance(part, (ast.Subscript, ast.Attribute)) and _base_name(part):
                        s.mutates.add(_base_name(part))
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            s.writes |= {(a.asname or a.name).split(".")[0] for a in sub.names}
    return s


def analyse(notebook) -> list[Cell]:
    """The code cells of an nbformat notebook, each marked measured or not (in order)."""
    cells, tainted, sources = [], set(), set(SOURCES)
    for index, raw in enumerate(notebook.cells):
        if raw.cell_type != "code":
            continue
        text = any(o.get("output_type") == "stream" or any(k.startswith("text/") for k in o.get("data", {}))
                   for o in raw.get("outputs", []))
        cell = Cell(index, raw.source, set(raw.metadata.get("tags", [])), text)
        lines = [line for line in raw.source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        for node in ast.parse("\n".join(lines)).body:
            s = _statement(node)
            for name, used in s.defines.items():  # a helper that trains, times or reads a measured value
                if used & (sources | tainted):
                    sources.add(name)
            trains = set(s.calls) & sources
            read = (s.reads | s.mutates) & tainted
            if trains or read:
                cell.measured = True
                cell.tainted_reads |= read
                changed = s.writes | s.mutates | {arg for name in trains for arg in s.calls[name]}
                tainted |= changed
                cell.produced |= changed
            else:
                tainted -= s.writes - {name for name in s.defines if name in sources}
                cell.produced -= s.writes
        cells.append(cell)
    return cells


def tag_measured(path) -> list[int]:
    """Tag every measured cell of the notebook at ``path`` that has outputs; return the cells tagged."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    added = []
    for cell in analyse(notebook):
        raw = notebook.cells[cell.index]
        tags = raw.metadata.setdefault("tags", [])
        if cell.measured and raw.get("outputs") and IGNORE_TAG not in tags:
            tags.append(IGNORE_TAG)
            added.append(cell.index)
    if added:
        nbformat.write(notebook, path)
    return added


if __name__ == "__main__":
    import sys

    if len(sys.argv) < 3 or sys.argv[1] != "--tag":
        sys.exit("usage: python tests/notebook_cells.py --tag NOTEBOOK...  (tags the measured cells)")
    for path in sys.argv[2:]:
        print(path, "tagged cells", tag_measured(path))
