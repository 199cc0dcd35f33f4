"""One class, graded side by side: correct students and one attacker per class of attack.

Every correct student's grade and feedback must be unchanged by the attackers; each attacker gets
its expected score with the reason recorded; solutions/, other students' results and the
gradebook stay as they were. Runs inside the real sandbox (CI installs bubblewrap).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sqlite3

import pytest
from nbharness import ROOT, SOLUTIONS
from submissions import submission

from course.grader.autograde import autograde

pytestmark = pytest.mark.grader

NB = "02_tensors"
FULL = 9.0
WRONG_FLAT = "def flat_index(index, strides, offset=0):\n    return 0\n"


def _attacks(out, root):
    results = out / "results"
    src = SOLUTIONS / NB / f"{NB}.ipynb"
    return {
        # A process in a new session that outlives the runner and rewrites others' records.
        "escape": WRONG_FLAT + (
            "import subprocess\n"
            f"subprocess.Popen(['sh', '-c', 'sleep 3; mkdir -p {results}/alice; "
            f"echo forged > {results}/alice/{NB}.json; echo x > {out}/grades.csv'],"
            " start_new_session=True)\n"),
        # A forged report written into the grading worker's stdout.
        "forge": WRONG_FLAT + (
            "import os\n"
            "for pid in range(1, 400):\n"
            "    try:\n"
            "        with open(f'/proc/{pid}/fd/1', 'w') as fh:\n"
            "            fh.write('{\"score\": 9, \"max_score\": 9, \"tests\": []}')\n"
            "    except OSError:\n"
            "        pass\n"),
        # Rewriting the shared source so later students are graded against it.
        "poison": WRONG_FLAT + (
            f"try:\n    open({str(src)!r}, 'w').write('{{}}')\nexcept OSError as e:\n    print(e)\n"),
        # Planting a directory where another student's record is expected.
        "blocker": WRONG_FLAT + (
            f"import os\nos.makedirs('{results}/bob/{NB}.json', exist_ok=True)\n"),
        # Reading what is secret: solutions/ through the installed package's path.
        "reader": WRONG_FLAT + (
            "import course, pathlib\n"
            "root = pathlib.Path(course.__file__).resolve().parent.parent\n"
            f"secret = (root / 'solutions' / '{NB}' / '{NB}.ipynb').read_text()\n"
            "def flat_index(index, strides, offset=0):\n"
            "    raise RuntimeError(secret[:2000])\n"),
    }


def test_attackers_cannot_touch_anyone_else(tmp_path):
    submitted, out = tmp_path / "submitted", tmp_path / "out"
    db = f"sqlite:///{tmp_path / 'gradebook.db'}"
    for good in ("alice", "bob"):
        submission(submitted, NB, student=good)
    for name, attack in _attacks(out, ROOT).items():
        submission(submitted, NB, {"flat_index": attack}, student=f"mallory-{name}")
    smuggle = submitted / "mallory-smuggle" / NB
    smuggle.mkdir(parents=True)
    (smuggle / f"{NB}.ipynb").symlink_to(SOLUTIONS / NB / f"{NB}.ipynb")
    huge = submitted / "mallory-huge" / NB
    huge.mkdir(parents=True)
    with open(huge / f"{NB}.ipynb", "wb") as fh:  # 64 GiB, sparse: nothing may read it whole
        fh.truncate(64 << 30)
    (huge / "timestamp.txt").write_bytes(b"2026-01-01 00:00:00" + b" " * (8 << 20))
    before = hashlib.sha256((SOLUTIONS / NB / f"{NB}.ipynb").read_bytes()).hexdigest()

    results = autograde(submitted, out, db_url=db, jobs=2, progress=False, log=lambda s: None)
    by = {r["student"]: r for r in results}
    for good in ("alice", "bob"):
        assert by[good]["status"] == "graded" and by[good]["score"] == FULL, by[good]
    for name in ("escape", "forge", "poison", "blocker", "reader"):
        r = by[f"mallory-{name}"]
        assert r["status"] == "graded" and r["score"] == FULL - 2, (name, r)
    assert by["mallory-smuggle"]["status"] == "invalid"
    assert by["mallory-huge"]["status"] == "invalid" and "larger than" in by["mallory-huge"]["problems"][0]
    assert "symbolic link" in by["mallory-smuggle"]["problems"][0]

    import time

    time.sleep(4)  # the escape's sleeper would have fired by now
    assert hashlib.sha256((SOLUTIONS / NB / f"{NB}.ipynb").read_bytes()).hexdigest() == before
    for good in ("alice", "bob"):
        record = json.loads((out / "results" / good / f"{NB}.json").read_text())
        assert record["score"] == FULL
        feedback = (out / "feedback" / good / NB / f"{NB}.html").read_text()
        assert "Score: 9 / 9" in feedback
    rows = {r["student"]: r for r in csv.DictReader(open(out / "grades.csv"))}
    assert rows["alice"]["score"] == "9" and rows["bob"]["score"] == "9"
    reader_feedback = (out / "feedback" / "mallory-reader" / NB / f"{NB}.html").read_text()
    assert "BEGIN HIDDEN" not in reader_feedback and "grade_id" not in reader_feedback
    assert any("FileNotFoundError" in e for e in by["mallory-reader"]["cell_errors"])
    with sqlite3.connect(tmp_path / "gradebook.db") as con:
        scores = dict(con.execute(
            "select student.id, sum(grade.auto_score) from grade "
            "join submitted_notebook on grade.notebook_id = submitted_notebook.id "
            "join submitted_assignment on submitted_notebook.assignment_id = submitted_assignment.id "
            "join student on submitted_assignment.student_id = student.id group by student.id"))
    assert scores["alice"] == FULL and scores["bob"] == FULL

    # A second run still works (nothing planted stops it) and skips what is unchanged.
    again = autograde(submitted, out, db_url=db, jobs=2, progress=False, log=lambda s: None)
    assert all(r.get("skipped") for r in again if r["status"] == "graded")


def test_class_grading_refuses_to_run_without_a_sandbox(tmp_path, monkeypatch):
    from course.grader import sandbox

    monkeypatch.setattr(sandbox, "_bwrap_works", lambda: False)
    submission(tmp_path / "submitted", NB, student="alice")
    with pytest.raises(sandbox.SandboxUnavailable, match="--unsafe-no-sandbox"):
        autograde(tmp_path / "submitted", tmp_path / "out", db_url=f"sqlite:///{tmp_path / 'g.db'}",
                  progress=False)


def test_runner_sees_neither_the_source_nor_the_grader(tmp_path):
    """From inside: solutions/ and the output folder are invisible, the system is read-only, no
    network, no other processes."""
    probe = (
        "import os, socket, pathlib, course\n"
        "root = pathlib.Path(course.__file__).resolve().parent.parent\n"
        "facts = {'solutions': (root / 'solutions').exists(), 'pids': len([p for p in os.listdir('/proc') if p.isdigit()]),\n"
        "         'uid': os.getuid()}\n"
        "try:\n    open('/usr/evil', 'w'); facts['write_system'] = True\n"
        "except OSError:\n    facts['write_system'] = False\n"
        "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2); facts['net'] = True\n"
        "except OSError:\n    facts['net'] = False\n"
        "def flat_index(index, strides, offset=0, _f=facts):\n"
        "    raise RuntimeError(repr(_f))\n")
    submitted = tmp_path / "submitted"
    path = submission(submitted, NB, {"flat_index": probe})
    from submissions import grade, sandbox

    box = sandbox(hide=[submitted])
    if not box.isolated:
        pytest.skip("no sandbox on this machine (CI requires one)")
    report, _ = grade(path, sandbox=box)
    message = next(t.message for t in report.tests if t.grade_id == "test_flat_index")
    facts = eval(message[message.index("{"): message.index("}") + 1])  # noqa: S307 - our own probe
    assert facts == {"solutions": False, "pids": facts["pids"], "uid": 65534,
                     "write_system": False, "net": False}
    assert facts["pids"] <= 3, "the runner sees only its own processes"
    assert not os.path.exists("/usr/evil")


def test_plain_nbgrader_autograde_gives_the_same_scores(tmp_path):
    """The attackers and correct students above, through `nbgrader autograde` itself (what
    formgrader's button runs), score exactly as through `course autograde`."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    course = tmp_path / "course"
    shutil.copytree(SOLUTIONS / NB, course / "solutions" / NB)
    shutil.copy(ROOT / "pyproject.toml", course / "pyproject.toml")
    (course / "autograder").mkdir()
    (course / "autograder" / "nbgrader_config.py").write_text(
        "from pathlib import Path\nfrom course.grader.config import configure\n"
        "c = get_config()\nconfigure(c, Path(__file__).resolve().parent.parent)\n")
    submitted = course / "autograder" / "submitted"
    out = tmp_path / "out"
    students = {"alice": None, "bob": {"flat_index": WRONG_FLAT}}
    for name, attack in _attacks(out, course).items():
        if name in ("forge", "poison", "reader"):
            students[f"mallory-{name}"] = {"flat_index": attack}
    for student, answers in students.items():
        submission(submitted, NB, answers, student=student)
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    for args in (["generate_assignment", NB, "--force"], ["autograde", NB], ["export"]):
        done = subprocess.run([str(bindir / "nbgrader"), *args], cwd=course / "autograder",
                              env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    nbgrader_scores = {r["student_id"]: float(r["score"])
                       for r in csv.DictReader(open(course / "autograder" / "grades.csv"))}
    ours = autograde(submitted, out, db_url=f"sqlite:///{tmp_path / 'ours.db'}", jobs=2,
                     progress=False, log=lambda s: None)
    assert nbgrader_scores == {r["student"]: r["score"] for r in ours}
    assert nbgrader_scores["alice"] == FULL and nbgrader_scores["bob"] == FULL - 2
