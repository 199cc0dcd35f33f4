"""Grade a whole class: ``course autograde SUBMITTED [--out DIR]``.

``SUBMITTED`` is in nbgrader's layout, ``<student>/<assignment>/<assignment>.ipynb``. Every
notebook is graded in its own process (and its own kernel, with time, memory and output limits),
so one hostile or broken submission cannot stop or corrupt the grading of another. Results are
written atomically per student and assignment under ``OUT/results/``; ``OUT/grades.csv`` and
``OUT/integrity.csv`` are rebuilt from them after every notebook, so an interrupted run leaves a
consistent gradebook and re-running continues where it stopped. Already graded, unchanged work is
skipped unless ``--force``; a re-grade that fails replaces the old score with an error, never
leaving a stale score standing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .grader import config as grading_config
from .paths import repo_root

__all__ = ["Job", "autograde", "find_jobs"]


@dataclass
class Job:
    student: str
    assignment: str
    notebook: Path | None  # None: nothing to grade was submitted
    note: str = ""


def _assignments(root: Path) -> dict[str, Path]:
    return {p.name: p / f"{p.name}.ipynb" for p in sorted((root / "solutions").iterdir())
            if (p / f"{p.name}.ipynb").is_file()}


def find_jobs(submitted: Path, sources: dict[str, Path], assignments: list[str] | None = None,
              students: list[str] | None = None) -> tuple[list[Job], list[str]]:
    """Every (student, assignment) to grade, and warnings about the folder's layout."""
    jobs, warnings = [], []
    wanted = assignments or sorted(sources)
    for student_dir in sorted(p for p in submitted.iterdir() if p.is_dir()):
        student = student_dir.name
        if students and student not in students:
            continue
        present = {p.name for p in student_dir.iterdir() if p.is_dir()}
        for extra in sorted(present - set(sources)):
            warnings.append(f"{student}: folder {extra!r} is not an assignment of this course")
        for assignment in wanted:
            folder = student_dir / assignment
            if assignment not in present:
                if assignments:  # asked for explicitly: a missing submission scores 0
                    jobs.append(Job(student, assignment, None, "no submission"))
                continue
            expected = folder / f"{assignment}.ipynb"
            if expected.is_file():
                jobs.append(Job(student, assignment, expected))
                continue
            others = sorted(folder.glob("*.ipynb"))
            if len(others) == 1:
                jobs.append(Job(student, assignment, others[0],
                                f"notebook was renamed to {others[0].name}; graded anyway"))
            elif others:
                jobs.append(Job(student, assignment, None,
                                f"{expected.name} missing and {len(others)} other notebooks "
                                "present; cannot tell which to grade"))
            else:
                jobs.append(Job(student, assignment, None, f"{expected.name} is missing"))
    return jobs, warnings


def _max_points(source: Path) -> float:
    nb = json.loads(source.read_text())
    return float(sum(c.get("metadata", {}).get("nbgrader", {}).get("points", 0) or 0
                     for c in nb["cells"]
                     if c.get("metadata", {}).get("nbgrader", {}).get("grade")))


def _sha(path: Path | None) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path and path.is_file() else ""


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def _run_worker(job: Job, source: Path, feedback: Path, limit: float,
                env: dict[str, str] | None = None) -> dict[str, Any]:
    """Grade one notebook in a separate process group; kill the whole group on overrun."""
    cmd = [sys.executable, "-m", "course.cli", "grade", str(job.notebook), "--json",
           "--source", str(source), "--feedback", str(feedback)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"status": "error", "error": f"grading took longer than {int(limit)} s and was stopped"}
    try:
        result = json.loads(out)
    except json.JSONDecodeError:
        tail = (err or "").strip().splitlines()[-3:]
        return {"status": "error", "error": f"the grader failed (exit {proc.returncode}): "
                                            + " | ".join(tail)}
    if result.get("invalid"):
        return {"status": "invalid", "score": 0.0, "problems": [result["invalid"]]}
    result["status"] = "graded"
    return result


def _rebuild_tables(out: Path) -> None:
    rows, flags = [], []
    for path in sorted((out / "results").glob("*/*.json")):
        r = json.loads(path.read_text())
        notes = [r.get("note", "")] + r.get("problems", []) + [r.get("error", "")]
        rows.append({"student": r["student"], "assignment": r["assignment"],
                     "score": "" if r["status"] == "error" else f"{r['score']:g}",
                     "max_score": "" if r.get("max_score") is None else f"{r['max_score']:g}",
                     "status": r["status"], "notes": " | ".join(n for n in notes if n)})
        for finding in r.get("integrity", []):
            flags.append({"student": r["student"], "assignment": r["assignment"],
                          "finding": finding})
    for name, data, fields in (("grades.csv", rows, ["student", "assignment", "score", "max_score",
                                                      "status", "notes"]),
                               ("integrity.csv", flags, ["student", "assignment", "finding"])):
        tmp = out / f".{name}.tmp"
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(data)
        tmp.replace(out / name)


