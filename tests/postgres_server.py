"""A throwaway PostgreSQL server for the tests: Debian's `postgresql` binaries, a cluster in a temporary
folder, reachable only through a Unix socket in that folder, trust authentication for one role.

`make postgres` installs the Debian package when it is missing (as `make browser` does for chromium).
PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` system user the
package creates.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path


def binaries() -> Path | None:
    """The folder holding initdb and pg_ctl of the newest installed PostgreSQL, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class LocalPostgres:
    """``with LocalPostgres() as server: server.url("gradebook")`` — a SQLAlchemy URL for psycopg 3.

    The cluster lives in a new folder under the system's temporary directory (the server's user must be
    able to reach it, which a root-only pytest folder does not allow) and is removed on exit."""

    def __init__(self, role: str = "grader"):
        self.folder, self.role = Path(tempfile.mkdtemp(prefix="course-postgres-")), role
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed: run `make postgres` (Debian's postgresql package)")
        self.data, self.socket = self.folder / "data", self.folder / "socket"

    def _run(self, *argv: str) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        kwargs = {}
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            kwargs = dict(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {done.stdout}{done.stderr}")

    def __enter__(self) -> "LocalPostgres":
        self.socket.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (self.folder, self.socket):
                os.chown(path, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", self.role, "--auth=trust", "--no-sync", "-E", "UTF8")
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.folder / "server.log"), "-o",
                  f"-k {self.socket} -c listen_addresses='' -c fsync=off", "start")
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except RuntimeError:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(host=str(self.socket), user=self.role, dbname="postgres", autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql+psycopg://{self.role}@/{name}?host={self.socket}"
