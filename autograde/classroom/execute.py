"""Run the assembled notebook of one submission, cell by cell, in sandboxed kernels.

Per cell a time limit, per notebook a time budget (restarts included), an output cap, and a fresh kernel
when a cell kills the one it ran in (``os._exit``, a segfault, the memory limit) or will not stop (an
infinite loop that ignores interrupts): the cells before it that define things are replayed silently in
the new kernel, the guilty cell gets an error saying what happened, and the run goes on, so only the
exercise concerned loses its points. Before every test cell the guard (:mod:`.guard`) repairs what
learner code replaced; a test cell whose kernel reports an error counts as failed even if the learner
silenced its traceback.
"""
from __future__ import annotations

import ast
import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from . import guard
from .kernel import kernel_manager
from .sandbox import Limits, Sandbox


def _error_output(ename: str, evalue: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _has_error(cell) -> bool:
    return any(out.get("output_type") == "error" for out in cell.get("outputs", []))


def _size(msg: dict) -> int:
    content = msg.get("content", {})
    if "text" in content:
        return len(content["text"])
    return sum(len(str(v)) for v in content.get("data", {}).values()) + len(str(content.get("traceback", "")))


class _Client(NotebookClient):
    """nbclient's executor, keeping each cell's reply status and capping the outputs it stores."""

    def __init__(self, nb, output_bytes: int, **kw):
        super().__init__(nb, **kw)
        self.output_budget = output_bytes
        self.output_cut = False
        self.replies: dict[int, str] = {}

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] in ("stream", "display_data", "execute_result", "update_display_data"):
            self.output_budget -= _size(msg)
            if self.output_budget < 0:
                if not self.output_cut:
                    self.output_cut = True
                    outs.append(nbformat.v4.new_output(
                        "stream", name="stdout", text="\n[output cut here: this submission printed more than "
                                                      "the grader keeps]\n"))
                return None
        return super().output(outs, msg, display_id, cell_index)

    async def _check_raise_for_error(self, cell, cell_index, exec_reply):
        if exec_reply is not None:
            self.replies[cell_index] = exec_reply["content"].get("status", "ok")
        return await super()._check_raise_for_error(cell, cell_index, exec_reply)


@dataclass
class Outcome:
    """What running one notebook gave: the executed notebook, problems to tell the learner, timings."""

    notebook: nbformat.NotebookNode
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    kernels: int = 0


def _label(cell, index: int, learner_cells: set[int]) -> str:
    gid = cell.metadata.get("nbgrader", {}).get("grade_id")
    if index in learner_cells and gid:
        return f"your answer cell {gid!r}"
    if index in learner_cells:
        return f"a cell you added (cell {index})"
    return f"the test cell {gid!r}" if cell.metadata.get("nbgrader", {}).get("grade") else f"cell {gid or index}"


def run_notebook(nb: nbformat.NotebookNode, learner_cells: list[int], scratch: Path, sandbox: Sandbox,
                 limits: Limits) -> Outcome:
    """Execute ``nb`` in place (see the module docstring) and say what went wrong."""
    return asyncio.run(_Runner(nb, set(learner_cells), Path(scratch), sandbox, limits).run())


