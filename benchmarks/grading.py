"""Grading throughput: seconds per notebook and per student for a whole-course submission.

Used by ``bench.py --section grading``. One "student" submits every solution notebook; the class
is graded with ``course autograde`` (each notebook in its own process and kernel). The baseline,
measured in the same run, is the floor any kernel-based grader pays per notebook: start a Jupyter
kernel and import torch and the course's checks.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def kernel_floor(repeats: int = 3) -> float:
    """Median seconds to start a kernel, import torch and course.checks, and shut it down."""
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    times = []
    for _ in range(repeats):
        nb = new_notebook(cells=[new_code_cell("import torch, course.checks")])
        started = time.perf_counter()
        NotebookClient(nb, kernel_name="python3", timeout=120).execute()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def bench_grading(jobs: int, assignments: list[str] | None = None) -> None:
    from course.autograde import autograde

    sources = sorted((ROOT / "solutions").glob("*/*.ipynb"))
    if assignments:
        sources = [s for s in sources if s.parent.name in assignments]
    print("\n== grading: a whole-course submission through `course autograde` ==")
    floor = kernel_floor()
    print(f"baseline: kernel start + import torch, course.checks: {floor:.1f} s per notebook")
    with tempfile.TemporaryDirectory() as tmp:
        submitted = Path(tmp) / "submitted" / "student"
        for src in sources:
            (submitted / src.parent.name).mkdir(parents=True)
            shutil.copy(src, submitted / src.parent.name / src.name)
        started = time.perf_counter()
        results = autograde(Path(tmp) / "submitted", Path(tmp) / "out", jobs=jobs, progress=False)
        total = time.perf_counter() - started
        per_notebook = {}
        for r in results:
            record = Path(tmp) / "out" / "results" / "student" / f"{r['assignment']}.json"
            per_notebook[r["assignment"]] = (r.get("seconds") or 0.0, r.get("score"),
                                             r.get("max_score"), record.is_file())
    print(f"{'notebook':<22}{'grading s':>10}{'× floor':>9}  score")
    for name, (secs, score, max_score, _) in sorted(per_notebook.items()):
        print(f"{name:<22}{secs:>10.1f}{secs / floor:>9.1f}  {score:g}/{max_score:g}")
    serial = sum(v[0] for v in per_notebook.values())
    print(f"one student, {len(sources)} notebooks, {jobs} at a time: {total:.1f} s wall "
          f"({serial:.1f} s of notebook grading; {total / len(sources):.1f} s per notebook; "
          f"{total / (floor * len(sources)):.1f}× the kernel floor)")
    print(f"a class of N students takes about N × {total:.0f} s with --jobs {jobs}")
