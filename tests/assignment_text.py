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
