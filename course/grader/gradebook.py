"""nbgrader's gradebook as the one record of grades: transactional writes, exports.

``course autograde`` records every graded notebook here with nbgrader's own stages
(``SaveAutoGrades``, ``AssignLatePenalties``) and the course's ``SaveJudgeComments``, exactly as
``nbgrader autograde`` does, so formgrader, manual grading, late penalties, ``nbgrader export`` and
``generate_feedback`` all see the same scores. ``grades.csv`` and ``integrity.csv`` are exported
from it. The database is SQLite by default or any SQLAlchemy URL: PostgreSQL with ``psycopg``
(``postgresql+psycopg://user@host/db``) when several graders write at once.

One notebook's record is one database transaction: the stages run on one connection (each stage's
own commits become savepoints), so a grader killed mid-record leaves nothing behind. Writers of
the same student queue on a lock (PostgreSQL: an advisory lock per student; SQLite: ``BEGIN
IMMEDIATE`` with a long busy timeout). In the same transaction the course's ``course_record``
table notes which notebook (``sha256``) the gradebook holds for each (student, assignment) and by
which run, and ``course_record_log`` gets one row per write: a retried task, a second grader or a
re-run finds the notebook recorded and writes nothing, so a notebook is never graded twice into
the gradebook.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import json
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .files import write_atomic

# nbgrader's session handling trips SQLAlchemy 2's autoflush warnings; they are not ours to fix.
warnings.filterwarnings("ignore", message=".*not in session.*")

__all__ = ["FINAL", "GradebookUnavailable", "Tables", "check_url", "ensure_assignments", "export_tables",
           "normalize_url", "record_log", "record_result", "shown"]

FINAL = ("graded", "missing", "invalid")  # statuses a re-run keeps; "error" is graded again
# Modules whose stages open a Gradebook of their own; during a record they get the shared one.
_STAGE_MODULES = ("nbgrader.preprocessors.saveautogrades", "nbgrader.preprocessors.latesubmissions",
                  "course.grader.preprocessors.judge_comments")
_LOCK = threading.RLock()  # one gradebook operation at a time in this process
_tables: dict[str, Any] = {}
_log = logging.getLogger(__name__)


class GradebookUnavailable(RuntimeError):
    """The gradebook database cannot be reached or written; the message says what to check."""


def normalize_url(db_url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean the ``psycopg`` driver (the one the course
    installs); PostgreSQL connections give up after 10 s unless the URL says otherwise."""
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername == "postgresql+psycopg" and "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": "10"})
    return url.render_as_string(hide_password=False)


def shown(db_url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(db_url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL at all: show nothing of it
        return "(unparsable URL)"


def check_url(db_url: str) -> str:
    """Connect once (short timeout) and return the normalized URL, or raise
    :class:`GradebookUnavailable` saying what to check."""
    from sqlalchemy import create_engine, text

    try:
        url = normalize_url(db_url)
    except Exception as exc:  # noqa: BLE001 - the message is the point
        raise GradebookUnavailable(
            f"{db_url!r} is not a database URL ({exc}); use sqlite:////path/gradebook.db or "
            "postgresql+psycopg://USER@HOST:PORT/DATABASE") from None
    try:
        engine = create_engine(url)
    except ModuleNotFoundError as exc:
        raise GradebookUnavailable(
            f"the gradebook URL {shown(url)} needs the {exc.name!r} package: install the "
            "instructor tools (pip install -e '.[instructor]')") from None
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - every driver words it differently
        first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
        if engine.dialect.name == "sqlite":
            hint = "check that the folder of the database file exists and is writable"
        else:
            hint = ("check the host and port (is the server running and listening there?), the "
                    "user and password (PGPASSWORD or ~/.pgpass), that the database exists "
                    "(createdb NAME) and that this machine may connect (pg_hba.conf)")
        raise GradebookUnavailable(f"cannot open the gradebook at {shown(url)}: {first[:300]}. "
                                   f"{hint.capitalize()}") from None
    finally:
        engine.dispose()
    return url


def _course_tables() -> dict[str, Any]:
    """The course's two tables beside nbgrader's: what each (student, assignment) holds, and
    every write."""
    if not _tables:
        from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table

        meta = MetaData()
        _tables["meta"] = meta
        _tables["record"] = Table(
            "course_record", meta,
            Column("student", String(128), primary_key=True),
            Column("assignment", String(128), primary_key=True),
            Column("sha256", String(64), nullable=False), Column("status", String(16), nullable=False),
            Column("score", Float), Column("run_id", String(64), nullable=False),
            Column("writes", Integer, nullable=False), Column("recorded_at", DateTime, nullable=False))
        _tables["log"] = Table(
            "course_record_log", meta,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("student", String(128), nullable=False, index=True),
            Column("assignment", String(128), nullable=False),
            Column("sha256", String(64), nullable=False), Column("status", String(16), nullable=False),
            Column("score", Float), Column("run_id", String(64), nullable=False),
            Column("host", String(255), nullable=False), Column("recorded_at", DateTime, nullable=False))
    return _tables


def ensure_assignments(db_url: str, assignments: list[str], root: Path) -> None:
    """Make sure the gradebook has the course's tables and knows each assignment's cells
    (nbgrader's ``generate_assignment`` records them); release into a scratch folder for the
    ones it lacks. Run once, before any grader writes."""
    from nbgrader.api import Gradebook, MissingEntry

    from .config import COURSE_ID
    from .release import _bin_on_path, release

    _bin_on_path()  # nbgrader runs `alembic` when it creates a gradebook
    missing = []
    with _LOCK, Gradebook(db_url, COURSE_ID) as gb:
        _course_tables()["meta"].create_all(bind=gb.engine)
        for name in assignments:
            try:
                gb.find_notebook(name, name)
            except MissingEntry:
                missing.append(name)
    if missing:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="course-gradebook-") as scratch:
            release(missing, out_dir=Path(scratch), db_url=db_url, quiet=True)


def _lock_key(student: str) -> int:
    return int.from_bytes(hashlib.sha256(f"course-gradebook:{student}".encode()).digest()[:8],
                          "big", signed=True)


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy, not the driver, says where transactions start
    dbapi_conn.execute("PRAGMA busy_timeout = 60000")


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock now: writers queue, never interleave


class _Borrowed:
    """The transaction's Gradebook as a stage sees it: leaving ``with`` closes nothing."""

    def __init__(self, gb: Any):
        self._gb = gb

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gb, name)

    def __enter__(self) -> _Borrowed:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def close(self) -> None:
        return None


