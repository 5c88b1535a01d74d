"""Finds seeds that do not come from ``solutions.seeding`` (used by ``tests/test_seeding.py``).

A seed is *traced* when it is, or is computed from, a call of the seeding module's functions (``seed``,
``seeds``, ``generator``, ``manual_seed``, ``or_default``), or a name bound from one (an assignment, a ``for``
target, a comprehension), or a parameter whose name says seed (a library function passes on the seed its caller
chose). Anything else in a seed's place is a *literal seed*:

- the seed argument of ``manual_seed``, ``random.seed``, ``np.random.seed``, ``default_rng``, ``RandomState``,
  ``random.Random``;
- a keyword argument or a parameter default whose name contains "seed" (``seed=0``, ``split_seed=3``);
- a name containing "seed" bound to an untraced value (``SEEDS = (0, 1, 2)``), or compared with a number
  (``if seed == 0``, which is never true under another offset).

``python tests/seed_literals.py`` prints every literal seed in the notebooks, ``solutions`` and ``benchmarks``.
"""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEEDING_FUNCTIONS = {"seed", "seeds", "generator", "manual_seed", "or_default"}
SEEDING_MODULE = ROOT / "solutions" / "seeding.py"
RNG_CONSTRUCTORS = {"default_rng", "RandomState", "Random"}  # numpy's and Python's seeded generators


def sources() -> list[Path]:
    """Every file whose seeds must come from the seeding module."""
    files = sorted((ROOT / "solutions").rglob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))
    files += sorted((ROOT / "autograde").glob("*.py")) + sorted((ROOT / "autograde" / "classroom").glob("*.py"))
    files += sorted((ROOT / "book").glob("*.ipynb")) + sorted((ROOT / "autograde" / "source").glob("*/*.ipynb"))
    return [f for f in files if f != SEEDING_MODULE]


def code_blocks(path: Path) -> list[tuple[str, str]]:
    """(where, code) pairs: a module whole, or a notebook's code cells in order (IPython magics blanked)."""
    if path.suffix == ".py":
        return [(str(path.relative_to(ROOT)), path.read_text())]
    cells = json.loads(path.read_text())["cells"]
    blocks = []
    for number, cell in enumerate(cells):
        if cell["cell_type"] == "code":
            lines = "".join(cell["source"]).splitlines()
            code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)
            blocks.append((f"{path.relative_to(ROOT)} cell {number}", code))
    return blocks


def _says_seed(name: str | None) -> bool:
    return name is not None and "seed" in name.lower()


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _only_numbers(node: ast.AST) -> bool:
    """True for 0, (0, 1, 2), [7, 8], 100 + 3: numbers and nothing else."""
    leaves = [n for n in ast.walk(node) if not isinstance(n, ast.Tuple | ast.List | ast.BinOp | ast.UnaryOp
                                                          | ast.operator | ast.unaryop | ast.Load)]
    return bool(leaves) and all(isinstance(n, ast.Constant) and isinstance(n.value, int) for n in leaves)


