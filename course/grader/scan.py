"""What the judge reads in answer cells without running them, besides each check's delegation rules.

* **Tampering**: code that reaches into torch, the course library, the interpreter's machinery or
  the grader: assigning into ``torch``/``F``/``course``/``check`` (aliases included) or into any
  object reached by a call (``type(x).f = ...``, ``vars(m)[k] = ...``), mutating another object's
  ``__dict__``, ``sys.modules``, frames and tracebacks (``inspect.stack``, ``f_locals`` ...),
  ``gc.get_objects``, ``ctypes``, trace hooks, torch function modes, custom exception handlers,
  importing the course's checks or grader, star imports (which rebind names nobody can see). No
  exercise needs them; their only use in a graded notebook is to forge what the scenarios record:
  every test of the notebook scores 0 and the instructor sees why.
* **Needs a look**: what the judge cannot resolve statically (``exec``/``eval``, computed
  ``getattr``, ``vars(...)`` of another object, computed imports, ``get_ipython()``). It costs
  nothing; the instructor is told where to look.

Idiomatic code is never flagged: ``self.__dict__``, ``setattr(self, ...)``, ``vars(self)``,
``super().__init__()``, a local variable that happens to be called ``check`` or ``F``,
``gc.collect()``, decorators, helpers, ``torch.no_grad()``, printing, warnings, tqdm.
"""

from __future__ import annotations

import ast

__all__ = ["scan_answer"]

_PROTECTED_ROOTS = {"torch", "nn", "F", "np", "numpy", "course", "check", "checks", "math",
                    "builtins", "optim", "sys", "IPython", "init", "functional", "tv",
                    "torchvision", "pd", "pandas", "os", "operator", "functools", "inspect"}
_TAMPER_MODULES = ("ctypes", "_ctypes", "cffi", "course.grader", "course.checks", "_thread",
                   "faulthandler", "torch._C", "torch.overrides", "torch.utils._python_dispatch")
_TAMPER_ATTRS = {"f_back", "f_globals", "f_locals", "f_builtins", "f_code", "tb_frame", "tb_next",
                 "gi_frame", "cr_frame", "ag_frame", "settrace", "setprofile", "_getframe",
                 "__subclasses__", "__builtins__", "get_referrers", "get_referents", "get_objects",
                 "_push_mode", "_pop_mode", "_set_torch_function_mode", "TorchFunctionMode",
                 "TorchDispatchMode", "__globals__", "__closure__", "co_consts", "co_code",
                 "set_custom_exc", "register_magic_function", "__torch_function__", "__torch_dispatch__", "_disabled_torch_function_impl"}
_INSPECT_ATTRS = {"stack", "currentframe", "getouterframes", "getinnerframes", "getargvalues",
                  "getframeinfo", "trace", "getmembers"}  # only on inspect
_SYS_ATTRS = {"modules", "meta_path", "path_hooks", "displayhook", "excepthook", "audit",
              "addaudithook"}  # only on sys
_SETTINGS = ("torch.backends.", "os.environ[")  # configuration an answer may set (cudnn.deterministic ...)
_LOOK_CALLS = {"exec", "eval", "compile", "__import__", "globals", "breakpoint", "get_ipython"}
_OWN = {"self", "cls", "ctx"}
_MUTATORS = {"update", "setdefault", "pop", "popitem", "clear", "__setitem__", "__delitem__"}


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node


