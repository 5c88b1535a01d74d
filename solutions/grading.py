"""What the hidden tests of the exercise notebooks use to grade fairly (COURSE.md, "Exercise rules").

* :func:`run_answer` calls a learner's function under watch and fails with an ``AssertionError`` that names
  the exercise when the answer

  - ran any code of the :mod:`solutions` package (the reference implementation), however it got there:
    an import, an alias (``from solutions.fast import chunked_attention as mine``), a wrapper, ``importlib``,
    ``sys.modules``, a reloaded module or a copied code object. A profile hook (:func:`sys.setprofile`) sees
    every Python frame that starts while the answer runs, and each frame's code names its source file;
  - called a torch function that the task forbids (:data:`FORBIDDEN`: the softmax, the log-sum-exp,
    concatenation, PyTorch's LayerNorm, PyTorch's fused attention), seen both where Python calls it (a
    ``TorchFunctionMode``: ``torch.softmax``, ``Tensor.softmax``, ``F.softmax``, ``torch.special.softmax``)
    and where it reaches the dispatcher (a ``TorchDispatchMode``: ``aten::_softmax``, also when another
    function decomposes into it);
  - asked a :func:`one_pass` stream for its next item before it had used the previous one (it stored the
    stream to go over it twice);

  and records, for the test to assert on, the largest tensor the answer allocated and how many tensor
  operations it ran (:class:`MemoryProbe`): "never holds a (Tq, Tk) matrix", "no Python loop over positions".
* :class:`isolated` rebinds, in the notebook's globals, the learner's functions from the *other* exercises to
  reference ones while one exercise's tests run, so that each exercise is graded on its own. Reference
  functions put in place this way may call :mod:`solutions` and the forbidden functions.

Everything the learner's function was given by the test (a score module from :mod:`solutions`, say) may be
let through with ``allow=``.
"""
from __future__ import annotations

import os
import sys
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["FORBIDDEN", "Trace", "run_answer", "one_pass", "isolated", "end_isolation", "MemoryProbe",
           "ReferenceWatch", "ForbiddenCalls"]

_PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))
_THIS_FILE = os.path.realpath(__file__)

#: Families of torch functions a task may forbid: the names a Python call or an aten operator goes by.
FORBIDDEN: dict[str, tuple[str, frozenset[str]]] = {
    "softmax": ("a softmax (torch.softmax, Tensor.softmax, F.softmax, log_softmax)", frozenset({
        "softmax", "log_softmax", "special_softmax", "special_log_softmax", "_softmax", "_log_softmax",
        "_safe_softmax"})),
    "logsumexp": ("torch.logsumexp (or Tensor.logsumexp, torch.special.logsumexp, logcumsumexp)", frozenset({
        "logsumexp", "special_logsumexp", "logcumsumexp"})),
    "cat": ("concatenation (torch.cat, torch.concat, torch.stack, hstack, vstack)", frozenset({
        "cat", "concat", "concatenate", "stack", "_stack", "hstack", "vstack", "dstack", "column_stack",
        "row_stack"})),
    "layer_norm": ("PyTorch's LayerNorm (F.layer_norm, nn.LayerNorm, torch.layer_norm)", frozenset({
        "layer_norm", "native_layer_norm"})),
    "scaled_dot_product_attention": ("PyTorch's fused attention (F.scaled_dot_product_attention)", frozenset({
        "scaled_dot_product_attention", "flex_attention", "multi_head_attention_forward",
        "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_fused_attention_overrideable"})),
}


