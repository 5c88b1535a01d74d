"""What an instructor notebook keeps secret: its solution regions and hidden tests."""
import re

import nbformat

SOLUTION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION\n?", re.S)
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS\n?", re.S)


def secret_lines(nb: nbformat.NotebookNode, min_length: int = 12) -> set[str]:
    """Distinctive lines of the solution regions and hidden tests of an instructor notebook
    (a line that the instructor notebook also shows outside those regions is not a secret)."""
    secret, public = set(), set()
    for cell in nb.cells:
        regions = SOLUTION.findall(cell.source) + HIDDEN.findall(cell.source)
        for region in regions:
            secret.update(line.strip() for line in region.splitlines() if len(line.strip()) >= min_length)
        outside = HIDDEN.sub("", SOLUTION.sub("", cell.source))
        public.update(line.strip() for line in outside.splitlines())
    return secret - public


def normalise(text: str) -> str:
    """Text with every line stripped and blank lines dropped, to compare code whatever its indentation."""
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def secret_snippets(nb: nbformat.NotebookNode, window: int = 3,
                    kinds: tuple[str, ...] = ("solution", "hidden")) -> set[str]:
    """Every run of ``window`` consecutive lines of a solution region or hidden test (normalised), or the
    whole region when it is shorter. A leak of a solution or of hidden tests shows such a run; a single
    common line (an import, ``with torch.no_grad():``) that a chapter happens to share does not.
    ``kinds`` chooses the regions: ``"solution"``, ``"hidden"`` or both."""
    patterns = [pattern for kind, pattern in (("solution", SOLUTION), ("hidden", HIDDEN)) if kind in kinds]
    snippets = set()
    for cell in nb.cells:
        for region in [region for pattern in patterns for region in pattern.findall(cell.source)]:
            lines = normalise(region).splitlines()
            if 0 < len(lines) < window:
                snippets.add("\n".join(lines))
            for start in range(len(lines) - window + 1):
                snippets.add("\n".join(lines[start:start + window]))
    return snippets