@contextlib.contextmanager
def _transaction(db_url: str, student: str) -> Iterator[Any]:
    """A Gradebook whose every commit, the stages' included, is part of one transaction that
    commits when the block ends (rolls back on an exception), holding the student's lock."""
    import importlib

    from nbgrader.api import Gradebook
    from sqlalchemy import event, text
    from sqlalchemy.orm import scoped_session, sessionmaker

    from .config import COURSE_ID

    gb = Gradebook(db_url, COURSE_ID)
    try:
        engine = gb.engine
        if engine.dialect.name == "sqlite":
            gb.db.remove()
            engine.dispose()
            event.listen(engine, "connect", _sqlite_connect)
            event.listen(engine, "begin", _sqlite_begin)
        with engine.connect() as conn, conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(student)})
            session = scoped_session(sessionmaker(bind=conn, autoflush=True, future=True,
                                                  join_transaction_mode="create_savepoint"))
            plain, gb.db = gb.db, session
            borrowed = _Borrowed(gb)
            modules = [importlib.import_module(m) for m in _STAGE_MODULES]
            saved = [m.Gradebook for m in modules]
            for module in modules:
                module.Gradebook = lambda *args, **kwargs: borrowed
            try:
                yield gb
                session.commit()
            finally:
                for module, original in zip(modules, saved, strict=True):
                    module.Gradebook = original
                session.remove()
                gb.db = plain
    finally:
        gb.close()


def _submission(gb: Any, assignment: str, student: str, timestamp: dt.datetime | None) -> None:
    gb.update_or_create_student(student)
    if timestamp is not None:
        gb.update_or_create_submission(assignment, student, timestamp=timestamp)
    else:
        gb.update_or_create_submission(assignment, student)


def _record_once(db_url: str, result: dict, judged: Any, timestamp: dt.datetime | None,
                 late_config: Any, run_id: str, force: bool) -> bool:
    from nbformat import from_dict
    from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades
    from sqlalchemy import delete, insert, select

    from .preprocessors.judge_comments import SaveJudgeComments

    student, assignment, sha, status = (result["student"], result["assignment"],
                                        result.get("sha256", ""), result["status"])
    tables = _course_tables()
    where = ((tables["record"].c.student == student) & (tables["record"].c.assignment == assignment))
    with _LOCK, _transaction(db_url, student) as gb:
        held = gb.db.execute(select(tables["record"]).where(where)).first()
        if held is not None and held.sha256 == sha and (
                held.run_id == run_id or (not force and held.status in FINAL)):
            return False  # this notebook is in the gradebook already: never twice
        _submission(gb, assignment, student, timestamp)
        if status == "graded":
            nb = from_dict(judged)
            resources = {"nbgrader": {"db_url": db_url, "assignment": assignment,
                                      "notebook": assignment, "student": student}}
            stages = [SaveAutoGrades(), AssignLatePenalties(config=late_config)
                      if late_config is not None else AssignLatePenalties(), SaveJudgeComments()]
            for stage in stages:
                nb, resources = stage.preprocess(nb, resources)
        else:
            # Nothing gradable: every test scores 0 (as nbgrader autograde does). The grader
            # failed: no score stands (an old one could be stale); formgrader asks for grading.
            score = 0.0 if status in FINAL else None
            for grade in gb.find_submission_notebook(assignment, assignment, student).grades:
                grade.auto_score = score
                grade.needs_manual_grade = score is None
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        row = {"student": student, "assignment": assignment, "sha256": sha, "status": status,
               "score": result.get("score") if status != "error" else None, "run_id": run_id,
               "recorded_at": now}
        gb.db.execute(delete(tables["record"]).where(where))
        gb.db.execute(insert(tables["record"]).values(**row, writes=(held.writes if held else 0) + 1))
        gb.db.execute(insert(tables["log"]).values(**row, host=f"{socket.gethostname()}:{os.getpid()}"))
    return True


