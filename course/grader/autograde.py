"""Grade a whole class: ``course autograde SUBMITTED [--out DIR] [--jobs N]``.

``SUBMITTED`` is in nbgrader's layout, ``<student>/<assignment>/<assignment>.ipynb``. Submissions
are data: symbolic links, odd names and files that are not notebooks get a verdict with a reason
(``invalid``, ``missing``), never a crash. Each notebook is graded by the same pipeline as
``nbgrader autograde`` (rebuild, sandboxed runner, judge); only the grader's process (this one,
or a Dask worker) writes results, never a runner: into nbgrader's gradebook (formgrader shows
them) and ``OUT`` (feedback, ``grades.csv``, ``integrity.csv``, one JSON record per notebook,
history of replaced records). The sandbox hides the submissions, ``OUT`` and the gradebook from
every runner. Re-running skips unchanged work; ``--force`` re-grades; a failed re-grade leaves an
error, never a stale score.

Every notebook goes through :func:`grade_and_record`, in this process's thread pool (``--jobs``)
or as a task on a Dask cluster (``--cluster``, :mod:`course.grader.cluster`): grade in the
sandbox, record in the gradebook in one transaction that writes nothing if the notebook is
recorded already (see :mod:`course.grader.gradebook`), then write the files in ``OUT``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import write_atomic
from .gradebook import FINAL

__all__ = ["Job", "Settings", "autograde", "find_jobs", "grade_and_record"]

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


MAX_NOTEBOOK = 200 << 20  # bytes; larger files are not read (read_notebook refuses them too)


def _sha(path: Path | None) -> str:
    """The notebook's hash, read in chunks; a file too large to be a notebook is not read."""
    if not path or not path.is_file():
        return ""
    size = path.stat().st_size
    if size > MAX_NOTEBOOK:
        return f"too-large-{size}"
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _timestamp(folder: Path) -> dt.datetime | None:
    from nbgrader.utils import parse_utc

    stamp = folder / "timestamp.txt"
    if stamp.is_file() and not stamp.is_symlink():
        try:
            with open(stamp, encoding="utf-8", errors="replace") as fh:
                return parse_utc(fh.read(200).strip())
        except (ValueError, OverflowError, OSError):
            return None
    return None


def _write_json(path: Path, data: Any) -> None:
    if path.is_dir() and not path.is_symlink():  # something planted where a record belongs
        path.rename(path.with_name(f"{path.name}.unexpected-{int(time.time() * 1000)}"))
    write_atomic(path, json.dumps(data, indent=2))


@dataclass(frozen=True)
class Settings:
    """What grading one notebook needs, wherever it runs: this process's pool or a Dask worker
    (which sees the course repository, SUBMITTED and OUT at the same paths)."""

    root: Path
    submitted: Path
    out: Path
    db_url: str
    run_id: str  # one per `course autograde` run: a retried task of the same run writes nothing
    force: bool = False
    unsafe_no_sandbox: bool = False


@dataclass
class _Grader:
    """What a process prepares once per run: the sandbox, nbgrader's config, the sources."""

    sandbox: Any
    config: Any
    sources: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def source(self, root: Path, assignment: str) -> Any:
        from .grade import read_notebook

        with self.lock:
            if assignment not in self.sources:
                self.sources[assignment] = read_notebook(root / "solutions" / assignment / f"{assignment}.ipynb")
            return self.sources[assignment]


_GRADERS: dict[Settings, _Grader] = {}
_GRADERS_LOCK = threading.Lock()
_FILES_LOCK = threading.Lock()


def hidden_from_runner(settings: Settings) -> list[Path]:
    """What no runner may see besides the course repository: submissions, OUT, the gradebook."""
    hide = [settings.submitted, settings.out, settings.root / "autograder"]
    if settings.db_url.startswith("sqlite:///"):
        hide.append(Path(settings.db_url.removeprefix("sqlite:///").split("?")[0]).parent)
    return hide


def prepare(settings: Settings, log: Callable[[str], None] = lambda s: None) -> _Grader:
    """This process's grader for ``settings`` (made once; raises SandboxUnavailable)."""
    from ..paths import data_root
    from . import config
    from .sandbox import find_sandbox

    with _GRADERS_LOCK:
        if settings not in _GRADERS:
            if len(_GRADERS) >= 4:  # a long-lived worker serves many runs: keep the recent ones
                _GRADERS.pop(next(iter(_GRADERS)))
            box = find_sandbox(hide=hidden_from_runner(settings), data=data_root(),
                               allow_none=settings.unsafe_no_sandbox, warn=log)
            _GRADERS[settings] = _Grader(box, config.load_config(settings.root))
        return _GRADERS[settings]


