"""Checking functions behind the notebooks' test cells, one module per topic.

Each check compares a student's object with PyTorch's own reference and raises
:class:`CheckFailure` whose message names the concept that was missed. Test cells stay thin::

    from course.checks import tensors as check
    check.contiguous_strides(contiguous_strides)
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from ._core import CheckFailure

__all__ = ["CheckFailure"]


def _short_failures_in_ipython() -> None:
    """In a notebook, show a failed check as one red message, not a traceback into the checks."""
    ipython = sys.modules.get("IPython")  # not imported: not in a notebook, nothing to do
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return

    def show(shell, etype, value, tb, tb_offset=None):
        shell.showtraceback((etype, value, tb), exception_only=True)

    shell.set_custom_exc((CheckFailure,), show)


_short_failures_in_ipython()


def __getattr__(name: str) -> Any:
    """Topic modules (``course.checks.tensors`` ...) load on first use."""
    here = Path(__file__).parent
    if not name.startswith("_") and ((here / f"{name}.py").is_file() or (here / name / "__init__.py").is_file()):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'course.checks' has no attribute {name!r}")
