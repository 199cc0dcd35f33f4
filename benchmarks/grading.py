"""Grading throughput: a whole-course submission through the sandboxed runner and the judge.

Used by ``bench.py --section grading``. One "student" submits every solution notebook; the class
is graded with ``course autograde`` (bubblewrap sandbox, runner, judge, gradebook). Baselines,
measured in the same run:

* the **kernel floor**: start a Jupyter kernel and import torch (what any kernel-based grader
  pays per notebook);
* the **sandbox start cost**: ``bwrap ... python -c pass`` against plain ``python -c pass``.

Targets: the sandbox's cost is small next to a kernel start; the whole course graded 2 at a time
in at most 25 × the kernel floor.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def kernel_floor(repeats: int = 3) -> float:
    """Median seconds to start a kernel, import torch, and shut it down."""
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    def once() -> None:
        nb = new_notebook(cells=[new_code_cell("import torch")])
        NotebookClient(nb, kernel_name="python3", timeout=120).execute()

    return _median(once, repeats)


def sandbox_cost(repeats: int = 5) -> tuple[float, float, str]:
    """(seconds for `python -c pass` in the sandbox, the same unsandboxed, sandbox kind)."""
    from course.grader.sandbox import find_sandbox
    from course.paths import data_root

    box = find_sandbox(data=data_root(), allow_none=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = box.command([sys.executable, "-c", "pass"], Path(tmp), {"PATH": "/usr/bin:/bin"})
        boxed = _median(lambda: subprocess.run(cmd, check=True), repeats)
    plain = _median(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), repeats)
    return boxed, plain, box.kind


def bench_grading(jobs: int, assignments: list[str] | None = None) -> None:
    from course.grader.autograde import autograde

    sources = sorted((ROOT / "solutions").glob("*/*.ipynb"))
    if assignments:
        sources = [s for s in sources if s.parent.name in assignments]
    print("\n== grading: a whole-course submission through `course autograde` (sandbox + judge) ==")
    floor = kernel_floor()
    boxed, plain, kind = sandbox_cost()
    print(f"baseline: kernel start + import torch: {floor:.2f} s per notebook")
    print(f"sandbox ({kind}): `python -c pass` {boxed:.3f} s inside vs {plain:.3f} s outside: "
          f"start cost {max(boxed - plain, 0.0):.3f} s = {max(boxed - plain, 0.0) / floor:.1%} of a kernel start")
    with tempfile.TemporaryDirectory() as tmp:
        submitted = Path(tmp) / "submitted" / "student"
        for src in sources:
            (submitted / src.parent.name).mkdir(parents=True)
            shutil.copy(src, submitted / src.parent.name / src.name)
        started = time.perf_counter()
        results = autograde(Path(tmp) / "submitted", Path(tmp) / "out", jobs=jobs, progress=False,
                            db_url=f"sqlite:///{Path(tmp) / 'gradebook.db'}")
        total = time.perf_counter() - started
    print(f"{'notebook':<22}{'grading s':>10}{'× floor':>9}  score")
    for r in sorted(results, key=lambda r: r["assignment"]):
        secs = r.get("seconds") or 0.0
        print(f"{r['assignment']:<22}{secs:>10.1f}{secs / floor:>9.1f}  "
              f"{r.get('score', 0):g}/{r.get('max_score', 0):g} {r['status']}")
    serial = sum(r.get("seconds") or 0.0 for r in results)
    print(f"one student, {len(sources)} notebooks, {jobs} at a time: {total:.1f} s wall "
          f"({serial:.1f} s of notebook grading) = {total / floor:.1f}× the kernel floor "
          f"(target <= 25×)")
