"""Integrity guards for grading: a fingerprint of what the checks rely on, and a static scan.

The grader cannot trust the student's kernel, so it never relies on the in-kernel verdict alone:

* :func:`fingerprint` records the identity of every public function and class attribute of torch,
  NumPy, ``builtins`` and the course library (and of each function's code object) before any
  student code runs, and after every answer and test cell lists what was replaced; the grader reads
  that list *outside* the kernel: a monkeypatch (``torch.testing.assert_close = ...``, replacing a check,
  rebinding ``builtins.isinstance``) changes the fingerprint and the tests from that point on score
  zero, reported to the instructor.
* :func:`scan_source` reads answer cells without running them and names constructs that have no
  place in an exercise answer: assigning into torch or the course library, ``exec``/``eval``,
  ``ctypes``, ``gc``, ``sys.modules``, code objects, signals, processes and exits.
"""

from __future__ import annotations

import ast
import builtins as _builtins
import sys
import types
from typing import Any

# Bound at import, before student code runs: rebinding builtins later does not reach this module.
dict, getattr, id, isinstance, list, sorted, tuple, type, vars = (
    _builtins.dict, _builtins.getattr, _builtins.id, _builtins.isinstance, _builtins.list,
    _builtins.sorted, _builtins.tuple, _builtins.type, _builtins.vars)

__all__ = ["MIME", "PROTECTED_MODULES", "emit", "fingerprint", "scan_source"]

MIME = "application/x-course-integrity+json"
PROTECTED_MODULES = (
    "builtins", "math", "numpy", "torch", "torch.nn", "torch.nn.functional", "torch.nn.init",
    "torch.nn.modules.module", "torch.optim", "torch.optim.optimizer", "torch.optim.lr_scheduler",
    "torch.autograd", "torch.testing", "torch.utils.data", "torch.linalg", "torch.special",
)
_PROTECTED_CLASSES = ("torch.Tensor", "torch.nn.Module", "torch.nn.Parameter",
                      "torch.optim.Optimizer", "torch.autograd.Function",
                      "torch.utils.data.Dataset", "torch.utils.data.DataLoader")
_BASELINE: dict[str, tuple[int, Any]] = {}
_TRUSTED_PACKAGES = ("torch", "numpy", "course", "torchvision", "torchmetrics", "functools",
                     "ipykernel", "IPython",
                     "typing", "warnings", "contextlib", "builtins", "math")


def _entries(owner: Any, prefix: str, out: dict[str, tuple[int, Any]]) -> None:
    try:
        items = list(vars(owner).items())
    except TypeError:
        return
    for name, value in items:
        dunder = name.startswith("__") and name.endswith("__")
        private_ok = prefix.startswith("course") and name != "__builtins__"
        if name.startswith("_") and not (dunder and isinstance(owner, type)) and not private_ok:
            continue
        key = f"{prefix}.{name}"
        out[key] = (id(value), value)
        code = getattr(value, "__code__", None)
        if isinstance(code, types.CodeType):
            out[key + ".__code__"] = (id(code), code)


def _snapshot() -> dict[str, tuple[int, Any]]:
    out: dict[str, tuple[int, Any]] = {}
    names = list(PROTECTED_MODULES) + sorted(m for m in sys.modules
                                             if m == "course" or m.startswith("course."))
    for name in names:
        module = sys.modules.get(name)
        if module is None:
            continue
        out[f"sys.modules[{name}]"] = (id(module), module)
        _entries(module, name, out)
        if name.startswith("course"):  # the checks' own functions and their globals
            for attr, value in list(vars(module).items()):
                if isinstance(value, types.FunctionType):
                    out[f"{name}.{attr}.__globals__"] = (id(value.__globals__), value.__globals__)
    for dotted in _PROTECTED_CLASSES:
        mod, _, cls = dotted.rpartition(".")
        owner = getattr(sys.modules.get(mod), cls, None)
        if isinstance(owner, type):
            for klass in owner.__mro__[:-1]:
                _entries(klass, f"{dotted}<{klass.__name__}>", out)
    return out


