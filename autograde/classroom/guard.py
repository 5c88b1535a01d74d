"""Kernel-side code that keeps the graders' tools honest.

A learner's cell can replace what the tests rely on: ``torch.allclose = lambda *a, **k: True``, a
function of ``torch.testing``, a builtin, the reference in ``solutions``, or IPython's own machinery
(an input transformer that rewrites the next cell, a custom exception handler that swallows a failed
assert, a trace function). :data:`INSTALL` runs first in every kernel, before any learner code: it
imports the libraries the tests use and records every function, class and module they hold. Before each
test cell the grader evaluates :data:`RESTORE`, which puts every replaced one back, removes what was added
to IPython's hooks, and returns the names it repaired (the grader reports them to the learner).

This protects the tests from code that patches them in passing; code written to attack this guard
itself can still cheat, but only its own grade: the sandbox keeps it away from everything else.
"""

GUARD_MODULE = "__course_grader_guard__"

INSTALL = r'''
def __course_grader_install():
    import builtins, sys, types, warnings
    warnings.filterwarnings("ignore", message=".*deprecated.*", category=FutureWarning)
    import math, operator, functools, numpy, torch, torch.testing, torch.nn.functional
    import solutions
    from IPython import get_ipython

    watched = ("builtins", "math", "operator", "functools", "numpy", "torch", "solutions")
    # rebound by IPython or ipykernel on every execution, not by the learner
    skip = {"_", "__", "___", "input", "get_ipython", "display", "exit", "quit"}
    shell = get_ipython()

    def callable_items(namespace):
        return {k: v for k, v in namespace.items()
                if k not in skip and (callable(v) or isinstance(v, types.ModuleType))}

    class Guard:
        def __init__(self):
            self.snapshot()
            self.shell_hooks = {
                "input_transformers_cleanup": list(shell.input_transformers_cleanup),
                "input_transformers_post": list(shell.input_transformers_post),
                "ast_transformers": list(shell.ast_transformers),
            }
            self.events = {name: list(cbs) for name, cbs in shell.events.callbacks.items()}
            self.import_ = builtins.__import__
            self.shell_methods = {k: v for k, v in vars(shell).items() if callable(v)}

        def snapshot(self):
            """Record the state that grader code left (after the set-up cells and after each test).
            A module already recorded, whose namespace has as many names as then, keeps its record:
            tests add names (imports, helpers) but do not rebind them, and walking the thousand
            modules of torch again after every test cost 20 ms each time."""
            before = getattr(self, "modules", {})
            self.modules = {}
            for name, module in list(sys.modules.items()):
                if module is None or name.split(".")[0] not in watched:
                    continue
                namespace = vars(module)
                old = before.get(name)
                if old is not None and old[0] is module and old[2] == len(namespace):
                    self.modules[name] = old
                else:
                    self.modules[name] = (module, callable_items(namespace), len(namespace))
            self.classes = {cls: dict(vars(cls)) for cls in (torch.Tensor, torch._C.TensorBase, torch.nn.Module)}

        def restore(self):
            repaired = []
            for name, (module, items, _) in self.modules.items():
                if sys.modules.get(name) is not module:
                    sys.modules[name] = module
                    repaired.append(f"sys.modules[{name!r}]")
                current = vars(module)
                for key, value in items.items():
                    if current.get(key, items) is not value:
                        setattr(module, key, value)
                        repaired.append(f"{name}.{key}")
            for cls, items in self.classes.items():
                for key in [k for k in vars(cls) if k not in items]:
                    try:
                        delattr(cls, key)
                        repaired.append(f"{cls.__name__}.{key}")
                    except (AttributeError, TypeError):
                        pass
                for key, value in items.items():
                    if vars(cls).get(key, items) is not value:
                        try:
                            setattr(cls, key, value)
                            repaired.append(f"{cls.__name__}.{key}")
                        except (AttributeError, TypeError):
                            pass
            for attr, original in self.shell_hooks.items():
                if getattr(shell, attr) != original:
                    getattr(shell, attr)[:] = original
                    repaired.append(f"IPython {attr}")
            for key, value in list(vars(shell).items()):  # a method replaced on the shell (run_cell, showtraceback)
                if key in self.shell_methods and value is not self.shell_methods[key]:
                    setattr(shell, key, self.shell_methods[key])
                    repaired.append(f"IPython shell.{key}")
                elif key not in self.shell_methods and callable(value) and callable(getattr(type(shell), key, None)):
                    delattr(shell, key)
                    repaired.append(f"IPython shell.{key}")
            if shell.custom_exceptions:
                shell.set_custom_exc((), None)
                repaired.append("IPython custom exception handler")
            for name, original in self.events.items():
                if shell.events.callbacks.get(name) != original:
                    shell.events.callbacks[name] = list(original)
                    repaired.append(f"IPython event {name}")
            if sys.gettrace() is not None or sys.getprofile() is not None:
                sys.settrace(None)
                sys.setprofile(None)
                repaired.append("sys.settrace/setprofile")
            if builtins.__import__ is not self.import_:
                builtins.__import__ = self.import_
                repaired.append("builtins.__import__")
            return sorted(set(repaired))

    module = types.ModuleType("__course_grader_guard__")
    module.guard = Guard()
    sys.modules["__course_grader_guard__"] = module

__course_grader_install()
del __course_grader_install
'''

SNAPSHOT = "__import__('sys').modules['__course_grader_guard__'].guard.snapshot()"
RESTORE = "__import__('sys').modules['__course_grader_guard__'].guard.restore()"
