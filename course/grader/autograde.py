"""Grade a whole class: ``course autograde SUBMITTED [--out DIR] [--jobs N]``.

``SUBMITTED`` is in nbgrader's layout, ``<student>/<assignment>/<assignment>.ipynb``. Submissions
are data: symbolic links, odd names and files that are not notebooks get a verdict with a reason
(``invalid``, ``missing``), never a crash. Each notebook is graded by the same pipeline as
``nbgrader autograde`` (rebuild, sandboxed runner, judge); only this process writes results, into
nbgrader's gradebook (formgrader shows them) and ``OUT`` (feedback, ``grades.csv``,
``integrity.csv``, one JSON record per notebook, history of replaced records). The sandbox hides
the submissions, ``OUT`` and the gradebook from every runner. Re-running skips unchanged work;
``--force`` re-grades; a failed re-grade leaves an error, never a stale score.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Job", "autograde", "find_jobs"]

_SAFE = re.compile(r"^[A-Za-z0-9_@+\-][A-Za-z0-9_.@+\-]{0,99}$")


@dataclass
class Job:
    student: str
    assignment: str
    notebook: Path | None  # None: nothing gradable
    status: str = ""  # preset verdict when notebook is None: missing | invalid
    note: str = ""


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def find_jobs(submitted: Path, assignments: list[str], wanted: list[str] | None,
              students: list[str] | None) -> tuple[list[Job], list[str]]:
    """Every (student, assignment) to grade, and warnings about the folder's layout."""
    jobs, warnings = [], []
    for student_dir in sorted(submitted.iterdir()):
        student = student_dir.name
        if students and student not in students:
            continue
        if student_dir.is_symlink() or not student_dir.is_dir():
            if not student.startswith("."):
                warnings.append(f"{student!r} is not a student folder (a file or a link); ignored")
            continue
        if not _SAFE.match(student):
            warnings.append(f"student folder {student!r} has characters a grade record cannot use; ignored")
            continue
        present = {p.name: p for p in student_dir.iterdir()}
        for extra in sorted(set(present) - set(assignments)):
            if not extra.startswith("."):
                warnings.append(f"{student}: {extra!r} is not an assignment of this course")
        for assignment in wanted or assignments:
            folder = present.get(assignment)
            if folder is None:
                if wanted:  # asked for explicitly: a missing submission scores 0
                    jobs.append(Job(student, assignment, None, "missing", "no submission"))
                continue
            jobs.append(_job(student, assignment, folder))
    return jobs, warnings


def _job(student: str, assignment: str, folder: Path) -> Job:
    if folder.is_symlink() or not folder.is_dir():
        return Job(student, assignment, None, "invalid", "the assignment folder is a link or a file")
    expected = folder / f"{assignment}.ipynb"
    candidates = [expected] if expected.exists() or expected.is_symlink() else sorted(folder.glob("*.ipynb"))
    if not candidates:
        return Job(student, assignment, None, "missing", f"{expected.name} is missing")
    if len(candidates) > 1:
        return Job(student, assignment, None, "invalid", f"{expected.name} missing and "
                   f"{len(candidates)} other notebooks present; cannot tell which to grade")
    path = candidates[0]
    if path.is_symlink() or not _inside(path, folder):
        return Job(student, assignment, None, "invalid", f"{path.name} is a symbolic link; links "
                   "are not graded (submit the notebook file itself)")
    if not path.is_file():
        return Job(student, assignment, None, "invalid", f"{path.name} is not a file")
    note = "" if path == expected else f"notebook was renamed to {path.name}; graded anyway"
    return Job(student, assignment, path, "", note)


def _sha(path: Path | None) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path and path.is_file() else ""


def _timestamp(folder: Path) -> dt.datetime | None:
    from nbgrader.utils import parse_utc

    stamp = folder / "timestamp.txt"
    if stamp.is_file() and not stamp.is_symlink():
        try:
            return parse_utc(stamp.read_text()[:100].strip())
        except (ValueError, OverflowError):
            return None
    return None


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir() and not path.is_symlink():  # something planted where a record belongs
        path.rename(path.with_name(f"{path.name}.unexpected-{int(time.time() * 1000)}"))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


