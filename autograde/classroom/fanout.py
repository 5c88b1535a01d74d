"""Grade many submissions at once: one task per submission, spread over Dask workers.

Each task runs one assembled notebook in a fresh sandboxed kernel (:func:`run_job`) and returns it; the
process that submitted the tasks records the results as they arrive. ``workers=0`` runs the tasks one
after another in this process (the serial path, used to check that parallel grading gives the same
grades); otherwise a ``LocalCluster`` of single-threaded worker processes is started, or, with a
scheduler address, the tasks go to that cluster's workers (which need the course's environment).
"""
from __future__ import annotations

import base64
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import nbformat

from .execute import run_notebook
from .sandbox import Limits, Sandbox

MAX_EXTRA_BYTES = 20 * 1024 ** 2  # files submitted beside the notebook that travel with the task


@dataclass
class Job:
    """One submission to run: everything a worker needs, none of it read from the course folder."""

    student: str
    assignment: str
    notebook: str  # the assembled notebook, JSON
    learner_cells: list[int]
    limits: dict
    unsafe: bool = False
    files: dict[str, str] = field(default_factory=dict)  # other submitted files: name -> base64


def attach_files(job: Job, folder: Path) -> list[str]:
    """Put the files submitted beside the notebook into the job; problems when some are left out."""
    problems, total = [], 0
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        if path.suffix == ".ipynb" or path.name.endswith(".submitted") or path.name == "timestamp.txt":
            continue
        total += path.stat().st_size
        if total > MAX_EXTRA_BYTES:
            problems.append(f"the files submitted with the notebook exceed {MAX_EXTRA_BYTES >> 20} MiB; "
                            f"{path.name} and the files after it were left out")
            break
        job.files[str(path.relative_to(folder))] = base64.b64encode(path.read_bytes()).decode()
    return problems


def run_job(job: Job) -> dict:
    """Run one job in a fresh scratch folder (a worker's task); the executed notebook and what happened."""
    with tempfile.TemporaryDirectory(prefix=f"grade-{job.student[:20]}-") as scratch:
        scratch = Path(scratch)
        for name, data in job.files.items():
            target = (scratch / name).resolve()
            if scratch.resolve() in target.parents:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(base64.b64decode(data))
        _seed_matplotlib_cache(scratch / ".matplotlib")
        nb = nbformat.reads(job.notebook, as_version=4)
        outcome = run_notebook(nb, job.learner_cells, scratch, Sandbox(unsafe=job.unsafe), Limits(**job.limits))
    return {"student": job.student, "assignment": job.assignment, "notebook": nbformat.writes(outcome.notebook),
            "problems": outcome.problems, "seconds": outcome.seconds, "kernels": outcome.kernels,
            "worker": os.getpid()}


def _seed_matplotlib_cache(target: Path) -> None:
    """Copy this machine's matplotlib font list into the kernel's config folder, so that a notebook that
    plots does not spend seconds rebuilding it in every sandbox (the fonts it lists are visible there)."""
    cache = Path(os.environ.get("MPLCONFIGDIR") or Path.home() / ".cache" / "matplotlib")
    for font_list in cache.glob("fontlist-*.json") if cache.is_dir() else []:
        target.mkdir(exist_ok=True)
        shutil.copy2(font_list, target / font_list.name)


def run_jobs(jobs: list[Job], workers: int, scheduler: str | None = None) -> Iterator[tuple[Job, dict | Exception]]:
    """Each job with its result (or the exception its task raised), in the order they finish."""
    if not jobs:
        return
    if workers == 0 and scheduler is None:
        for job in jobs:
            try:
                yield job, run_job(job)
            except Exception as error:  # a failure of the grader itself, reported by the caller
                yield job, error
        return
    import dask
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        # No statistical profiler in the workers: sampling the task's stack every 10 ms cost a tenth of a
        # second of CPU per submission, taken from the kernels on a small machine.
        with dask.config.set({"distributed.worker.profile.enabled": False}):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=0,
                                   dashboard_address=":0",  # any free port: no clash with another run
                                   silence_logs=logging.CRITICAL)
    client = Client(scheduler or cluster)
    try:
        futures = {client.submit(run_job, job, pure=False, key=f"grade-{job.assignment}-{job.student}-{i}"): job
                   for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            job = futures[future]
            try:
                yield job, future.result()
            except Exception as error:
                yield job, error
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def limits_dict(limits: Limits) -> dict:
    return asdict(limits)