# ------------------------------------------------------------------------------------ the watches
class ReferenceWatch:
    """Records every frame of :mod:`solutions` code (this module aside) that starts while it is on.

    Frames under an allowed callable (``allow``, and the references :class:`isolated` put in place) are let
    through, with everything they call. ``inside_allowed`` tells the other watches to look away there too.
    """

    def __init__(self, allow: Iterable[Any] = ()):
        self.allowed_codes = {code for obj in allow for code in _codes_of(obj)}
        self.calls: list[str] = []
        self._allowed_frames: list[Any] = []
        self._verdicts: dict[Any, bool] = {}
        self._previous = None

    @property
    def inside_allowed(self) -> bool:
        return bool(self._allowed_frames)

    def _is_reference(self, code) -> bool:
        verdict = self._verdicts.get(code)
        if verdict is None:
            path = os.path.realpath(code.co_filename) if code.co_filename else ""
            verdict = path.startswith(_PACKAGE_DIR + os.sep) and path != _THIS_FILE
            self._verdicts[code] = verdict
        return verdict

    def _profile(self, frame, event, arg):
        if event == "call":
            code = frame.f_code
            if self._allowed_frames:
                return
            if code in self.allowed_codes:
                self._allowed_frames.append(frame)
            elif self._is_reference(code):
                name = f"{frame.f_globals.get('__name__', '?')}.{code.co_qualname}"
                if name not in self.calls:
                    self.calls.append(name)
        elif event == "return" and self._allowed_frames and frame is self._allowed_frames[-1]:
            self._allowed_frames.pop()

    def __enter__(self) -> "ReferenceWatch":
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("ReferenceWatch watches the main thread")
        self._previous = sys.getprofile()
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc) -> None:
        sys.setprofile(self._previous)


class ForbiddenCalls(TorchFunctionMode):
    """Records the calls of forbidden torch functions (families of :data:`FORBIDDEN`) made by Python code.

    Used with :class:`MemoryProbe`, which also looks for them among the aten operators (``families``)."""

    def __init__(self, families: Iterable[str], watch: ReferenceWatch | None = None):
        super().__init__()
        unknown = set(families) - set(FORBIDDEN)
        if unknown:
            raise ValueError(f"unknown forbidden families {sorted(unknown)}; known: {sorted(FORBIDDEN)}")
        self.families = tuple(families)
        self.names = {name: family for family in self.families for name in FORBIDDEN[family][1]}
        self.watch = watch
        self.found: list[str] = []

    def note(self, name: str) -> None:
        family = self.names.get(name)
        if family is not None and not (self.watch and self.watch.inside_allowed) and family not in self.found:
            self.found.append(family)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.note(getattr(func, "__name__", ""))
        return func(*args, **(kwargs or {}))


class MemoryProbe(TorchDispatchMode):
    """Records, for every tensor operation run while it is on, the largest tensor it allocates.

    A tensor counts when its storage is new (not the storage of an input, as a view, an ``expand`` or an
    in-place result are), by the elements its storage holds. ``ops`` counts the operations; ``touched``
    holds the storages that an operation read (what :func:`one_pass` asks about)."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # PyTorch wraps a mode's __torch_dispatch__ in dynamo's "disable" unless told not to, and the
        # wrapper imports torch._dynamo (about 800 modules, a second of a grading kernel's CPU) the first
        # time an operator runs under the probe. Nothing runs compiled under it, so the wrapper is not needed.
        return False

    def __init__(self, forbidden: ForbiddenCalls | None = None):
        super().__init__()
        self.forbidden = forbidden
        self.largest = 0
        self.largest_shape: tuple[int, ...] = ()
        self.largest_op = ""
        self.ops = 0
        self.touched: set[tuple[str, int]] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.ops += 1
        if self.forbidden is not None:
            self.forbidden.note(func.overloadpacket.__name__)
        inputs = {_storage_key(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        self.touched |= inputs
        out = func(*args, **kwargs)
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and _storage_key(t) not in inputs:
                elements = _storage_elements(t)
                if elements > self.largest:
                    self.largest, self.largest_shape, self.largest_op = elements, tuple(t.shape), str(func.name())
        return out

    def used(self, tensor: torch.Tensor) -> bool:
        """Whether an operation has read ``tensor`` (or a view of it) while the probe was on."""
        return _storage_key(tensor) in self.touched


def _storage_key(t: torch.Tensor) -> tuple[str, int]:
    try:
        return (str(t.device), t.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError):  # a tensor without storage (sparse, meta, ...)
        return (str(t.device), id(t))


def _storage_elements(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage().nbytes() // max(t.element_size(), 1)
    except (RuntimeError, NotImplementedError):
        return t.numel()


def _codes_of(obj: Any) -> list:
    """The code objects of a callable: a function, a method, or every method of a class (or of an object's
    class, e.g. a score module whose ``forward`` the test hands to the learner)."""
    if hasattr(obj, "__code__"):
        return [obj.__code__]
    if hasattr(obj, "__func__"):
        return _codes_of(obj.__func__)
    codes = []
    for klass in (obj if isinstance(obj, type) else type(obj)).__mro__:
        if klass.__module__.split(".")[0] in ("torch", "builtins"):  # not nn.Module.__call__: it runs anything
            continue
        for member in vars(klass).values():
            member = getattr(member, "__func__", member)  # staticmethod, classmethod
            if hasattr(member, "__code__"):
                codes.append(member.__code__)
    return codes


# ------------------------------------------------------------------------------------ one call, watched
@dataclass
class Trace:
    """What the learner's function did during one :func:`run_answer` call."""
    exercise: str
    references: list[str] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)
    out_of_order: list[int] = field(default_factory=list)
    largest: int = 0
    largest_shape: tuple[int, ...] = ()
    largest_op: str = ""
    ops: int = 0


