"""Class grading throughput on Dask: notebooks per minute with 1 and 2 workers, and a projection.

Grades a synthetic class (``--students`` students x the fast notebooks, each a perfect
submission) through ``course autograde --cluster`` on a Dask ``LocalCluster`` of 1, then 2
worker processes (one thread each), on this machine, and prints both rates and their ratio. Then
it grades one whole-course submission (every notebook in ``solutions/``) on the 2 workers to
measure each notebook's cost, and projects the wall time of a 1,000-student course for N workers
(one core each, on as many machines as needed) from those costs and the measured efficiency.

    .venv/bin/python benchmarks/scale.py                 # ~3 min on 2 idle cores
    .venv/bin/python benchmarks/scale.py --quick         # fast notebooks only; projection from them
    .venv/bin/python benchmarks/scale.py --db postgresql+psycopg://user@host/db   # an empty database

Needs the instructor extra (``distributed``) and bubblewrap. Wall-clock figures: run it on an
otherwise idle machine. It asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAST = ("00_setup", "02_tensors", "03_autograd")


def _class(folder: Path, students: int, notebooks: list[str]) -> int:
    for i in range(students):
        for nb in notebooks:
            target = folder / f"s{i:03d}" / nb
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / "solutions" / nb / f"{nb}.ipynb", target / f"{nb}.ipynb")
    return students * len(notebooks)


def _warm() -> None:
    """Import what grading imports, on a worker, before the clock starts."""
    import course.grader.grade  # noqa: F401
    import course.grader.gradebook  # noqa: F401


def grade_on(workers: int, submitted: Path, out: Path, db_url: str) -> tuple[float, list[dict]]:
    """(wall seconds, results) for grading ``submitted`` on a fresh cluster of ``workers``."""
    from distributed import Client, LocalCluster

    from course.grader.autograde import autograde

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        with Client(cluster.scheduler_address, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=120)
            client.run(_warm)
        started = time.perf_counter()
        results = autograde(submitted, out, db_url=db_url, cluster=cluster.scheduler_address,
                            force=True, progress=False, log=lambda s: None)
        wall = time.perf_counter() - started
    bad = [r for r in results if r["status"] != "graded"]
    if bad:
        raise SystemExit(f"benchmark class not fully graded: {bad[:3]}")
    return wall, results


def _gradebook(scratch: Path, given: str | None, assignments: list[str]) -> str:
    from course.grader import gradebook

    url = gradebook.check_url(given or f"sqlite:///{scratch / 'gradebook.db'}")
    gradebook.ensure_assignments(url, assignments, ROOT)  # once, outside the clock
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=6, help="students in the timed class")
    parser.add_argument("--quick", action="store_true",
                        help="skip the whole-course submission; project from the fast notebooks")
    parser.add_argument("--db", help="gradebook database URL (default: SQLite in a temp dir); "
                                     "every run re-grades (--force) into it")
    parser.add_argument("--course-students", type=int, default=1000)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("COURSE_KERNEL_THREADS", "1")
    course = sorted(p.name for p in (ROOT / "solutions").iterdir() if (p / f"{p.name}.ipynb").is_file())

    print(f"== class grading on Dask: {args.students} students x {len(FAST)} notebooks "
          f"({', '.join(FAST)}), {os.cpu_count()} cores here, gradebook: "
          f"{(args.db or 'sqlite').split(':')[0]} ==")
    rates, per_notebook, busy = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="course-scale-") as tmp:
        scratch = Path(tmp)
        n = _class(scratch / "class", args.students, list(FAST))
        url = _gradebook(scratch, args.db, course)
        for workers in (1, 2):
            wall, results = grade_on(workers, scratch / "class", scratch / f"out{workers}", url)
            rates[workers] = n / wall * 60
            busy[workers] = sum(r["seconds"] + r["record_seconds"] for r in results) / n
            per_notebook[workers] = wall * workers / n
            print(f"{workers} worker{'s' if workers > 1 else ' '}: {n} notebooks in {wall:6.1f} s = "
                  f"{rates[workers]:5.1f} notebooks/min   (worker-seconds per notebook "
                  f"{per_notebook[workers]:.2f}; grading + recording {busy[workers]:.2f}, of which "
                  f"recording {sum(r['record_seconds'] for r in results) / n:.3f})")
        ratio = rates[2] / rates[1]
        efficiency = ratio / 2
        print(f"2 workers / 1 worker: {ratio:.2f}x  (parallel efficiency {efficiency:.0%})")
        overhead = max(0.0, per_notebook[1] - busy[1])  # task dispatch, reading, files

        if args.quick:
            costs = {nb: per_notebook[1] for nb in course}
            print(f"\n--quick: every notebook costed as the fast ones ({per_notebook[1]:.1f} s): "
                  "a lower bound")
        else:
            print(f"\n== per-notebook cost: one whole-course submission ({len(course)} notebooks) "
                  "on 2 workers ==")
            _class(scratch / "course", 1, course)
            wall, results = grade_on(2, scratch / "course", scratch / "out-course", url)
            costs = {r["assignment"]: r["seconds"] + r["record_seconds"] + overhead for r in results}
            for nb in course:
                print(f"  {nb:<22}{costs[nb]:7.1f} s")
            print(f"  {'one student, all':<22}{sum(costs.values()):7.1f} s of one worker "
                  f"({wall:.1f} s wall on 2 workers)")

    total = args.course_students * sum(costs.values())  # worker-seconds for the whole course
    longest = max(costs.values())
    print(f"\n== projection: {args.course_students} students x {len(course)} notebooks = "
          f"{args.course_students * len(course):,} notebooks, {total / 3600:.1f} worker-hours ==")
    print(f"(one core per worker; 'measured' keeps the {efficiency:.0%} efficiency of 2 workers "
          "here, 'ideal' assumes workers on cores of their own; the longest notebook bounds it)")
    print(f"{'workers':>8}  {'ideal':>9}  {'measured':>9}  {'notebooks/min (measured)':>25}")
    for workers in (1, 2, 4, 8, 16, 32, 64, 128, 256):
        ideal = max(total / workers, longest)
        measured = max(total / (workers * (1.0 if workers == 1 else efficiency)), longest)
        print(f"{workers:>8}  {_hours(ideal):>9}  {_hours(measured):>9}  "
              f"{args.course_students * len(course) / measured * 60:>25.0f}")


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"

if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
