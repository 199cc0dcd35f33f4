"""Delegation rules: an answer may not *be*, subclass or call the reference it is checked against.

The rules read source text, never run it. The judge applies them to the answer cells as the
student submitted them; a self-check applies them to the source ``inspect`` finds for the objects
in the kernel. A scenario may add evidence from a :func:`tripwire` (a reference that was actually
called), which can only accuse: an attacker who erases it is still judged by the source.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._core import CheckFailure, note_evidence

if TYPE_CHECKING:
    from ._core import Check, Delegation

__all__ = ["delegation_failure", "findings_for_objects", "findings_for_source", "safe_parse",
           "tripwire"]

# Calls whose string arguments name attributes or modules: getattr(torch, "relu") uses relu.
_NAMING_CALLS = {"getattr", "hasattr", "attrgetter", "methodcaller", "__import__",
                 "import_module", "__getattribute__", "get_submodule"}


def safe_parse(text: str) -> ast.Module | None:
    """The syntax tree of ``text`` (IPython syntax turned into Python first), or None when it
    cannot be read: nothing a student writes makes the parser crash the grader."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        text = TransformerManager().transform_cell(text)
    except Exception:  # noqa: BLE001 - IPython missing or confused: parse the text as it is
        pass
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError, TypeError):
        return None


def _naming_strings(tree: ast.AST) -> set[str]:
    """Strings used as names: arguments of getattr-like calls, keys into vars()/__dict__."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in _NAMING_CALLS:
                found |= {a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                and isinstance(node.slice.value, str):
            base = node.value
            if (isinstance(base, ast.Attribute) and base.attr == "__dict__") or (
                    isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "vars"):
                found.add(node.slice.value)
    return found


def _names_in(tree: ast.AST) -> tuple[set[str], set[str], set[str], set[str]]:
    """(attribute names, strings used as names, names imported from torch, base-class names)."""
    attrs, imported, bases = set(), set(), set()
    strings = _naming_strings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls", "ctx")):
                attrs.add(node.attr)  # `self.dropout` is the student's own attribute
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ClassDef):
            for base in node.bases:
                if isinstance(base, ast.Attribute):
                    bases.add(base.attr)
                elif isinstance(base, ast.Name):
                    bases.add(base.id)
    return attrs, strings, imported, bases


def torch_names(preamble: Iterable[str]) -> set[str]:
    """Names the notebook's setup cells import from torch (``from torch.utils.data import
    DataLoader``): used bare in an answer, they are torch's objects."""
    found: set[str] = set()
    for source in preamble:
        tree = safe_parse(source)
        if tree is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("torch", "torchvision"):
                found |= {alias.asname or alias.name for alias in node.names}
    return found


def findings_for_source(rules: Delegation, sources: Iterable[str],
                        preamble_names: Iterable[str] = ()) -> list[str]:
    """Why the answer's source delegates to the reference (empty: it does not).

    ``preamble_names`` are names bound to torch objects outside the answer (see
    :func:`torch_names`); an answer that uses one bare without defining it uses torch's.
    """
    used: set[str] = set()
    subclassed: set[str] = set()
    outside = set(preamble_names)
    for source in sources:
        tree = safe_parse(textwrap.dedent(source))
        if tree is None:
            continue  # the judge grades unreadable answers as unanswered
        attrs, strings, imported, bases = _names_in(tree)
        defined = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        defined |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)}
        bare = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        imported |= (bare & outside) - defined
        if any(isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] in ("torch", "torchvision")
               and any(a.name == "*" for a in n.names) for n in ast.walk(tree)):
            imported |= bare - defined  # `from torch import *`: every free name may be torch's
        used |= (attrs | strings | imported) & rules.names
        used |= (attrs | strings) & rules.attrs
        subclassed |= bases & rules.bases
    found = [f"it subclasses {name}" for name in sorted(subclassed)]
    if used:
        found.append(f"its code uses: {', '.join(sorted(used))}")
    return found


def _source_of(obj: Any) -> str | None:
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        pass
    if inspect.isclass(obj):  # a class typed into a notebook: the sources of its own methods
        parts = []
        for value in vars(obj).values():
            func = getattr(value, "__func__", value)
            func = getattr(func, "fget", func)
            if inspect.isfunction(func):
                try:
                    parts.append(textwrap.dedent(inspect.getsource(func)))
                except (OSError, TypeError):
                    continue
        bases = ", ".join(f"{b.__module__}.{b.__qualname__}" for b in obj.__bases__)
        return f"class {obj.__name__}({bases}):\n    pass\n" + "\n".join(parts)
    return None


def findings_for_objects(check: Check, answers: Sequence[Any]) -> list[str]:
    """In-process form of the judge's rule: the answers' sources as ``inspect`` finds them."""
    rules = check.delegation
    if rules is None:
        return []
    sources, found, outside = [], [], set()
    for obj in answers:
        source = _source_of(obj)
        if source is not None:
            sources.append(source)
            for g in _globals(obj):  # names the kernel binds to torch objects
                outside |= {k for k, v in g.items()
                            if str(getattr(v, "__module__", "") or "").split(".")[0] == "torch"}
            continue
        module = str(getattr(obj, "__module__", None) or type(obj).__module__ or "")
        if inspect.isbuiltin(obj) or module.split(".")[0] == "torch":
            found.append(f"{check.exercise} is {getattr(obj, '__qualname__', obj)!s}, not your own code")
    return found + findings_for_source(rules, sources, outside)


def _globals(obj: Any) -> list[dict]:
    funcs = [obj] if not inspect.isclass(obj) else [getattr(v, "__func__", v) for v in vars(obj).values()]
    return [f.__globals__ for f in funcs if inspect.isfunction(f)][:1]


def delegation_failure(check: Check, findings: Sequence[str]) -> CheckFailure:
    hint = check.delegation.hint if check.delegation is not None else ""
    return CheckFailure(f"{check.exercise} delegates to the PyTorch reference it is checked "
                        f"against; that earns no credit. {hint}".strip(), "; ".join(findings))


@contextmanager
def tripwire(targets: Sequence[tuple[Any, str]]) -> Iterator[None]:
    """Scenario side: while active, calling ``getattr(owner, name)`` for a target is noted as
    evidence of delegation (the verdict then fails the test). It only ever accuses."""
    saved = []

    def wrap(owner: Any, name: str, original: Any) -> Any:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            note_evidence(f"it called {getattr(owner, '__name__', owner)}.{name}")
            return original(*args, **kwargs)

        return guarded

    for owner, name in targets:
        own = name in vars(owner)
        original = vars(owner)[name] if own else getattr(owner, name)
        saved.append((owner, name, original, own))
        if callable(original) and not hasattr(original, "__set__"):
            setattr(owner, name, wrap(owner, name, original))
        else:  # a property such as Tensor.T: wrap its getter
            getter = original.__get__
            setattr(owner, name, property(wrap(owner, name, lambda obj, g=getter: g(obj))))
    try:
        yield
    finally:
        for owner, name, original, own in saved:
            if own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)
