"""The grader end to end, through nbgrader's machinery and real kernels.

Every solution notebook scores full marks and runs without errors; every generated student copy
scores zero; a few tampered or broken submissions are graded correctly and explained.
"""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest
from nbharness import ROOT, SOLUTIONS

from course.grading import GradingInputError, grade_notebook

pytestmark = pytest.mark.notebook

ASSIGNMENTS = sorted(p.name for p in SOLUTIONS.iterdir() if (p / f"{p.name}.ipynb").is_file())
NOTEBOOKS = ROOT / "notebooks"


def _student(assignment: str):
    return NOTEBOOKS / assignment / f"{assignment}.ipynb"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_scores_full_marks(assignment):
    report = grade_notebook(SOLUTIONS / assignment / f"{assignment}.ipynb")
    assert report.max_score > 0
    assert report.score == report.max_score, [t for t in report.tests if not t.passed]
    assert report.hidden_tests_included
    assert report.cell_errors == [] and report.problems == []


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_copy_scores_zero(assignment):
    report = grade_notebook(_student(assignment))
    assert report.max_score > 0
    assert report.score == 0, [t for t in report.tests if t.passed]
    assert all("not implemented yet" in t.message for t in report.tests), report.tests


def _with_answer(assignment: str, grade_id: str, source: str, tmp_path):
    nb = nbformat.read(str(_student(assignment)), as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = source
    solution = nbformat.read(str(SOLUTIONS / assignment / f"{assignment}.ipynb"), as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in solution.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers and gid != grade_id:
            cell.source = answers[gid]
    out = tmp_path / assignment / f"{assignment}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(out))
    return nb, out


COPYING_TRANSPOSE = """
def transpose_view(t, dim0, dim1):
    n = t.dim()
    d0, d1 = dim0 % n, dim1 % n
    size, stride = list(t.shape), list(t.stride())
    size[d0], size[d1] = size[d1], size[d0]
    stride[d0], stride[d1] = stride[d1], stride[d0]
    return t.clone().as_strided(size, stride, t.storage_offset())
"""


def test_wrong_answer_loses_only_its_points_and_is_explained(tmp_path):
    _, path = _with_answer("02_tensors", "transpose_view", COPYING_TRANSPOSE, tmp_path)
    report = grade_notebook(path)
    failed = {t.grade_id: t for t in report.tests if not t.passed}
    assert set(failed) == {"test_transpose_view"}
    assert "made a copy" in failed["test_transpose_view"].message
    assert report.score == report.max_score - failed["test_transpose_view"].max_points


def test_tampered_test_cells_are_restored(tmp_path):
    nb, path = _with_answer("02_tensors", "flat_index", "def flat_index(i, s, o=0):\n    return 0\n",
                            tmp_path)
    for cell in nb.cells:  # the student "passes" every test by gutting the test cells
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.source = "pass"
    nb.cells = nb.cells[::-1][::-1]  # and keeps their order; deleting one is covered below
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_is_contiguous"]
    nbformat.write(nb, str(path))
    report = grade_notebook(path)
    scores = {t.grade_id: t.points for t in report.tests}
    assert scores["test_flat_index"] == 0
    assert scores["test_is_contiguous"] > 0  # restored from the source, and the answer is right


def test_deleted_answer_cell_is_reported(tmp_path):
    nb, path = _with_answer("02_tensors", "flat_index", "", tmp_path)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "is_contiguous"]
    nbformat.write(nb, str(path))
    report = grade_notebook(path)
    assert any("'is_contiguous' is missing" in p for p in report.problems)
    assert {t.grade_id for t in report.tests if t.passed} == {"test_contiguous_strides",
                                                                "test_transpose_view"}


def test_endless_loop_ignoring_sigint_is_stopped(tmp_path):
    hang = ("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "def flat_index(index, strides, offset=0):\n    return 0\nwhile True:\n    pass\n")
    _, path = _with_answer("02_tensors", "flat_index", hang, tmp_path)
    report = grade_notebook(path, cell_timeout=8)
    scores = {t.grade_id: t.points for t in report.tests}
    assert scores["test_flat_index"] == 0
    assert scores["test_transpose_view"] == 3  # the rest of the notebook was still graded
    assert any("longer than" in p for p in report.problems)


def test_invalid_json_is_a_clear_error(tmp_path):
    bad = tmp_path / "02_tensors.ipynb"
    bad.write_text('{"cells": [')
    with pytest.raises(GradingInputError, match="not a readable notebook"):
        grade_notebook(bad)


def test_cli_json_report_has_no_hidden_code(tmp_path):
    _, path = _with_answer("02_tensors", "transpose_view", COPYING_TRANSPOSE, tmp_path)
    out = subprocess.run([sys.executable, "-m", "course.cli", "grade", str(path), "--json"],
                         capture_output=True, text=True, check=True).stdout
    report = json.loads(out)
    assert report["max_score"] == 9 and report["score"] == 6
    assert {"grade_id", "points", "max_points", "passed", "message"} <= set(report["tests"][0])
    assert "thorough" not in out and "HIDDEN" not in out and "seed=" not in out


def test_release_is_fresh(tmp_path):
    """notebooks/ is exactly what `course release` generates from solutions/ (regenerate if not)."""
    from course.cli import release

    release(out_dir=tmp_path / "release", db_url=f"sqlite:///{tmp_path / 'gb.db'}", quiet=True)
    stale = []
    for assignment in ASSIGNMENTS:
        for fresh in (tmp_path / "release" / assignment).glob("*"):
            committed = NOTEBOOKS / assignment / fresh.name
            if not committed.is_file() or _canon(committed) != _canon(fresh):
                stale.append(str(committed.relative_to(ROOT)))
    assert not stale, f"run `course release` and commit: stale or missing {stale}"
    extra = {p.parent.name for p in NOTEBOOKS.glob("*/*.ipynb")} - set(ASSIGNMENTS)
    assert not extra, f"notebooks without a source in solutions/: {extra}"


def _canon(path):
    if path.suffix != ".ipynb":
        return path.read_bytes()
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        cell.pop("id", None)
    return json.dumps(nb, sort_keys=True)


def test_hidden_tests_are_not_in_student_copies():
    for assignment in ASSIGNMENTS:
        text = _student(assignment).read_text()
        assert "HIDDEN TESTS" not in text and "hidden=True" not in text, assignment
        assert "BEGIN SOLUTION" not in text, assignment


def test_committed_notebooks_have_no_outputs():
    for path in list(SOLUTIONS.glob("*/*.ipynb")) + list(NOTEBOOKS.glob("*/*.ipynb")):
        nb = json.loads(path.read_text())
        dirty = [c for c in nb["cells"] if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
        assert not dirty, f"{path} has outputs: strip them"