class _Runner:
    def __init__(self, nb, learner_cells, scratch, sandbox, limits):
        self.nb, self.learner, self.scratch, self.sandbox, self.limits = nb, learner_cells, scratch, sandbox, limits
        self.problems: list[str] = []
        self.client = _Client(nb, limits.output_bytes, timeout=int(limits.cell_seconds), allow_errors=True,
                              interrupt_on_timeout=False, shutdown_kernel="immediate", record_timing=False,
                              kernel_name="python3", resources={"metadata": {"path": str(scratch)}})
        self.kernels = 0
        self.repaired: set[str] = set()

    def is_test(self, cell) -> bool:
        return bool(cell.metadata.get("nbgrader", {}).get("grade")) and cell.cell_type == "code"

    async def _silent(self, code: str, expression: str | None = None, timeout: float = 60.0):
        """Run code the learner never sees; the value of ``expression`` (text) or None when it failed."""
        kc = self.client.kc
        msg_id = kc.execute(code, silent=True, store_history=False,
                            user_expressions={"value": expression} if expression else {})
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CellTimeoutError("silent execution timed out")
            try:
                msg = await kc.get_shell_msg(timeout=min(1.0, remaining))
            except Exception:  # queue.Empty: check the kernel is still there and keep waiting
                if not await kc.is_alive():
                    raise DeadKernelError("Kernel died")
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            content = msg["content"]
            if content.get("status") != "ok":
                return None
            value = content.get("user_expressions", {}).get("value", {})
            return value.get("data", {}).get("text/plain") if value.get("status") == "ok" else None

    async def _start(self, replay: list[int], deadline: float) -> None:
        self.kernels += 1
        self.client.km = kernel_manager(self.scratch, self.sandbox, self.limits)
        log = open(self.scratch / "kernel.log", "ab")  # what the kernel writes to its stdout and stderr
        try:
            await self.client.async_start_new_kernel(stdout=log, stderr=log)
        finally:
            log.close()
        await self.client.async_start_new_kernel_client()
        await self._silent(guard.INSTALL, timeout=max(1.0, deadline - time.monotonic()))
        for index in replay:  # what the cells before a crash defined, without their outputs, guarded the same way
            if index == self.first_learner_cell:
                await self._silent(guard.SNAPSHOT)
            test = self.is_test(self.nb.cells[index])
            if test:
                await self._silent("", guard.RESTORE)
            await self._silent(self.nb.cells[index].source, timeout=max(1.0, deadline - time.monotonic()))
            if test:
                await self._silent(guard.SNAPSHOT)

    async def _stop(self) -> None:
        try:
            await self.client._async_cleanup_kernel()
        except Exception:  # a kernel that is already gone
            pass
        self.client.km = None

    async def run(self) -> Outcome:
        start = time.monotonic()
        deadline = start + self.limits.notebook_seconds
        cells = self.nb.cells
        code = [i for i, c in enumerate(cells) if c.cell_type == "code"]
        self.first_learner_cell = min(self.learner, default=len(cells))
        replay: list[int] = []
        position = 0
        try:
            await self._start([], deadline)
            while position < len(code):
                index = code[position]
                cell = cells[index]
                remaining = deadline - time.monotonic()
                if remaining <= 1:
                    self._not_run(code[position:], f"the whole notebook may take {self.limits.notebook_seconds:.0f} s")
                    break
                if index == self.first_learner_cell:
                    await self._silent(guard.SNAPSHOT)
                if self.is_test(cell):
                    repaired = await self._silent("", guard.RESTORE)
                    if repaired is None:
                        self.problems.append("the grader's guard had been removed by your code; "
                                             "the tests after it could not be trusted and were not run")
                        self._not_run(code[position:], "the grader's guard was removed")
                        break
                    self.repaired.update(ast.literal_eval(repaired))
                self.client.timeout = max(1, int(min(self.limits.cell_seconds, remaining)))
                failure = None
                try:
                    await self.client.async_execute_cell(cell, index)
                except CellTimeoutError:
                    failure = (f"{_label(cell, index, self.learner)} ran for more than "
                               f"{self.client.timeout} s and was stopped")
                except DeadKernelError:
                    failure = f"{_label(cell, index, self.learner)} stopped the Python kernel (it crashed, exited or ran out of memory)"
                if failure is None and any(o.get("ename") == "MemoryError" for o in cell.get("outputs", [])):
                    # the memory stays taken (a list that grew until the limit): start afresh without this cell
                    failure = (f"{_label(cell, index, self.learner)} ran out of memory (a submission may use "
                               f"{self.limits.memory_bytes / 2**30:.0f} GiB)")
                if failure is None:
                    if self.is_test(cell):
                        await self._silent(guard.SNAPSHOT)
                    if self.client.replies.get(index) == "error" and not _has_error(cell):
                        cell.outputs.append(_error_output("Error", "this cell failed, but its error message was suppressed"))
                    replay.append(index)  # a new kernel needs what this cell defined (tests import helpers)
                    position += 1
                    continue
                out_of_time = deadline - time.monotonic() < 1
                if out_of_time:
                    failure = (f"{_label(cell, index, self.learner)} was stopped: the whole notebook may take "
                               f"{self.limits.notebook_seconds:.0f} s")
                self.problems.append(failure)
                cell.outputs.append(_error_output("GradingError", failure))
                await self._stop()
                position += 1
                if out_of_time:
                    self._not_run(code[position:], f"the whole notebook may take {self.limits.notebook_seconds:.0f} s")
                    break
                if self.kernels > self.limits.kernel_restarts:
                    self.problems.append(f"{self.kernels} kernels were stopped; the rest of the notebook was not run")
                    self._not_run(code[position:], "too many kernels were stopped")
                    break
                await self._start(replay, deadline)
        except (CellTimeoutError, DeadKernelError) as error:  # while replaying or installing the guard
            if deadline - time.monotonic() < 1:  # the replay ran into the notebook's time budget
                why = f"the whole notebook may take {self.limits.notebook_seconds:.0f} s"
            else:
                why = "the kernel could not be restarted"
                self.problems.append(f"the notebook could not be run to the end ({error})")
            self._not_run([i for i in code[position:] if not cells[i].get("outputs")], why)
        finally:
            await self._stop()
        if self.repaired:
            shown = sorted(self.repaired)
            self.problems.append("your code replaced what the tests rely on; the originals were put back "
                                 f"before each test: {', '.join(shown[:8])}{' ...' if len(shown) > 8 else ''}")
        if self.client.output_cut:
            self.problems.append(f"your notebook printed more than {self.limits.output_bytes:,} characters; "
                                 "the rest was cut")
        return Outcome(self.nb, self.problems, time.monotonic() - start, self.kernels)

    def _not_run(self, indices: list[int], why: str) -> None:
        for index in indices:
            cell = self.nb.cells[index]
            if self.is_test(cell):
                cell.outputs.append(_error_output("GradingError", f"not run: {why}"))
        if indices:
            self.problems.append(f"cells from {_label(self.nb.cells[indices[0]], indices[0], self.learner)} on "
                                 f"were not run: {why}")
