"""The whole nbgrader cycle, as an instructor and three students run it, through a local exchange.

A temporary course directory (its own ``nbgrader_config.py``: the course's configuration with the
paths moved) and exchange; each student acts in their own HOME, as nbgrader's docs describe:

    generate_assignment → release_assignment → fetch_assignment / submit (alice right, bob with a
    wrong flat_index, carol untouched) → collect → autograde → generate_feedback →
    release_feedback → fetch_feedback → export

then ``course autograde`` on the same submissions must give the same numbers.
"""

from __future__ import annotations

import csv
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbharness import ROOT, SOLUTIONS
from submissions import solved

from course.grader.config import COURSE_ID

pytestmark = pytest.mark.grader

NB = "02_tensors"
BIN = Path(sys.executable).parent
WRONG_FLAT = "def flat_index(index, strides, offset=0):\n    return 0\n"
EXPECTED = {"alice": 9.0, "bob": 7.0, "carol": 0.0}
FLAT_CONCEPT = "the position in storage is offset + Σ index[d] · stride[d] over all dimensions d"


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "COURSE_ROOT"))}
    env.update(HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
               JUPYTER_DATA_DIR=str(home / ".local/share/jupyter"),
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               OMP_NUM_THREADS="1", COURSE_KERNEL_THREADS="1")
    return env


def nbgrader(cwd: Path, home: Path, *args: str) -> str:
    done = subprocess.run([str(BIN / "nbgrader"), *args], cwd=cwd, env=_env(home),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"nbgrader {' '.join(args)}:\n{done.stdout[-2000:]}{done.stderr[-4000:]}"
    return done.stdout + done.stderr


def _answer(path: Path, answers: dict[str, str]) -> None:
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    nbformat.write(nb, str(path))


def _gradebook_scores(db: Path) -> dict[tuple[str, str], float]:
    """(student, test cell) -> score, as nbgrader's own API reads the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db}", COURSE_ID) as gb:
        return {(sub.student.id, grade.name): grade.score
                for sub in gb.find_assignment(NB).submissions
                for nb in sub.notebooks for grade in nb.grades}


def test_instructor_and_students_through_nbgrader(tmp_path):
    course, exchange = tmp_path / "course", tmp_path / "exchange"
    teacher = tmp_path / "home-teacher"
    for folder in (course, exchange, teacher):
        folder.mkdir()
    exchange.chmod(0o777)
    shutil.copytree(SOLUTIONS / NB, course / "solutions" / NB)
    (course / "nbgrader_config.py").write_text(
        "from pathlib import Path\n"
        "from course.grader.config import configure\n\n"
        "c = get_config()  # noqa: F821\n"
        f"configure(c, Path({str(ROOT)!r}))  # the course's stages, limits and source\n"
        "here = Path(__file__).resolve().parent\n"
        "c.CourseDirectory.root = str(here)\n"
        "c.CourseDirectory.db_url = f\"sqlite:///{here / 'gradebook.db'}\"\n"
        f"c.Exchange.root = {str(exchange)!r}\n")

    # The instructor releases the assignment.
    nbgrader(course, teacher, "generate_assignment", NB, "--force")
    released = course / "notebooks" / NB / f"{NB}.ipynb"
    assert released.read_bytes() == (ROOT / "notebooks" / NB / f"{NB}.ipynb").read_bytes()
    nbgrader(course, teacher, "release_assignment", NB)

    # Each student fetches, answers (or not) and submits, from their own home.
    right = solved(NB)
    answers = {"alice": right, "bob": {**right, "flat_index": WRONG_FLAT}, "carol": {}}
    exchange_args = ("--course", COURSE_ID, f"--Exchange.root={exchange}")
    homes = {}
    for student, given in answers.items():
        home = homes[student] = tmp_path / f"home-{student}"
        home.mkdir()
        nbgrader(home, home, "fetch_assignment", NB, *exchange_args)
        fetched = home / NB / f"{NB}.ipynb"
        assert fetched.read_bytes() == released.read_bytes()
        _answer(fetched, given)
        nbgrader(home, home, "submit", NB, *exchange_args, f"--student={student}")

    # The instructor collects, grades, returns feedback and exports.
    nbgrader(course, teacher, "collect", NB)
    submitted = course / "autograder" / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == sorted(answers)
    nbgrader(course, teacher, "autograde", NB)
    nbgrader(course, teacher, "generate_feedback", NB)
    nbgrader(course, teacher, "release_feedback", NB)
    nbgrader(course, teacher, "export", "--to", str(tmp_path / "grades.csv"))
    exported = {r["student_id"]: r for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    assert {s: float(r["score"]) for s, r in exported.items()} == EXPECTED
    assert {float(r["max_score"]) for r in exported.values()} == {9.0}

    # Students fetch their feedback: the judge's message, never hidden test code.
    for student in answers:
        nbgrader(homes[student], homes[student], "fetch_feedback", NB, *exchange_args,
                 f"--student={student}")
        [feedback] = (homes[student] / NB / "feedback").glob(f"*/{NB}.html")
        text = feedback.read_text()
        assert f"Score: {EXPECTED[student]:g} / 9" in text, student
        for secret in ("BEGIN HIDDEN", "hidden=True", "thorough=True", "seed=7", "BEGIN SOLUTION"):
            assert secret not in text, (student, secret)
    bob = next((homes["bob"] / NB / "feedback").glob(f"*/{NB}.html")).read_text()
    assert "offset + Σ index[d] · stride[d]" in bob
    carol = next((homes["carol"] / NB / "feedback").glob(f"*/{NB}.html")).read_text()
    assert "not implemented yet" in carol

    # `course autograde` on the same submissions: the same numbers, cell by cell.
    theirs = _gradebook_scores(course / "gradebook.db")
    done = subprocess.run(
        [str(BIN / "course"), "autograde", str(submitted), "--out", str(tmp_path / "out"),
         "--db", f"sqlite:///{tmp_path / 'ours.db'}", "--quiet", "--jobs", "2"],
        cwd=ROOT, env=_env(teacher), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _gradebook_scores(tmp_path / "ours.db") == theirs
    assert len(theirs) == 3 * 4
    ours = {r["student"]: float(r["score"]) for r in csv.DictReader(open(tmp_path / "out" / "grades.csv"))}
    assert ours == EXPECTED
    with sqlite3.connect(course / "gradebook.db") as con:  # the judge's words are grade comments
        comments = [c for (c,) in con.execute("select auto_comment from comment") if c]
    assert any(c.startswith("test_flat_index: " + FLAT_CONCEPT) for c in comments)