class _Recorder:
    """Everything that writes: results, history, feedback, gradebook, tables. One at a time."""

    def __init__(self, out: Path, db_url: str, late_config: Any):
        self.out, self.db_url, self.late_config = out, db_url, late_config
        self.lock = threading.Lock()
        self.statuses: dict[tuple[str, str], dict[str, str]] = {}
        self.exported = 0.0
        for path in sorted((out / "results").glob("*/*.json")):  # earlier runs into this OUT
            try:
                self.note(json.loads(path.read_text()))
            except (ValueError, OSError, KeyError, TypeError):
                continue

    def previous(self, job: Job) -> dict | None:
        path = self.out / "results" / job.student / f"{job.assignment}.json"
        try:
            return json.loads(path.read_text()) if path.is_file() else None
        except (ValueError, OSError):
            return None

    def save(self, job: Job, result: dict, judged: Any) -> None:
        from . import gradebook
        from .single import render_feedback

        with self.lock:
            path = self.out / "results" / job.student / f"{job.assignment}.json"
            if path.is_file():  # keep the history: never silently overwrite a grade
                history = self.out / "history" / job.student / f"{job.assignment}.{int(time.time() * 1000)}.json"
                history.parent.mkdir(parents=True, exist_ok=True)
                path.replace(history)
            _write_json(path, result)
            if result["status"] == "graded":
                gradebook.record(self.db_url, judged, job.assignment, job.student,
                                 _timestamp(job.notebook.parent) if job.notebook else None,
                                 self.late_config)
                feedback = self.out / "feedback" / job.student / job.assignment / f"{job.assignment}.html"
                render_feedback(judged, feedback)
            elif result["status"] in ("missing", "invalid"):
                gradebook.record_missing(self.db_url, job.assignment, job.student)
            else:
                gradebook.record_error(self.db_url, job.assignment, job.student)
            self.note(result)
            if time.monotonic() - self.exported > 10:  # an interrupted run leaves fresh tables
                self._export()

    def _export(self) -> None:
        from . import gradebook

        gradebook.export_tables(self.db_url, self.out, self.statuses)
        self.exported = time.monotonic()

    def note(self, result: dict) -> None:
        notes = [result.get("note", "")] + result.get("problems", []) + [result.get("error", "")]
        self.statuses[(result["student"], result["assignment"])] = {
            "status": result["status"], "notes": " | ".join(n for n in notes if n)}

    def tables(self) -> None:
        with self.lock:
            self._export()


def autograde(submitted: Path, out: Path, *, assignments: list[str] | None = None,
              students: list[str] | None = None, force: bool = False, jobs: int = 2,
              db_url: str | None = None, unsafe_no_sandbox: bool = False,
              root: Path | None = None, progress: bool = True,
              log: Callable[[str], None] = lambda s: print(f"warning: {s}", file=sys.stderr)
              ) -> list[dict[str, Any]]:
    """Grade every submission; return one result dict per (student, assignment)."""
    from ..paths import data_root, repo_root
    from . import config, gradebook
    from .grade import GradingInputError, grade_submission, read_notebook
    from .sandbox import find_sandbox

    root = root or repo_root()
    if root is None:
        raise SystemExit("error: autograde needs the course repository (with solutions/)")
    submitted, out = Path(submitted).resolve(), Path(out).resolve()
    if not submitted.is_dir():
        raise SystemExit(f"error: {submitted} is not a folder of submissions "
                         "(expected SUBMITTED/<student>/<assignment>/<assignment>.ipynb)")
    cfg = config.load_config(root)
    db_url = db_url or cfg.CourseDirectory.db_url
    sources = {p.name: p / f"{p.name}.ipynb" for p in sorted((root / "solutions").iterdir())
               if (p / f"{p.name}.ipynb").is_file()}
    unknown = sorted(set(assignments or []) - set(sources))
    if unknown:
        raise SystemExit(f"error: unknown assignment(s) {unknown}; choose from {sorted(sources)}")
    hide = [submitted, out, root / "autograder"]
    if db_url.startswith("sqlite:///"):
        hide.append(Path(db_url.removeprefix("sqlite:///")).parent)
    sandbox = find_sandbox(hide=hide, data=data_root(), allow_none=unsafe_no_sandbox, warn=log)
    todo, warnings = find_jobs(submitted, sorted(sources), assignments, students)
    for w in warnings:
        log(w)
    gradebook.ensure_assignments(db_url, sorted({j.assignment for j in todo}), root)
    os.environ.setdefault("COURSE_KERNEL_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, jobs))))
    recorder = _Recorder(out, db_url, cfg)
    source_nbs = {a: read_notebook(p) for a, p in sources.items() if any(j.assignment == a for j in todo)}

    def run(job: Job) -> dict[str, Any]:
        sha = _sha(job.notebook)
        old = recorder.previous(job)
        if (old and not force and old.get("sha256") == sha
                and old.get("status") in ("graded", "missing", "invalid")):
            recorder.note(old)
            return {**old, "skipped": True}
        base = {"student": job.student, "assignment": job.assignment, "note": job.note,
                "notebook": str(job.notebook or ""), "sha256": sha, "sandbox": sandbox.kind,
                "graded_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        judged = None
        if job.notebook is None:
            result = {**base, "status": job.status, "score": 0.0, "tests": [], "problems": [job.note]}
        else:
            try:
                report, judged = grade_submission(
                    source_nbs[job.assignment], read_notebook(job.notebook), sandbox=sandbox,
                    name=f"{job.student}/{job.assignment}", data=data_root())
                result = {**base, "status": "graded", **_report_fields(report)}
            except GradingInputError as exc:
                result = {**base, "status": "invalid", "score": 0.0, "tests": [], "problems": [str(exc)]}
            except Exception as exc:  # noqa: BLE001 - the grader failed: an error, never a score
                result = {**base, "status": "error", "error": f"{type(exc).__name__}: {exc}"[:500]}
        recorder.save(job, result, judged)
        return result

    results: list[dict[str, Any]] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), unit="notebook", desc="grading", file=sys.stderr)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run, job) for job in todo]
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            if bar is not None:
                bar.set_postfix_str(f"{result['student']}/{result['assignment']}: {result['status']}")
                bar.update(1)
    if bar is not None:
        bar.close()
    recorder.tables()
    return results


def _report_fields(report: Any) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(report)
    return {k: data[k] for k in ("score", "max_score", "tests", "problems", "cell_errors",
                                 "integrity", "needs_look", "seconds")}
