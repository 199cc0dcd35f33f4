"""The checks' pre-split helpers, kept only until every check module is a scenario + verdict.

They call student code and judge in the same interpreter; new checks use ``_core.Check``.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import textwrap
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ._core import CheckFailure, _short, require  # noqa: F401

_isinstance = isinstance


def call(fn: Callable[..., Any], *args: Any, name: str, hidden: bool = False, **kwargs: Any) -> Any:
    """Call the student's ``fn``; turn a stub or a crash into a failure that says what happened."""
    __tracebackhide__ = True
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise CheckFailure(
            f"{name} is not implemented yet: replace `raise NotImplementedError()` in its answer "
            "cell with your code, run that cell, then run this test again"
        ) from None
    except CheckFailure:
        raise
    except Exception as exc:  # the student's code crashed: report it, not our internals
        shown = ", ".join([_short(a, 60) for a in args] + [f"{k}={_short(v, 60)}" for k, v in kwargs.items()])
        raise CheckFailure(
            f"{name} raised {type(exc).__name__}: {exc}",
            f"called as {name}({shown})",
            hidden,
        ) from None


# --- delegation guards -------------------------------------------------------------------------

def _source_of(obj: Any) -> str | None:
    """Source of a function or class; for a class defined in a notebook (where inspect cannot
    find a file) the sources of its own methods."""
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        pass
    if inspect.isclass(obj):
        parts = []
        for value in vars(obj).values():
            func = getattr(value, "__func__", value)
            if inspect.isfunction(func):
                try:
                    parts.append(textwrap.dedent(inspect.getsource(func)))
                except (OSError, TypeError):
                    continue
        return "\n".join(parts) if parts else None
    return None


def _names_used(tree: ast.AST) -> set[str]:
    """Attribute names, strings, and names imported from torch (``from torch import relu``).

    A bare name is not counted unless it was imported from torch: a student's own helper may
    share a name with the reference (their ``sigmoid`` used inside their ``tanh``).
    """
    found: set[str] = set()
    for node in ast.walk(tree):
        if _isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif _isinstance(node, ast.Constant) and _isinstance(node.value, str):
            found.add(node.value)  # getattr(torch, "transpose") spells the name in a string
        elif _isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            found.update(alias.name for alias in node.names)
    return found


def forbid_delegation(obj: Any, forbidden: Sequence[str], exercise: str, allowed_hint: str,
                      references: Sequence[Any] = ()) -> None:
    """Refuse an answer that is, subclasses, or calls the reference it is checked against.

    ``forbidden`` are attribute or function names the answer's source may not use;
    ``references`` are the reference objects themselves (``obj`` may not be or subclass them).
    """
    __tracebackhide__ = True
    msg = (f"{exercise} delegates to the PyTorch reference it is checked against; that earns no "
           f"credit. {allowed_hint}")
    for ref in references:
        require(obj is not ref, msg, f"{exercise} is {getattr(ref, '__qualname__', ref)}")
        if inspect.isclass(obj) and inspect.isclass(ref):
            require(not issubclass(obj, ref), msg, f"{exercise} subclasses {ref.__qualname__}")
    source = _source_of(obj)
    if source is None:
        # Built-ins and torch's own functions have no Python source here: not the student's work.
        own_module = str(getattr(obj, "__module__", None) or "")
        require(not (inspect.isbuiltin(obj) or own_module.split(".")[0] == "torch"),
                msg, f"{exercise} is {obj!r}, not your own code")
        return
    used = _names_used(ast.parse(source)) & set(forbidden)
    require(not used, msg, f"its code uses: {', '.join(sorted(used))}")


@contextlib.contextmanager
def tripwire(targets: Sequence[tuple[Any, str]], exercise: str, allowed_hint: str) -> Iterator[None]:
    """While active, calling any ``getattr(owner, name)`` in ``targets`` fails the check.

    This catches delegation that the source scan cannot see (a helper defined elsewhere, a name
    assembled at run time).
    """
    hits: list[str] = []
    saved = []

    def wrap(owner: Any, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            hits.append(f"{getattr(owner, '__name__', owner)}.{name}")
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
    require(not hits,
            f"{exercise} calls the PyTorch reference it is checked against; that earns no credit. "
            f"{allowed_hint}", f"it called {', '.join(sorted(set(hits)))}")