def autograde(submitted: Path, out: Path, *, assignments: list[str] | None = None,
              students: list[str] | None = None, force: bool = False, jobs: int = 2,
              root: Path | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Grade every submission; return one result dict per (student, assignment)."""
    root = root or repo_root()
    if root is None:
        raise SystemExit("error: autograde needs the course repository (with solutions/)")
    submitted, out = Path(submitted), Path(out)
    if not submitted.is_dir():
        raise SystemExit(f"error: {submitted} is not a folder of submissions "
                         "(expected SUBMITTED/<student>/<assignment>/<assignment>.ipynb)")
    sources = _assignments(root)
    unknown = sorted(set(assignments or []) - set(sources))
    if unknown:
        raise SystemExit(f"error: unknown assignment(s) {unknown}; choose from {sorted(sources)}")
    todo, warnings = find_jobs(submitted, sources, assignments, students)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    # Share the cores among the kernels that run at once instead of oversubscribing them.
    worker_env = {**os.environ}
    worker_env.setdefault("COURSE_KERNEL_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, jobs))))
    lock = threading.Lock()
    max_points = {a: _max_points(p) for a, p in sources.items()}
    # The authoritative copy of every result lives in this process while kernels run: a
    # submission that rewrites another result file is undone and reported at the next rebuild.
    ledger: dict[Path, bytes] = {p: p.read_bytes() for p in (out / "results").glob("*/*.json")}
    tampered: list[str] = []

    def protect() -> None:
        for path, content in ledger.items():
            if not path.is_file() or path.read_bytes() != content:
                tampered.append(str(path.relative_to(out)))
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
        for path in (out / "results").glob("*/*.json"):
            if path not in ledger:
                tampered.append(str(path.relative_to(out)))
                path.unlink()
    limit = grading_config.NOTEBOOK_TIMEOUT + 120
    results: list[dict[str, Any]] = []

    def result_path(job: Job) -> Path:
        return out / "results" / job.student / f"{job.assignment}.json"

    def run(job: Job) -> dict[str, Any]:
        sha = _sha(job.notebook)
        previous = result_path(job)
        if previous in ledger and not force:  # the in-memory copy: files could be tampered with
            old = json.loads(ledger[previous])
            if old.get("sha256") == sha and old.get("status") in ("graded", "missing", "invalid"):
                old["skipped"] = True
                return old
        base = {"student": job.student, "assignment": job.assignment, "note": job.note,
                "notebook": str(job.notebook or ""), "sha256": sha,
                "graded_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if job.notebook is None:
            result = {**base, "status": "missing", "score": 0.0,
                      "max_score": max_points[job.assignment], "tests": [], "problems": []}
        else:
            feedback = out / "feedback" / job.student / job.assignment / f"{job.assignment}.html"
            result = {**base, **_run_worker(job, sources[job.assignment], feedback, limit,
                                            worker_env)}
            result.update({k: base[k] for k in ("student", "assignment", "note", "notebook")})
            if result.get("max_score") is None:
                result["max_score"] = max_points[job.assignment]
        with lock:
            protect()
            if previous.is_file():  # keep the history, never silently overwrite a grade
                ledger.pop(previous, None)
                history = out / "history" / job.student / f"{job.assignment}.{int(time.time())}.json"
                history.parent.mkdir(parents=True, exist_ok=True)
                previous.replace(history)
            _write_json(previous, result)
            ledger[previous] = previous.read_bytes()
            _rebuild_tables(out)
        return result

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), unit="notebook", desc="grading", file=sys.stderr)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(run, job): job for job in todo}
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            if bar is not None:
                done_students = len({r["student"] for r in results})
                bar.set_postfix_str(f"{result['student']}/{result['assignment']}: "
                                    f"{result['status']}; students seen {done_students}")
                bar.update(1)
    if bar is not None:
        bar.close()
    out.mkdir(parents=True, exist_ok=True)
    with lock:
        protect()
        _rebuild_tables(out)
    for path in sorted(set(tampered)):
        print(f"warning: {path} was modified during grading by something other than the grader; "
              "it was restored", file=sys.stderr)
    return results