def _transient(exc: BaseException) -> bool:
    """Lost connection, server restarting, database locked: worth waiting for."""
    from sqlalchemy import exc as sa_exc

    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, sa_exc.OperationalError | sa_exc.InterfaceError) or getattr(
                seen, "connection_invalidated", False) or type(seen).__name__ in (
                "OperationalError", "InterfaceError", "AdminShutdown"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def record_result(db_url: str, result: dict, judged: Any, timestamp: dt.datetime | None,
                  late_config: Any = None, *, run_id: str = "", force: bool = False,
                  wait: float = 120.0) -> tuple[bool, int]:
    """Record one notebook's result in one transaction; ``(written, attempts)``.

    ``written`` is False when the gradebook already holds this notebook (same ``sha256``) from
    this run (a retried task) or, without ``force``, with a final status from any run. A lost
    connection (the server restarting) is retried for up to ``wait`` seconds; the transaction
    that failed left nothing, so the retry starts clean.
    """
    deadline, delay, attempts = time.monotonic() + wait, 0.5, 0
    while True:
        attempts += 1
        try:
            return _record_once(db_url, result, judged, timestamp, late_config, run_id, force), attempts
        except Exception as exc:
            if not _transient(exc) or time.monotonic() + delay > deadline:
                if _transient(exc):
                    raise GradebookUnavailable(
                        f"the gradebook at {shown(db_url)} stayed unreachable for {wait:.0f} s "
                        f"while recording {result['student']}/{result['assignment']}: {exc}"[:800]) from exc
                raise
            _log.warning("gradebook unreachable while recording %s/%s (%s); retrying in %.1f s",
                         result["student"], result["assignment"], type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def record_log(db_url: str) -> list[dict[str, Any]]:
    """Every write into the gradebook, oldest first (one per notebook recorded)."""
    from sqlalchemy import create_engine, select

    log = _course_tables()["log"]
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(log).order_by(log.c.id))]
    finally:
        engine.dispose()


def export_tables(db_url: str, out: Path, statuses: dict[tuple[str, str], dict[str, str]]) -> None:
    """``grades.csv`` (from the gradebook's scores) and ``integrity.csv`` (from its comments)."""
    from nbgrader.api import Gradebook

    from .config import COURSE_ID
    from .preprocessors.judge_comments import INTEGRITY_PREFIX, LOOK_PREFIX

    rows, flags = [], []
    with _LOCK, Gradebook(db_url, COURSE_ID) as gb:
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
    for name, data, fields in (("grades.csv", rows, ["student", "assignment", "score", "max_score",
                                                      "status", "notes"]),
                               ("integrity.csv", flags, ["student", "assignment", "finding"])):
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(data)
        write_atomic(out / name, buffer.getvalue())


class Tables:
    """``grades.csv`` and ``integrity.csv`` of a ``course autograde`` run: the statuses of every
    record in OUT, exported from the gradebook now and then during the run (an interrupted run
    leaves fresh tables) and at its end."""

    def __init__(self, out: Path, db_url: str, log: Callable[[str], None]):
        self.out, self.db_url, self.log = out, db_url, log
        self.statuses: dict[tuple[str, str], dict[str, str]] = {}
        self.exported, self.cost, self.failing = time.monotonic(), 0.0, False
        for path in sorted((out / "results").glob("*/*.json")):  # earlier runs into this OUT
            try:
                self.note(json.loads(path.read_text()))
            except (ValueError, OSError, KeyError, TypeError):
                continue

    def note(self, result: dict) -> None:
        if result.get("failed"):
            return  # the task never finished: the record in OUT, if any, still stands
        notes = [result.get("note", "")] + result.get("problems", []) + [result.get("error", "")]
        self.statuses[(result["student"], result["assignment"])] = {
            "status": result["status"], "notes": " | ".join(n for n in notes if n)}

    def export(self, final: bool = False) -> None:
        if not final and time.monotonic() - self.exported < max(10.0, 20 * self.cost):
            return
        started = time.monotonic()
        try:
            export_tables(self.db_url, self.out, self.statuses)
            self.failing = False
        except Exception as exc:  # noqa: BLE001 - a server restarting: the next export catches up
            if final:
                raise
            if not self.failing:
                self.log(f"could not export grades.csv yet ({type(exc).__name__}); will retry")
            self.failing = True
        self.exported, self.cost = time.monotonic(), time.monotonic() - started
