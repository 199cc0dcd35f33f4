"""Tiny helpers for writing an nbgrader instructor notebook from a Python script.

The notebook in ``solutions/`` is the single source; use this to draft a new one quickly (or mark
cells in JupyterLab with nbgrader's "Create Assignment" toolbar instead), then edit the notebook.

    from nbbuild import md, code, answer, tests, write
    write("solutions/99_demo/99_demo.ipynb", [md("# Demo"), code("import torch"), ...])
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

_counter = itertools.count()


def _meta(gid: str, *, grade: bool, solution: bool, locked: bool, points: int = 0) -> dict:
    meta = {"grade": grade, "grade_id": gid, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def _clean(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def md(text: str, gid: str | None = None):
    """A read-only markdown cell."""
    cell = new_markdown_cell(_clean(text))
    cell.metadata = _meta(gid or f"md_{next(_counter)}", grade=False, solution=False, locked=True)
    return cell


def code(src: str, gid: str | None = None, locked: bool = False):
    """An ordinary code cell (locked when it sets things up the tests rely on)."""
    cell = new_code_cell(_clean(src))
    if locked or gid:
        cell.metadata = _meta(gid or f"code_{next(_counter)}", grade=False, solution=False,
                              locked=locked)
    return cell


def answer(gid: str, src: str):
    """An answer cell: the ``### BEGIN SOLUTION`` region becomes the student's stub."""
    cell = new_code_cell(_clean(src))
    cell.metadata = _meta(gid, grade=False, solution=True, locked=False)
    return cell


def tests(gid: str, src: str, points: int):
    """A locked, autograded test cell worth ``points``."""
    cell = new_code_cell(_clean(src))
    cell.metadata = _meta(gid, grade=True, solution=False, locked=True, points=points)
    return cell


def write(path: str | Path, cells: list, title: str | None = None) -> None:
    nb = new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.validate(nb)
    nbformat.write(nb, str(path))