def _locals_of(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    args = fn.args
    names = {a.arg for a in args.args + args.posonlyargs + args.kwonlyargs}
    names |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    body = fn.body if isinstance(fn.body, list) else [fn.body]
    for stmt in body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return names


class _Scan(ast.NodeVisitor):
    def __init__(self, roots: set[str], inspect_names: set[str]):
        self.roots, self.scopes, self.inspect_names = roots, [set()], inspect_names
        self.tamper: list[str] = []
        self.look: list[str] = []

    def protected(self, node: ast.AST) -> bool:
        root = _root(node)
        if isinstance(root, ast.Call):
            return True  # an object reached through a call: type(x), vars(m), getattr(...)
        return isinstance(root, ast.Name) and root.id in self.roots and root.id not in self.scopes[-1]

    def own(self, node: ast.AST) -> bool:
        root = _root(node)
        return isinstance(root, ast.Name) and (root.id in _OWN or root.id in self.scopes[-1])

    def visit_FunctionDef(self, node: ast.AST) -> None:
        self.scopes.append(self.scopes[-1] | _locals_of(node))
        self.generic_visit(node)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        mods = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        for mod in mods:
            if any(mod == m or mod.startswith(m + ".") for m in _TAMPER_MODULES):
                self.tamper.append(f"imports {mod}")
            elif mod.split(".")[0] == "importlib":
                self.look.append(f"imports {mod}")
        if isinstance(node, ast.ImportFrom):
            if any(a.name == "*" for a in node.names):
                self.tamper.append(f"star-imports {node.module} (it rebinds names nobody can see)")
            special = {"sys": {"modules"}, "inspect": _INSPECT_ATTRS}.get(node.module or "", set())
            self.tamper += [f"imports {node.module}.{a.name}" for a in node.names
                            if a.name in _TAMPER_ATTRS | special]

    visit_ImportFrom = visit_Import

    def visit_Attribute(self, node: ast.Attribute) -> None:
        root = _root(node)
        on_sys = isinstance(root, ast.Name) and root.id in ("sys", "os")
        on_inspect = isinstance(root, ast.Name) and root.id in self.inspect_names
        if (node.attr in _TAMPER_ATTRS or (node.attr in _SYS_ATTRS and on_sys)
                or (node.attr in _INSPECT_ATTRS and on_inspect)):
            self.tamper.append(f"uses .{node.attr}")
        elif node.attr == "__dict__" and not self.own(node.value):
            self.look.append("reads another object's __dict__")
        self.generic_visit(node)

    def _target(self, target: ast.AST) -> None:
        parts = [target]
        while any(isinstance(p, ast.Tuple | ast.List | ast.Starred) for p in parts):
            parts = [q for p in parts for q in (p.elts if isinstance(p, ast.Tuple | ast.List)
                                                 else [p.value] if isinstance(p, ast.Starred) else [p])]
        for sub in parts:
            if not isinstance(sub, ast.Attribute | ast.Subscript):
                continue
            text = _unparse(sub)
            if self.protected(sub) and not text.startswith(_SETTINGS):
                self.tamper.append(f"assigns to {text}")
                return
            if isinstance(sub, ast.Subscript) and isinstance(sub.value, ast.Attribute) \
                    and sub.value.attr == "__dict__" and not self.own(sub.value.value):
                self.tamper.append(f"writes into another object's __dict__ ({text})")
                return

    def visit_Assign(self, node: ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete) -> None:
        targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
        for target in targets:
            self._target(target)
        self.generic_visit(node)

    visit_AugAssign = visit_AnnAssign = visit_Delete = visit_Assign

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else ""
        first = node.args[0] if node.args else None
        if name in ("setattr", "delattr") or (isinstance(func, ast.Attribute) and func.attr in (
                "__setattr__", "__delattr__") and isinstance(func.value, ast.Name)
                and func.value.id in ("object", "type")):
            if first is not None and self.protected(first):
                self.tamper.append(f"calls {_unparse(func)}() on {_unparse(first)}")
            elif first is not None and not self.own(first):
                self.look.append(f"calls {_unparse(func)}() on {_unparse(first)}")
        elif name in _LOOK_CALLS:
            self.look.append(f"calls {name}()")
        elif name == "vars" and first is not None and not self.own(first):
            self.look.append("calls vars() on another object")
        elif name == "getattr" and len(node.args) >= 2 and not isinstance(node.args[1], ast.Constant):
            self.look.append("calls getattr() with a computed name")
        elif (isinstance(func, ast.Attribute) and func.attr in ("attrgetter", "methodcaller",
                                                                "__getattribute__", "import_module")
              and not all(isinstance(a, ast.Constant) for a in node.args)):
            self.look.append(f"calls {func.attr}() with a computed name")
        if isinstance(func, ast.Attribute) and func.attr in _MUTATORS:
            base = func.value
            mutated = ((isinstance(base, ast.Call) and isinstance(base.func, ast.Name)
                        and base.func.id == "vars" and base.args and not self.own(base.args[0]))
                       or (isinstance(base, ast.Attribute) and base.attr == "__dict__"
                           and not self.own(base.value)))
            if mutated:
                self.tamper.append(f"changes another object's attributes ({_unparse(func)})")
        self.generic_visit(node)


def _unparse(node: ast.AST) -> str:
    try:
        return ast.unparse(node)[:60]
    except (RecursionError, ValueError, MemoryError):
        return "<expression>"


def scan_answer(source: str) -> tuple[list[str], list[str]]:
    """(tampering findings, needs-a-look findings) for one answer cell, as short phrases."""
    from ..checks._guards import safe_parse

    tree = safe_parse(source)
    if tree is None:
        return [], []
    roots = set(_PROTECTED_ROOTS)
    inspect_names = {"inspect"}
    for node in ast.walk(tree):  # `import course.checks.tensors as T` makes T protected too
        if isinstance(node, ast.Import | ast.ImportFrom):
            base = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
            for alias in node.names:
                full = f"{base}.{alias.name}" if base else alias.name
                if full.split(".")[0] in _PROTECTED_ROOTS:
                    roots.add((alias.asname or alias.name).split(".")[0])
                if full == "inspect":
                    inspect_names.add(alias.asname or "inspect")
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in ("__import__", "import_module", "getattr", "vars", "globals", "locals"):
                # `m = __import__("course.checks.tensors")`: m is as protected as what it names
                roots |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    scan = _Scan(roots, inspect_names)
    try:
        scan.visit(tree)
    except RecursionError:
        return [], ["is nested too deeply to read"]
    return _unique(scan.tamper), _unique(scan.look)


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    return [i for i in items if not (i in seen or seen.add(i))]
