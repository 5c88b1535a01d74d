"""Plain helpers shared by the test files; the shared fixtures live in conftest.py.

pytest puts this folder on ``sys.path`` (its default "prepend" import mode, as for ``assignment_text``),
so a test file imports these with ``from helpers import rand``, under ``-n`` workers too.
"""
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def rand(*shape, device, dtype=torch.float64, requires_grad=False):
    """A standard-normal tensor of ``shape`` on ``device``, drawn from torch's global generator.

    float64 by default, so gradient checks and tight tolerances work; seed with ``torch.manual_seed``
    where a test needs the same numbers every run.
    """
    return torch.randn(*shape, device=device, dtype=dtype, requires_grad=requires_grad)


def build_book(out: Path, config: Path | None = None) -> Path:
    """Build the book with ``-W`` into ``out`` (a fresh folder) and return its HTML root; ``config`` replaces
    ``_config.yml``."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "--path-output", str(out),
         "-W", "--keep-going", *(["--config", str(config)] if config else [])],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, f"the book does not build cleanly with -W:\n{done.stdout[-6000:]}{done.stderr[-4000:]}"
    return out / "_build" / "html"


def sandbox_problem() -> str | None:
    """Why the grading sandbox cannot start on this machine, or None when it can.

    Grading refuses to run submissions unsandboxed, so the grading tests fail (not skip) with this reason:
    a CI machine without user namespaces must not pass them silently."""
    sys.path.insert(0, str(ROOT / "autograde"))
    from classroom.sandbox import Sandbox, SandboxUnavailable

    try:
        Sandbox().check(Path("/tmp/sandbox-check"))
    except SandboxUnavailable as error:
        return str(error)
    return None