_ACTIVE_PROBES: list[MemoryProbe] = []
_ACTIVE_TRACES: list[Trace] = []


def run_answer(exercise: str, fn: Callable, /, *args, forbid: Iterable[str] = (), allow: Iterable[Any] = (),
               **kwargs) -> tuple[Any, Trace]:
    """Call the learner's ``fn(*args, **kwargs)`` under watch; return ``(result, trace)``.

    Raises ``AssertionError`` naming ``exercise`` when the answer ran reference code, called a function of
    the ``forbid`` families, or read a :func:`one_pass` stream out of order, and when ``fn`` raised (the
    message then gives the exception, so that a feedback that shows no traceback still says what failed).
    """
    allow = list(allow) + [ref for iso in _ISOLATIONS for ref in iso.references.values()]
    trace = Trace(exercise)
    error: BaseException | None = None
    result = None
    with ExitStack() as stack:
        watch = stack.enter_context(ReferenceWatch(allow))
        forbidden = ForbiddenCalls(forbid, watch)
        probe = MemoryProbe(forbidden)
        stack.enter_context(forbidden)
        stack.enter_context(probe)
        _ACTIVE_PROBES.append(probe)
        _ACTIVE_TRACES.append(trace)
        try:
            result = fn(*args, **kwargs)
        except Exception as caught:  # reported below, after what matters more
            error = caught
        finally:
            _ACTIVE_PROBES.pop()
            _ACTIVE_TRACES.pop()
    trace.references, trace.forbidden = watch.calls, forbidden.found
    trace.largest, trace.largest_shape, trace.largest_op, trace.ops = (
        probe.largest, probe.largest_shape, probe.largest_op, probe.ops)
    if trace.references:
        raise AssertionError(
            f"{exercise}: your answer runs the course's reference implementation "
            f"({', '.join(trace.references[:3])}). An answer that calls the reference earns no points; "
            f"write the computation yourself (the answer cells need nothing from `solutions`).")
    if trace.forbidden:
        names = "; ".join(FORBIDDEN[f][0] for f in trace.forbidden)
        raise AssertionError(f"{exercise}: your answer uses {names}, which this exercise does not allow "
                             f"(see the task).")
    if trace.out_of_order:
        raise AssertionError(
            f"{exercise}: your answer asked for item {trace.out_of_order[0] + 1} of the stream before it "
            f"had used item {trace.out_of_order[0]}: process each item as it arrives, in one pass, "
            f"without storing the stream first.")
    if error is not None:
        raise AssertionError(f"{exercise}: your function raised {type(error).__name__}: {error} "
                             f"(called with {describe(args, kwargs)})") from None
    return result, trace