def previous(out: Path, job: Job) -> dict | None:
    path = out / "results" / job.student / f"{job.assignment}.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (ValueError, OSError):
        return None


def unchanged(old: dict | None, sha: str, settings: Settings) -> bool:
    """The record in OUT stands: same notebook, and final (or written by this very run)."""
    return bool(old) and old.get("sha256") == sha and (
        old.get("run_id") == settings.run_id or (not settings.force and old.get("status") in FINAL))


def grade_and_record(job: Job, settings: Settings) -> dict[str, Any]:
    """Grade one (student, assignment) and record it: the gradebook first, in one transaction
    that writes nothing if this notebook is recorded already, then the files in OUT. The same
    function runs in the local pool and as a Dask task; running it twice is harmless."""
    from ..paths import data_root
    from . import gradebook
    from .grade import GradingInputError, grade_submission, read_notebook
    from .single import render_feedback

    sha = _sha(job.notebook)
    old = previous(settings.out, job)
    if unchanged(old, sha, settings):
        return {**old, "skipped": True}
    grader = prepare(settings)
    base = {"student": job.student, "assignment": job.assignment, "note": job.note,
            "notebook": str(job.notebook or ""), "sha256": sha, "sandbox": grader.sandbox.kind,
            "graded_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "run_id": settings.run_id,
            "host": socket.gethostname()}
    judged = None
    if job.notebook is None:
        result = {**base, "status": job.status, "score": 0.0, "tests": [], "problems": [job.note]}
    else:
        try:
            report, judged = grade_submission(
                grader.source(settings.root, job.assignment), read_notebook(job.notebook),
                sandbox=grader.sandbox, name=f"{job.student}/{job.assignment}", data=data_root())
            result = {**base, "status": "graded", **_report_fields(report)}
        except GradingInputError as exc:
            result = {**base, "status": "invalid", "score": 0.0, "tests": [], "problems": [str(exc)]}
        except Exception as exc:  # noqa: BLE001 - the grader failed: an error, never a score
            result = {**base, "status": "error", "error": f"{type(exc).__name__}: {exc}"[:500]}
    started = time.monotonic()
    written, attempts = gradebook.record_result(
        settings.db_url, result, judged, _timestamp(job.notebook.parent) if job.notebook else None,
        grader.config, run_id=settings.run_id, force=settings.force)
    result.update(record_seconds=round(time.monotonic() - started, 3), record_attempts=attempts,
                  recorded="written" if written else "already in the gradebook")
    with _FILES_LOCK:
        path = settings.out / "results" / job.student / f"{job.assignment}.json"
        if old is not None and path.is_file() and not (
                old.get("run_id") == settings.run_id and old.get("sha256") == sha):
            history = settings.out / "history" / job.student / f"{job.assignment}.{int(time.time() * 1000)}.json"
            history.parent.mkdir(parents=True, exist_ok=True)  # never silently overwrite a grade
            path.replace(history)
        if judged is not None and result["status"] == "graded":
            render_feedback(judged, settings.out / "feedback" / job.student / job.assignment
                            / f"{job.assignment}.html")
            _autograded_copy(settings, grader.config, job, judged)
        _write_json(path, result)
    return result


def _autograded_copy(settings: Settings, cfg: Any, job: Job, judged: Any) -> None:
    """The judged notebook where nbgrader keeps autograded ones, so `nbgrader generate_feedback`
    and formgrader's feedback buttons work after `course autograde` as after `nbgrader autograde`."""
    folder = settings.root / cfg.CourseDirectory.autograded_directory / job.student / job.assignment
    try:
        write_atomic(folder / f"{job.assignment}.ipynb", json.dumps(judged, indent=1))
    except OSError:
        pass  # a read-only course directory: the gradebook and OUT still hold everything


