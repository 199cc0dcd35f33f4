"""What the judge reads in answer cells without running them, besides each check's delegation rules.

* **Tampering**: code that reaches into torch, the course library, the interpreter's machinery or
  the grader (assigning into ``torch``/``F``/``course``/``check``, ``sys.modules``, frames and
  tracebacks, ``gc``, ``ctypes``, trace hooks, torch function modes, the grader's private modules).
  No exercise needs it, and its only use in a graded notebook is to forge what the scenarios
  record: every test of the notebook scores 0 and the instructor sees why.
* **Needs a look**: constructs the judge cannot resolve statically (``exec``/``eval``, computed
  ``getattr``/imports). They cost nothing; the instructor is told where to look.

Idiomatic code is never flagged: ``self.__dict__``, ``setattr(self, ...)``, ``vars(self)``,
``super().__init__()``, decorators, helpers, ``torch.no_grad()``, printing, warnings, tqdm.
"""

from __future__ import annotations

import ast

__all__ = ["scan_answer"]

_PROTECTED_ROOTS = {"torch", "nn", "F", "np", "numpy", "course", "check", "checks", "math",
                    "builtins", "optim", "sys", "IPython", "init", "functional", "tv",
                    "torchvision", "pd", "pandas"}
_TAMPER_MODULES = {"ctypes", "gc", "_ctypes", "cffi", "course.grader", "course.checks._core",
                   "course.checks._transcript", "course.checks._guards", "sysconfig", "_thread",
                   "faulthandler", "resource", "torch._C._functions"}
_TAMPER_ATTRS = {"f_back", "f_globals", "f_locals", "f_builtins", "tb_frame", "tb_next",
                 "gi_frame", "cr_frame", "ag_frame", "settrace", "setprofile", "_getframe",
                 "__subclasses__", "__builtins__", "get_referrers", "get_objects",
                 "_push_mode", "_pop_mode", "_set_torch_function_mode", "TorchFunctionMode",
                 "TorchDispatchMode", "__globals__", "__closure__", "co_consts",
                 "set_custom_exc", "register_magic_function"}
_SYS_ATTRS = {"modules", "meta_path", "path_hooks", "displayhook", "excepthook"}  # only on sys
_SETTINGS = ("torch.backends.",)  # configuration an answer may set (cudnn.deterministic ...)
_LOOK_CALLS = {"exec", "eval", "compile", "__import__", "globals", "breakpoint"}


def _root(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def scan_answer(source: str) -> tuple[list[str], list[str]]:
    """(tampering findings, needs-a-look findings) for one answer cell, as short phrases."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return [], []
    tamper: list[str] = []
    look: list[str] = []
    roots = set(_PROTECTED_ROOTS)
    for node in ast.walk(tree):  # `import course.checks.tensors as T` makes T protected too
        if isinstance(node, ast.Import | ast.ImportFrom):
            base = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
            for alias in node.names:
                full = f"{base}.{alias.name}" if base else alias.name
                if full.split(".")[0] in _PROTECTED_ROOTS | {"IPython", "os"}:
                    roots.add((alias.asname or alias.name).split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for mod in mods:
                if any(mod == m or mod.startswith(m + ".") for m in _TAMPER_MODULES):
                    tamper.append(f"imports {mod}")
                elif mod.split(".")[0] == "importlib":
                    look.append(f"imports {mod}")
            if isinstance(node, ast.ImportFrom):
                bad = [a.name for a in node.names if a.name in _TAMPER_ATTRS]
                tamper += [f"imports {node.module}.{name}" for name in bad]
        elif isinstance(node, ast.Attribute) and (
                node.attr in _TAMPER_ATTRS or (node.attr in _SYS_ATTRS and _root(node) in ("sys", "os"))):
            tamper.append(f"uses .{node.attr}")
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if (isinstance(sub, ast.Attribute | ast.Subscript) and _root(sub) in roots
                            and not ast.unparse(sub).startswith(_SETTINGS)):
                        tamper.append(f"assigns to {ast.unparse(sub)[:60]}")
                        break
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name in ("setattr", "delattr") and node.args and _root(node.args[0]) in roots:
                tamper.append(f"calls {name}() on {ast.unparse(node.args[0])[:40]}")
            elif name in _LOOK_CALLS:
                look.append(f"calls {name}()")
            elif name == "getattr" and len(node.args) >= 2 and not isinstance(node.args[1], ast.Constant):
                look.append("calls getattr() with a computed name")
    return _unique(tamper), _unique(look)


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    return [i for i in items if not (i in seen or seen.add(i))]