def describe(args: tuple, kwargs: dict | None = None) -> str:
    """A short description of call arguments for a message: tensors by shape, dtype and device."""
    def one(x):
        if isinstance(x, torch.Tensor):
            return f"a {x.dtype} tensor of shape {tuple(x.shape)} on {x.device.type}"
        if isinstance(x, _OnePass):
            return f"a one-pass iterable of {x.length} items"
        return repr(x) if len(repr(x)) < 40 else type(x).__name__
    parts = [one(a) for a in args] + [f"{k}={one(v)}" for k, v in (kwargs or {}).items()]
    return ", ".join(parts)


class _OnePass:
    """An iterable that can be read once; each item (a tensor or a tuple of tensors) must be used, by a tensor
    operation, before the next one is asked for. Out-of-order reads are recorded in the running trace."""

    def __init__(self, items: Iterable[Any]):
        self._items = list(items)
        self.length = len(self._items)
        self._started = False

    def __iter__(self) -> Iterator[Any]:
        if self._started:
            raise RuntimeError("this iterable can be read only once")
        self._started = True
        return self._generate()

    def _generate(self) -> Iterator[Any]:
        for index, item in enumerate(self._items):
            if index and _ACTIVE_PROBES:  # an item without elements (an empty block) cannot be used
                previous = [t for t in tree_leaves(self._items[index - 1]) if isinstance(t, torch.Tensor)]
                if any(t.numel() for t in previous) and not any(_ACTIVE_PROBES[-1].used(t) for t in previous):
                    _ACTIVE_TRACES[-1].out_of_order.append(index)
            yield item


def one_pass(items: Iterable[Any]) -> Iterable[Any]:
    """``items`` as a stream read once, in order; see :func:`run_answer`. Give each item its own storage
    (e.g. ``.clone()``) so that using one item is not mistaken for using another."""
    return _OnePass(items)


# ------------------------------------------------------------------------------------ isolation
_ISOLATIONS: list["isolated"] = []
_MISSING = object()


class isolated:
    """Rebind names in a notebook's globals to reference functions, and put them back afterwards.

    As a context manager, for tests that sit in one block::

        with isolated(globals(), online_logsumexp=reference_logsumexp):
            ...

    A notebook's grade cell shows its visible tests, which cannot sit inside a hidden ``with`` block; there
    the hidden part at the top calls ``isolated(globals(), ...).begin()`` and the hidden part at the end
    calls :func:`end_isolation`. If a visible assert fails first, the next ``begin()`` (or
    :func:`end_isolation`) puts the learner's functions back before anything else. References put in place
    are let through by :func:`run_answer` (they may call :mod:`solutions`).
    """

    def __init__(self, namespace: dict, **references: Callable):
        self.namespace = namespace
        self.references = references
        self._saved: dict[str, Any] = {}

    def _apply(self) -> None:
        self._saved = {name: self.namespace.get(name, _MISSING) for name in self.references}
        self.namespace.update(self.references)
        _ISOLATIONS.append(self)

    def _undo(self) -> None:
        for name, value in self._saved.items():
            if self.namespace.get(name, _MISSING) is not self.references[name]:
                continue  # redefined meanwhile (a later answer cell ran after a failed grade cell): keep it
            if value is _MISSING:
                self.namespace.pop(name, None)
            else:
                self.namespace[name] = value
        if self in _ISOLATIONS:
            _ISOLATIONS.remove(self)

    def __enter__(self) -> "isolated":
        self._apply()
        return self

    def __exit__(self, *exc) -> None:
        self._undo()

    def begin(self) -> "isolated":
        """Undo every isolation still in place, then apply this one (until :func:`end_isolation`)."""
        end_isolation()
        self._apply()
        return self


def end_isolation() -> None:
    """Put back every name that an isolation still holds, the latest first."""
    while _ISOLATIONS:
        _ISOLATIONS[-1]._undo()