class Progress:
    """One tqdm bar for both paths: done (and time left), running, failed."""

    def __init__(self, total: int, enabled: bool, desc: str):
        self.failed = 0
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="notebook", desc=desc, file=sys.stderr)

    def update(self, result: dict, running: int) -> None:
        self.failed += result.get("status") == "error"
        if self.bar is not None:
            self.bar.set_postfix_str(f"running {running}, failed {self.failed}, last "
                                     f"{result['student']}/{result['assignment']}: {result['status']}")
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def failure(job: Job, exc: BaseException) -> dict[str, Any]:
    """A task that raised (the gradebook unreachable, a worker lost too often): nothing written."""
    return {"student": job.student, "assignment": job.assignment, "status": "error", "failed": True,
            "error": f"not graded ({type(exc).__name__}: {exc})"[:800]}


def autograde(submitted: Path, out: Path, *, assignments: list[str] | None = None,
              students: list[str] | None = None, force: bool = False, jobs: int = 2,
              db_url: str | None = None, unsafe_no_sandbox: bool = False,
              root: Path | None = None, progress: bool = True, cluster: str | None = None,
              log: Callable[[str], None] = lambda s: print(f"warning: {s}", file=sys.stderr)
              ) -> list[dict[str, Any]]:
    """Grade every submission; return one result dict per (student, assignment).

    ``cluster`` is a Dask scheduler's address (``tcp://HOST:8786``): one task per notebook on
    its workers instead of ``jobs`` threads here; Dask is imported only then.
    """
    from ..paths import repo_root
    from . import config, gradebook

    root = root or repo_root()
    if root is None:
        raise SystemExit("error: autograde needs the course repository (with solutions/)")
    root = Path(root).resolve()
    submitted, out = Path(submitted).resolve(), Path(out).resolve()
    if not submitted.is_dir():
        raise SystemExit(f"error: {submitted} is not a folder of submissions "
                         "(expected SUBMITTED/<student>/<assignment>/<assignment>.ipynb)")
    try:  # a wrong address fails now, before anything is graded
        db_url = gradebook.check_url(db_url or config.load_config(root).CourseDirectory.db_url)
    except gradebook.GradebookUnavailable as exc:
        raise SystemExit(f"error: {exc}") from None
    client = None
    if cluster:
        from . import cluster as dask_cluster

        client = dask_cluster.connect(cluster)
    try:
        sources = sorted(p.name for p in (root / "solutions").iterdir()
                         if (p / f"{p.name}.ipynb").is_file())
        unknown = sorted(set(assignments or []) - set(sources))
        if unknown:
            raise SystemExit(f"error: unknown assignment(s) {unknown}; choose from {sources}")
        settings = Settings(root, submitted, out, db_url, uuid.uuid4().hex, force, unsafe_no_sandbox)
        if client is None:
            os.environ.setdefault("COURSE_KERNEL_THREADS",
                                  str(max(1, (os.cpu_count() or 1) // max(1, jobs))))
            prepare(settings, log)  # no sandbox here: refuse before grading anything
        else:
            dask_cluster.preflight(client, settings, log)
        todo, warnings = find_jobs(submitted, sources, assignments, students)
        for w in warnings:
            log(w)
        gradebook.ensure_assignments(db_url, sorted({j.assignment for j in todo}), root)
        tables = gradebook.Tables(out, db_url, log)
        results, pending = [], []
        for job in todo:  # re-running continues where the last run stopped
            old = previous(out, job)
            if unchanged(old, _sha(job.notebook), settings):
                results.append({**old, "skipped": True})
            else:
                pending.append(job)
        bar = Progress(len(pending), progress, "grading" if client is None else "grading (cluster)")
        try:
            for result in (_local(pending, settings, jobs) if client is None
                           else dask_cluster.grade(client, pending, settings)):
                results.append(result[0])
                tables.note(result[0])
                bar.update(result[0], result[1])
                tables.export()
        finally:
            bar.close()
        tables.export(final=True)
        return results
    finally:
        if client is not None:
            client.close()


def _local(todo: list[Job], settings: Settings, jobs: int) -> Iterator[tuple[dict, int]]:
    """(result, notebooks still running) as each finishes, graded ``jobs`` at a time here."""
    started = [0]
    lock = threading.Lock()

    def run(job: Job) -> dict[str, Any]:
        with lock:
            started[0] += 1
        return grade_and_record(job, settings)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(run, job): job for job in todo}
        for done, future in enumerate(as_completed(futures), 1):
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. the gradebook gone for minutes
                result = failure(futures[future], exc)
            with lock:
                running = started[0] - done
            yield result, max(0, running)


def _report_fields(report: Any) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(report)
    return {k: data[k] for k in ("score", "max_score", "tests", "problems", "cell_errors",
                                 "integrity", "needs_look", "seconds")}
