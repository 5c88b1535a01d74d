"""The Colab cell of the exercises: on Google Colab it installs the course package, elsewhere nothing.

Every instructor notebook's first code cell is this cell (a locked nbgrader cell), so every student
notebook that ``make release`` generates starts with it. For a new assignment, or after the repository
URL in ``_config.yml`` changes, run

    .venv/bin/python autograde/colab_cell.py && make release

which writes the cell into each instructor notebook that lacks it (after the opening markdown) or holds
an outdated one. ``tests/test_launch.py`` checks every notebook against ``cell_source()``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CELL_ID = "colab-setup"


def repository_url() -> str:
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def cell_source(repository: str | None = None) -> str:
    repository = repository or repository_url()
    return (
        "# On Google Colab, this cell installs the course package `solutions` from the course repository\n"
        "# (Colab has PyTorch already). Anywhere else (`make lab`, Binder, your own environment) it does nothing.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    import subprocess\n"
        "\n"
        '    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",\n'
        f'                    "git+{repository}"], check=True)'
    )


def new_cell(source: str) -> dict:
    return {
        "cell_type": "code", "execution_count": None, "id": CELL_ID, "outputs": [], "source": source.splitlines(True),
        "metadata": {"nbgrader": {"grade": False, "grade_id": "colab", "locked": True, "schema_version": 3,
                                  "solution": False}},
    }


def ensure(path: Path) -> bool:
    """Give the notebook at ``path`` the current Colab cell; True when the file changed."""
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    source = cell_source()
    existing = next((c for c in nb["cells"] if c.get("id") == CELL_ID), None)
    if existing is not None:
        existing["source"] = source.splitlines(True)
    else:
        first_code = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
        nb["cells"].insert(first_code, new_cell(source))
    updated = json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    return updated != text


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted((ROOT / "autograde" / "source").glob("*/*.ipynb"))
    for path in paths:
        if ensure(path):
            print(f"wrote the Colab cell into {path}")