class _Scanner(ast.NodeVisitor):
    def __init__(self, traced: set[str], where: str, problems: list[str]):
        self.traced, self.where, self.problems = traced, where, problems
        self.imported = set()  # names imported from solutions.seeding
        self.seed_positions: dict[str, list[int]] = {}  # function defined here → positions of its seed parameters

    # --- what counts as traced -----------------------------------------------------------------------------
    def traced_expr(self, node: ast.AST | None) -> bool:
        if node is None:
            return False
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call) and self._seeding(sub):
                return True
            if isinstance(sub, ast.Name) and sub.id in self.traced:
                return True
        return False

    def _seeding(self, call: ast.Call) -> bool:
        func = call.func
        if isinstance(func, ast.Name):
            return func.id in self.imported
        if isinstance(func, ast.Attribute) and func.attr in SEEDING_FUNCTIONS:
            base = func.value
            return (isinstance(base, ast.Name) and base.id == "seeding") or (
                isinstance(base, ast.Attribute) and base.attr == "seeding")
        return False

    def flag(self, node: ast.AST, what: str) -> None:
        self.problems.append(f"{self.where}, line {node.lineno}: {what}: {ast.unparse(node)[:100]}")

    def bind(self, target: ast.AST, value_traced: bool, value: ast.AST | None = None) -> None:
        if isinstance(target, ast.Tuple | ast.List) and isinstance(value, ast.Tuple | ast.List) \
                and len(target.elts) == len(value.elts):  # SEEDS, LR = (0, 1, 2), 1e-3: element by element
            for one_target, one_value in zip(target.elts, value.elts):
                self.bind(one_target, self.traced_expr(one_value), one_value)
            return
        for sub in ast.walk(target):
            if not isinstance(sub, ast.Name):
                continue
            if value_traced:
                self.traced.add(sub.id)
            elif _says_seed(sub.id) and value is not None and _only_numbers(value):
                self.flag(target, f"{sub.id} is bound to a seed the seeding module did not give")

    # --- visitors ------------------------------------------------------------------------------------------
    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.module.endswith("seeding"):
            self.imported |= {alias.asname or alias.name for alias in node.names
                              if alias.name in SEEDING_FUNCTIONS}

    def _arguments(self, args: ast.arguments) -> None:
        params = args.posonlyargs + args.args + args.kwonlyargs
        defaults = [None] * (len(args.posonlyargs + args.args) - len(args.defaults)) + list(args.defaults) \
            + list(args.kw_defaults)
        for param, default in zip(params, defaults):
            if _says_seed(param.arg):
                self.traced.add(param.arg)
                if default is not None and not (isinstance(default, ast.Constant) and default.value is None) \
                        and not self.traced_expr(default):
                    self.flag(default, f"the default of {param.arg} is a literal seed (use None and "
                                       "seeding.or_default)")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._arguments(node.args)
        positional = node.args.posonlyargs + node.args.args
        self.seed_positions[node.name] = [i for i, param in enumerate(positional) if _says_seed(param.arg)]
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._arguments(node.args)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        traced = self.traced_expr(node.value)
        for target in node.targets:
            self.bind(target, traced, node.value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.generic_visit(node)
        if node.value is not None:
            self.bind(node.target, self.traced_expr(node.value), node.value)

    def visit_For(self, node: ast.For) -> None:
        self.bind(node.target, self.traced_expr(node.iter), node.iter)
        self.generic_visit(node)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        self.bind(node.target, self.traced_expr(node.iter), node.iter)
        self.generic_visit(node)

    def _visit_comprehension_owner(self, node) -> None:
        for generator in node.generators:  # targets first, so the element expression sees them
            self.visit(generator)
        for field in ("elt", "key", "value"):
            if hasattr(node, field):
                self.visit(getattr(node, field))

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _visit_comprehension_owner

    def visit_Compare(self, node: ast.Compare) -> None:
        sides = [node.left, *node.comparators]
        names = [s for s in sides if isinstance(s, ast.Name) and _says_seed(s.id)]
        numbers = [s for s in sides if isinstance(s, ast.Constant) and isinstance(s.value, int)
                   and not isinstance(s.value, bool)]
        if names and numbers:
            self.flag(node, "a seed compared with a number (never true under another offset)")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = _called_name(node)
        seeds_a_generator = name in {"manual_seed", "manual_seed_all"} | RNG_CONSTRUCTORS or (
            name == "seed" and isinstance(node.func, ast.Attribute))  # random.seed(...), np.random.seed(...)
        if seeds_a_generator and not self._seeding(node):
            argument = node.args[0] if node.args else next(
                (k.value for k in node.keywords if k.arg in {"seed", "x", "a"}), None)
            unseeded_on_purpose = argument is None and name not in {"manual_seed", "seed"}  # Random(): no seed
            if not unseeded_on_purpose and not self.traced_expr(argument):
                self.flag(node, f"{name}() with a seed the seeding module did not give")
        for position in self.seed_positions.get(name, []) if isinstance(node.func, ast.Name) else []:
            if position < len(node.args) and not self.traced_expr(node.args[position]):
                self.flag(node.args[position], f"{name}() is given a literal seed")
        for keyword in node.keywords:
            if _says_seed(keyword.arg) and not self.traced_expr(keyword.value) and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is None):
                self.flag(keyword.value, f"{keyword.arg}= is a literal seed")
        self.generic_visit(node)


def literal_seeds(path: Path) -> list[str]:
    """Every literal seed in one file, as 'where, line N: what: code'."""
    problems: list[str] = []
    scanner = None
    traced: set[str] = set()
    for where, code in code_blocks(path):
        try:
            tree = ast.parse(code)
        except SyntaxError as error:
            problems.append(f"{where}: does not parse ({error.msg})")
            continue
        before = scanner
        scanner = _Scanner(traced, where, problems)
        if before is not None:  # names imported and functions defined in earlier cells
            scanner.imported, scanner.seed_positions = before.imported, before.seed_positions
        scanner.visit(tree)
    return problems


def main() -> int:
    found = [problem for path in sources() for problem in literal_seeds(path)]
    print("\n".join(found) or "no literal seed")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
