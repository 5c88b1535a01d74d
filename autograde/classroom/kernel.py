"""A fresh IPython kernel for one submission, started inside the sandbox.

The kernel talks to the grader over ZeroMQ *IPC* sockets, files in the submission's scratch folder:
in its own network namespace a kernel cannot reach the grader's TCP loopback, and needs no network.
Interrupts are sent as messages (``interrupt_mode: message``), so no signal has to cross the sandbox.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpec

from .sandbox import Limits, Sandbox

# What a submission's kernel runs with: one thread (the workers share the cores), no progress bars, and
# nbgrader's marker that the notebook is being autograded.
KERNEL_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "COURSE_PROGRESS": "0",
    "NBGRADER_EXECUTION": "autograde",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONNOUSERSITE": "1",
    "LANG": "C.UTF-8",
}
# IPython options nbgrader's Execute passes, plus tracebacks in Minimal mode (the exception and its
# message, never the source of a hidden test).
KERNEL_OPTIONS = ["--InteractiveShell.xmode=Minimal", "--HistoryManager.enabled=False"]
# What ``python -m ipykernel_launcher`` runs, without the debugger: ipykernel imports debugpy at start-up
# whenever it is installed (0.15 s of CPU per kernel), and nobody attaches a debugger to a graded
# notebook; with the import refused, ipykernel starts without its debugger, as where debugpy is absent.
KERNEL_MAIN = ("import sys; sys.modules['debugpy'] = None\n"
               "from ipykernel import kernelapp; kernelapp.launch_new_instance()")


def kernel_manager(scratch: Path, sandbox: Sandbox, limits: Limits) -> AsyncKernelManager:
    """A manager (not yet started) for a sandboxed kernel whose files live in ``scratch``."""
    scratch = Path(scratch)
    env = dict(KERNEL_ENV, HOME=str(scratch), MPLCONFIGDIR=str(scratch / ".matplotlib"),
               IPYTHONDIR=str(scratch / ".ipython"),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]))
    argv = [sys.executable, "-c", KERNEL_MAIN, "-f", "{connection_file}", *KERNEL_OPTIONS]
    manager = AsyncKernelManager(transport="ipc", ip=str(scratch / "kernel"),
                            connection_file=str(scratch / "kernel.json"))
    manager._kernel_spec = KernelSpec(argv=sandbox.wrap(argv, scratch, limits, env), display_name="sandboxed",
                                      language="python", interrupt_mode="message", env=env if sandbox.unsafe else {})
    return manager
