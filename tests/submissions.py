"""Build submissions from a student copy with answers filled in, and grade them as the grader does."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbharness import ROOT, SOLUTIONS


def solved(assignment: str) -> dict[str, str]:
    sol = nbformat.read(str(SOLUTIONS / assignment / f"{assignment}.ipynb"), as_version=4)
    markers = ("### BEGIN SOLUTION", "### END SOLUTION")
    return {c.metadata["nbgrader"]["grade_id"]:
            "\n".join(line for line in c.source.split("\n") if line.strip() not in markers)
            for c in sol.cells if c.metadata.get("nbgrader", {}).get("solution")}


def submission(folder: Path, assignment: str, answers: dict[str, str] | None = None,
               student: str = "student", name: str | None = None, extra_cells: list | None = None) -> Path:
    """The student copy with every answer solved, except those given in ``answers``."""
    nb = nbformat.read(str(ROOT / "notebooks" / assignment / f"{assignment}.ipynb"), as_version=4)
    right = solved(assignment)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in right:
            cell.source = (answers or {}).get(gid, right[gid])
    nb.cells += extra_cells or []
    path = Path(folder) / student / assignment / (name or f"{assignment}.ipynb")
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def sandbox(**kw):
    """The sandbox the grader would use here; CI requires a real one (COURSE_REQUIRE_SANDBOX=1)."""
    from course.grader.sandbox import find_sandbox
    from course.paths import data_root

    return find_sandbox(data=data_root(), allow_none=os.environ.get("COURSE_REQUIRE_SANDBOX") != "1", **kw)


def grade(path: Path, assignment: str | None = None, **kw):
    """(report, judged notebook) for one submission, graded against solutions/."""
    from course.grader.grade import grade_submission, read_notebook
    from course.paths import data_root

    assignment = assignment or Path(path).parent.name
    source = read_notebook(SOLUTIONS / assignment / f"{assignment}.ipynb")
    kw.setdefault("sandbox", sandbox())
    return grade_submission(source, read_notebook(Path(path)), data=data_root(), **kw)


def scores(report) -> dict[str, float]:
    return {t.grade_id: t.points for t in report.tests}
