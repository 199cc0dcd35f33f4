"""nbgrader's gradebook as the one record of grades: writes, exports.

``course autograde`` records every graded notebook here with nbgrader's own stages
(``SaveAutoGrades``, ``AssignLatePenalties``) and the course's ``SaveJudgeComments``, exactly as
``nbgrader autograde`` does, so formgrader, manual grading, late penalties, ``nbgrader export`` and
``generate_feedback`` all see the same scores. ``grades.csv`` and ``integrity.csv`` are exported
from it. The database is SQLite by default or any SQLAlchemy URL (PostgreSQL with ``psycopg``).
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import warnings
from pathlib import Path
from typing import Any

# nbgrader's session handling trips SQLAlchemy 2's autoflush warnings; they are not ours to fix.
warnings.filterwarnings("ignore", message=".*not in session.*")

__all__ = ["ensure_assignments", "export_tables", "record", "record_missing", "record_error"]


def _resources(db_url: str, assignment: str, notebook: str, student: str) -> dict[str, Any]:
    return {"nbgrader": {"db_url": db_url, "assignment": assignment, "notebook": notebook,
                         "student": student}}


def ensure_assignments(db_url: str, assignments: list[str], root: Path) -> None:
    """Make sure the gradebook knows each assignment's cells (nbgrader's ``generate_assignment``
    records them); release into a scratch folder for the ones it lacks."""
    from nbgrader.api import Gradebook, MissingEntry

    from .config import COURSE_ID
    from .release import _bin_on_path, release

    _bin_on_path()  # nbgrader runs `alembic` when it creates a gradebook
    missing = []
    with Gradebook(db_url, COURSE_ID) as gb:
        for name in assignments:
            try:
                gb.find_notebook(name, name)
            except MissingEntry:
                missing.append(name)
    if missing:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="course-gradebook-") as scratch:
            release(missing, out_dir=Path(scratch), db_url=db_url, quiet=True)


def _submission(gb: Any, assignment: str, student: str, timestamp: dt.datetime | None) -> None:
    gb.update_or_create_student(student)
    if timestamp is not None:
        gb.update_or_create_submission(assignment, student, timestamp=timestamp)
    else:
        gb.update_or_create_submission(assignment, student)


def record(db_url: str, judged: Any, assignment: str, student: str,
           timestamp: dt.datetime | None, late_config: Any = None) -> None:
    """Store one judged notebook: scores per test cell, comments, late penalty, flag."""
    from nbformat import from_dict
    from nbgrader.api import Gradebook
    from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades

    from .config import COURSE_ID
    from .preprocessors.judge_comments import SaveJudgeComments

    with Gradebook(db_url, COURSE_ID) as gb:
        _submission(gb, assignment, student, timestamp)
    nb = from_dict(judged)
    resources = _resources(db_url, assignment, assignment, student)
    stages = [SaveAutoGrades(), AssignLatePenalties(config=late_config) if late_config is not None
              else AssignLatePenalties(), SaveJudgeComments()]
    for stage in stages:
        nb, resources = stage.preprocess(nb, resources)


def _set_all(db_url: str, assignment: str, student: str, score: float | None,
             timestamp: dt.datetime | None = None) -> None:
    from nbgrader.api import Gradebook

    from .config import COURSE_ID

    with Gradebook(db_url, COURSE_ID) as gb:
        _submission(gb, assignment, student, timestamp)
        nb = gb.find_submission_notebook(assignment, assignment, student)
        for grade in nb.grades:
            grade.auto_score = score
            grade.needs_manual_grade = score is None
        gb.db.commit()


def record_missing(db_url: str, assignment: str, student: str) -> None:
    """Nothing gradable was submitted: every test scores 0 (as ``nbgrader autograde`` does)."""
    _set_all(db_url, assignment, student, 0.0)


def record_error(db_url: str, assignment: str, student: str) -> None:
    """The grader failed: no score stands (an old one could be stale); formgrader shows it as
    needing grading."""
    _set_all(db_url, assignment, student, None)


def export_tables(db_url: str, out: Path, statuses: dict[tuple[str, str], dict[str, str]]) -> None:
    """``grades.csv`` (from the gradebook's scores) and ``integrity.csv`` (from its comments)."""
    from nbgrader.api import Gradebook

    from .config import COURSE_ID
    from .preprocessors.judge_comments import INTEGRITY_PREFIX, LOOK_PREFIX

    rows, flags = [], []
    with Gradebook(db_url, COURSE_ID) as gb:
        for assignment in gb.assignments:
            for sub in assignment.submissions:
                key = (sub.student.id, assignment.name)
                info = statuses.get(key)
                if info is None:
                    continue  # graded by another front door: nbgrader exports it itself
                error = info.get("status") == "error"
                rows.append({"student": key[0], "assignment": key[1],
                             "score": "" if error else f"{sub.score:g}",
                             "max_score": f"{sub.max_score:g}", "status": info.get("status", ""),
                             "notes": info.get("notes", "")})
                for nb in sub.notebooks:
                    for comment in nb.comments:
                        for line in (comment.auto_comment or "").splitlines():
                            if line.startswith((INTEGRITY_PREFIX, LOOK_PREFIX)):
                                flags.append({"student": key[0], "assignment": key[1],
                                              "finding": line})
    rows.sort(key=lambda r: (r["student"], r["assignment"]))
    out.mkdir(parents=True, exist_ok=True)
    for name, data, fields in (("grades.csv", rows, ["student", "assignment", "score", "max_score",
                                                      "status", "notes"]),
                               ("integrity.csv", flags, ["student", "assignment", "finding"])):
        tmp = out / f".{name}.{os.getpid()}.tmp"
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(data)
        tmp.replace(out / name)