def _trusted_dirs() -> tuple[str, ...]:
    import os

    dirs = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.dirname(__file__))}
    return tuple(os.path.realpath(d) + os.sep for d in dirs)


def _benign(value: Any) -> bool:
    """A replacement made by a library itself (torch wraps some functions on lazy imports)."""
    import os

    if isinstance(value, types.CodeType):
        path = os.path.realpath(value.co_filename)
        return os.path.isfile(path) and path.startswith(_trusted_dirs())
    code = getattr(value, "__code__", None)
    if isinstance(code, types.CodeType) and not _benign(code):
        return False
    module = getattr(value, "__module__", None) or type(value).__module__ or ""
    return module.split(".")[0] in _TRUSTED_PACKAGES


def fingerprint() -> list[str]:
    """The protected names whose object was replaced by outside code since the first call.

    Names that appear later (torch loads submodules lazily) and replacements made by the
    libraries themselves do not count.
    """
    try:
        snap = _snapshot()
        if not _BASELINE:
            _BASELINE.update(snap)
        changed = [k for k, (ident, value) in snap.items()
                   if k in _BASELINE and _BASELINE[k][0] != ident and not _benign(value)]
        removed = [k for k in _BASELINE if k not in snap]
    except BaseException as exc:  # noqa: BLE001 - a broken environment is itself the finding
        return [f"<the integrity check itself failed: {type(exc).__name__}>"]
    return (changed + removed)[:20]


def emit(tag: str) -> None:
    """Publish the tampered names as a display output the grader reads (students never see it)."""
    from IPython.display import publish_display_data

    publish_display_data({MIME: {"tag": tag, "changed": fingerprint()}, "text/plain": ""})


_BANNED_MODULES = {"ctypes", "gc", "inspect", "importlib", "builtins", "signal", "subprocess",
                   "multiprocessing", "threading", "_thread", "socket", "marshal", "pickle",
                   "course.integrity", "resource", "sys", "__main__", "faulthandler", "ptrace",
                   "mmap", "shutil"}
_BANNED_CALLS = {"exec", "eval", "compile", "__import__", "globals", "breakpoint",
                 "setattr", "delattr", "vars"}
_BANNED_ATTRS = {"__code__", "__globals__", "__builtins__", "__subclasses__", "__dict__",
                 "f_globals", "f_locals", "f_back", "_exit", "fork", "kill", "killpg", "setrecursionlimit",
                 "modules", "system", "popen", "execv", "execve", "spawnv", "unlink", "remove",
                 "rmtree", "__setattr__", "__delattr__", "__module__", "__qualname__"}
_PROTECTED_ROOTS = {"torch", "nn", "F", "np", "numpy", "course", "check", "checks", "math",
                    "builtins", "optim"}


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def scan_source(source: str) -> list[str]:
    """Constructs in an answer cell that tamper with the grader's environment, as sentences."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []  # a syntax error fails on its own when the cell runs
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names]
            mods = [node.module or ""] if isinstance(node, ast.ImportFrom) else names
            for mod in mods:
                top = mod.split(".")[0]
                if mod in _BANNED_MODULES or top in _BANNED_MODULES:
                    found.append(f"imports {mod}")
                elif isinstance(node, ast.ImportFrom) and top == "os":
                    bad = [n for n in names if n in _BANNED_ATTRS]
                    found += [f"imports os.{n}" for n in bad]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in _BANNED_CALLS:
            found.append(f"calls {node.func.id}()")
        elif isinstance(node, ast.Attribute) and node.attr in _BANNED_ATTRS:
            found.append(f"uses .{node.attr}")
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute | ast.Subscript) \
                        and _root_name(target) in _PROTECTED_ROOTS:
                    found.append(f"assigns to {ast.unparse(target)}")
                elif isinstance(target, ast.Name) and target.id in {"check", "checks", "course",
                                                                     "torch", "nn", "F"}:
                    found.append(f"rebinds the name {target.id}")
        elif isinstance(node, ast.Global):
            bad = [n for n in node.names if n in {"check", "checks", "course", "torch"}]
            found += [f"declares global {n}" for n in bad]
    seen: set[str] = set()
    return [f for f in found if not (f in seen or seen.add(f))]
