"""Hostile and broken submissions: each is graded, explained, bounded, and harms nobody else.

Submissions are built from the generated student copy of 02_tensors with the correct answers
filled in, then one answer is replaced by an attack. The expected scores are exact.
"""

from __future__ import annotations

import csv
import json
import os
import time
import uuid

import nbformat
import pytest
from nbharness import ROOT, SOLUTIONS

from course import autograde as ag
from course.grading import GradingInputError, grade_notebook

pytestmark = pytest.mark.notebook

NB = "02_tensors"
FULL = 9.0
CORRECT_FLAT = ("def flat_index(index, strides, offset=0):\n"
                "    return int(offset + sum(i * s for i, s in zip(index, strides)))\n")


def submission(tmp_path, answers: dict[str, str], assignment: str = NB, name: str | None = None,
               student: str = "student"):
    """The student copy with every answer solved, except those given in ``answers``."""
    nb = nbformat.read(str(ROOT / "notebooks" / assignment / f"{assignment}.ipynb"), as_version=4)
    sol = nbformat.read(str(SOLUTIONS / assignment / f"{assignment}.ipynb"), as_version=4)
    solved = {c.metadata["nbgrader"]["grade_id"]: c.source for c in sol.cells
              if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in solved:
            cell.source = answers.get(gid, solved[gid])
    path = tmp_path / student / assignment / (name or f"{assignment}.ipynb")
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return nb, path


def scores(report) -> dict[str, float]:
    return {t.grade_id: t.points for t in report.tests}


def test_runtime_monkeypatching_is_detected_and_voids_later_tests(tmp_path):
    attack = ("t = torch.testing\nt.assert_close = lambda *a, **k: None\n"
              "c = check\nc.flat_index = lambda *a, **k: None\n"
              "def flat_index(index, strides, offset=0):\n    return 0\n")
    _, path = submission(tmp_path, {"flat_index": attack})
    report = grade_notebook(path)
    assert scores(report) == {"test_contiguous_strides": 2, "test_flat_index": 0,
                              "test_is_contiguous": 0, "test_transpose_view": 0}
    assert any("course.checks.tensors.flat_index" in f for f in report.integrity)
    assert "integrity" in report.tests[1].message


def test_rebinding_the_checker_is_caught_statically_and_undone(tmp_path):
    attack = ("class _Pass:\n    def __getattr__(self, name):\n        return lambda *a, **k: None\n"
              "check = _Pass()\n"
              "def flat_index(index, strides, offset=0):\n    return 0\n")
    _, path = submission(tmp_path, {"flat_index": attack})
    report = grade_notebook(path)
    assert report.score == FULL - 2 and scores(report)["test_flat_index"] == 0
    assert any("rebinds the name check" in f for f in report.integrity)


def test_patching_builtins_is_detected(tmp_path):
    attack = ("b = __builtins__\n" + CORRECT_FLAT +
              "def _all_ok(*a, **k):\n    return True\n"
              "(b if isinstance(b, dict) else b.__dict__)['isinstance'] = _all_ok\n")
    _, path = submission(tmp_path, {"flat_index": attack})
    report = grade_notebook(path)
    assert scores(report)["test_contiguous_strides"] == 2
    assert scores(report)["test_flat_index"] == 0 and report.integrity


def test_edited_duplicated_and_reordered_test_cells_do_not_matter(tmp_path):
    nb, path = submission(tmp_path, {"flat_index": "def flat_index(i, s, o=0):\n    return 0\n"})
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    for cell in tests:
        cell.source = "pass"
    nb.cells = tests + [c for c in nb.cells if c not in tests] + tests  # duplicated, reordered
    nbformat.write(nb, str(path))
    report = grade_notebook(path)
    assert scores(report) == {"test_contiguous_strides": 2, "test_flat_index": 0,
                              "test_is_contiguous": 2, "test_transpose_view": 3}


def test_kernel_exit_and_segfault_lose_only_their_exercise(tmp_path):
    for attack in ("import os\nos._exit(3)\n" + CORRECT_FLAT,
                   "import ctypes\n" + CORRECT_FLAT + "ctypes.string_at(0)\n"):
        _, path = submission(tmp_path, {"flat_index": attack})
        report = grade_notebook(path)
        assert report.score == FULL - 2, (attack, report.tests)
        assert any("crashed the Python kernel" in p for p in report.problems), report.problems


def test_endless_loop_ignoring_sigint_is_stopped(tmp_path):
    hang = ("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n" + CORRECT_FLAT
            + "while True:\n    pass\n")
    _, path = submission(tmp_path, {"flat_index": hang})
    started = time.monotonic()
    report = grade_notebook(path, cell_timeout=45)
    assert time.monotonic() - started < 400
    assert report.score == FULL - 2
    assert any("longer than 45 s" in p for p in report.problems)


def test_memory_bomb_is_bounded(tmp_path):
    bomb = ("def flat_index(index, strides, offset=0):\n"
            "    hoard = bytearray(64 << 30)\n    return len(hoard)\n")
    _, path = submission(tmp_path, {"flat_index": bomb})
    report = grade_notebook(path)
    assert report.score == FULL - 2
    failed = [t for t in report.tests if not t.passed]
    assert "MemoryError" in failed[0].message


def test_fork_bomb_children_are_killed(tmp_path):
    pidfile = tmp_path / f"pids-{uuid.uuid4().hex}"
    bomb = (CORRECT_FLAT + "import os, time\n"
            "for _ in range(8):\n"
            "    pid = os.fork()\n"
            "    if pid == 0:\n"
            f"        open({str(pidfile)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
            "        time.sleep(600)\n"
            "        os._exit(0)\n")
    _, path = submission(tmp_path, {"flat_index": bomb})
    report = grade_notebook(path)
    assert scores(report)["test_flat_index"] == 0 and report.integrity  # os.fork is flagged
    time.sleep(1)
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 8
    alive = [p for p in pids if _alive(p)]
    assert not alive, f"forked children outlived grading: {alive}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is dead, only not yet reaped
        return fh.read().split()[2] != "Z"


def test_huge_output_is_truncated(tmp_path):
    attack = CORRECT_FLAT + "print('x' * 100_000_000)\n"
    _, path = submission(tmp_path, {"flat_index": attack})
    executed = tmp_path / "executed.ipynb"
    report = grade_notebook(path, executed_path=executed)
    assert report.score == FULL
    assert executed.stat().st_size < 5_000_000


@pytest.mark.parametrize("content", ['{"cells": [', "", "not json at all", '{"cells": 3}'])
def test_invalid_notebook_is_a_clear_error(tmp_path, content):
    bad = tmp_path / "02_tensors.ipynb"
    bad.write_text(content)
    with pytest.raises(GradingInputError, match="not a readable notebook"):
        grade_notebook(bad)


def test_class_autograde_survives_hostile_students(tmp_path, capsys):
    """Good, broken, renamed, missing and gradebook-tampering students graded in one run."""
    sub = tmp_path / "submitted"
    out = tmp_path / "out"
    submission(sub, {}, assignment="00_setup", student="alice")
    submission(sub, {"mean_square": "def mean_square(x):\n    return x.sum()\n"},
               assignment="00_setup", student="bob", name="my_work.ipynb")
    (sub / "carol" / "00_setup").mkdir(parents=True)
    (sub / "carol" / "00_setup" / "00_setup.ipynb").write_text('{"cells": [')
    (sub / "dave" / "00_setup").mkdir(parents=True)
    target = out / "results" / "alice" / "00_setup.json"
    forged = json.dumps({"student": "alice", "assignment": "00_setup", "status": "graded",
                         "score": -99, "max_score": 1})
    tamper = (f"open({str(target)!r}, 'w').write({forged!r})\n"
              "def mean_square(x):\n    return (x * x).mean()\n")
    submission(sub, {"mean_square": tamper}, assignment="00_setup", student="mallory")
    ag.autograde(sub, out, jobs=1, progress=False)
    rows = {r["student"]: r for r in csv.DictReader(open(out / "grades.csv"))}
    assert rows["alice"]["score"] == "1" and rows["alice"]["status"] == "graded"
    assert rows["bob"]["score"] == "0" and "renamed" in rows["bob"]["notes"]
    assert rows["carol"]["status"] == "invalid" and rows["carol"]["score"] == "0"
    assert rows["dave"]["status"] == "missing" and rows["dave"]["score"] == "0"
    assert rows["mallory"]["score"] == "1"
    assert "was modified during grading" in capsys.readouterr().err
    feedback = (out / "feedback" / "bob" / "00_setup" / "00_setup.html").read_text()
    assert "HIDDEN" not in feedback and "thorough=True" not in feedback
    assert "MEAN of the squared" in feedback


def test_rerun_skips_unchanged_and_failed_regrade_never_keeps_old_score(tmp_path, monkeypatch):
    sub, out = tmp_path / "submitted", tmp_path / "out"
    submission(sub, {}, assignment="00_setup", student="alice")
    first = ag.autograde(sub, out, jobs=1, progress=False)
    assert first[0]["status"] == "graded" and first[0]["score"] == 1
    again = ag.autograde(sub, out, jobs=1, progress=False)
    assert again[0].get("skipped")

    def broken(*args, **kwargs):
        return {"status": "error", "error": "the grader failed (simulated)"}

    monkeypatch.setattr(ag, "_run_worker", broken)
    forced = ag.autograde(sub, out, jobs=1, progress=False, force=True)
    assert forced[0]["status"] == "error"
    rows = list(csv.DictReader(open(out / "grades.csv")))
    assert rows[0]["status"] == "error" and rows[0]["score"] == ""
    assert list((out / "history" / "alice").glob("00_setup.*.json"))  # the old grade is kept aside


def test_interrupted_run_leaves_a_consistent_gradebook(tmp_path, monkeypatch):
    sub, out = tmp_path / "submitted", tmp_path / "out"
    for student in ("ann", "ben"):
        submission(sub, {}, assignment="00_setup", student=student)
    real = ag._run_worker

    def dies_on_ben(job, *args, **kwargs):
        if job.student == "ben":
            raise KeyboardInterrupt
        return real(job, *args, **kwargs)

    monkeypatch.setattr(ag, "_run_worker", dies_on_ben)
    with pytest.raises(KeyboardInterrupt):
        ag.autograde(sub, out, jobs=1, progress=False)
    rows = list(csv.DictReader(open(out / "grades.csv")))
    assert [r["student"] for r in rows] == ["ann"]
    monkeypatch.setattr(ag, "_run_worker", real)
    results = {r["student"]: r for r in ag.autograde(sub, out, jobs=1, progress=False)}
    assert results["ann"].get("skipped") and results["ben"]["status"] == "graded"
