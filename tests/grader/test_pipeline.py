"""The grading pipeline end to end: sandboxed runner, judge, reports, release, nbgrader front doors.

Every solution notebook scores full marks with no problem reported; every generated student copy
scores zero with "not implemented yet"; broken input gets a verdict and a message, never a crash.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from nbharness import ROOT, SOLUTIONS
from submissions import grade, scores, submission

from course.grader.grade import GradingInputError, read_notebook

pytestmark = pytest.mark.grader

ASSIGNMENTS = sorted(p.name for p in SOLUTIONS.iterdir() if (p / f"{p.name}.ipynb").is_file())
NOTEBOOKS = ROOT / "notebooks"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_scores_full_marks(assignment):
    report, _ = grade(SOLUTIONS / assignment / f"{assignment}.ipynb", assignment)
    assert report.max_score > 0 and report.hidden_tests_included
    assert report.score == report.max_score, [t for t in report.tests if not t.passed]
    assert report.problems == [] and report.cell_errors == []
    assert report.integrity == [] and report.needs_look == [], "a solution is never flagged"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_copy_scores_zero(assignment):
    report, _ = grade(NOTEBOOKS / assignment / f"{assignment}.ipynb", assignment)
    assert report.max_score > 0 and report.score == 0, [t for t in report.tests if t.passed]
    assert all("not implemented yet" in t.message for t in report.tests), report.tests


def test_wrong_answer_loses_only_its_points_and_is_explained(tmp_path):
    copying = ("def transpose_view(t, dim0, dim1):\n"
               "    size, stride = list(t.shape), list(t.stride())\n"
               "    size[dim0], size[dim1] = size[dim1], size[dim0]\n"
               "    stride[dim0], stride[dim1] = stride[dim1], stride[dim0]\n"
               "    return t.clone().as_strided(size, stride, t.storage_offset())\n")
    report, _ = grade(submission(tmp_path, "02_tensors", {"transpose_view": copying}))
    assert scores(report)["test_transpose_view"] == 0 and report.score == 6
    assert "copy" in next(t.message for t in report.tests if t.grade_id == "test_transpose_view")


def test_edited_and_deleted_cells(tmp_path):
    import nbformat

    path = submission(tmp_path, "02_tensors")
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if gid.startswith("test_"):
            cell.source = "pass"  # a test cell emptied: the source's test cells are what run
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "flat_index"]
    nbformat.write(nb, str(path))
    report, _ = grade(path)
    assert scores(report) == {"test_contiguous_strides": 2, "test_flat_index": 0,
                              "test_is_contiguous": 2, "test_transpose_view": 3}
    assert any("'flat_index' is missing" in p for p in report.problems)


@pytest.mark.parametrize("content", ['{"cells": [', "", "[]", '{"cells": 3}'])
def test_unreadable_notebooks_are_a_clear_error(tmp_path, content):
    bad = tmp_path / "02_tensors.ipynb"
    bad.write_text(content)
    with pytest.raises(GradingInputError, match="not a readable notebook"):
        read_notebook(bad)


def test_cli_reports_json_without_hidden_code(tmp_path):
    path = submission(tmp_path, "02_tensors", {"flat_index": "def flat_index(i, s, o=0):\n    return 0\n"})
    done = subprocess.run([sys.executable, "-m", "course.cli", "grade", str(path), "--json",
                           "--source", str(SOLUTIONS / "02_tensors" / "02_tensors.ipynb")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["max_score"] == 9 and report["score"] == 7
    assert "thorough" not in done.stdout and "HIDDEN" not in done.stdout and "seed=" not in done.stdout


def test_hidden_tests_and_solutions_are_not_in_student_copies():
    for assignment in ASSIGNMENTS:
        text = (NOTEBOOKS / assignment / f"{assignment}.ipynb").read_text()
        assert "HIDDEN TESTS" not in text and "hidden=True" not in text, assignment
        assert "BEGIN SOLUTION" not in text, assignment


def test_committed_notebooks_have_no_outputs():
    for path in list(SOLUTIONS.glob("*/*.ipynb")) + list(NOTEBOOKS.glob("*/*.ipynb")):
        nb = json.loads(path.read_text())
        dirty = [c for c in nb["cells"] if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
        assert not dirty, f"{path} has outputs: strip them"


def test_every_test_cell_is_a_list_of_check_calls():
    from course.grader.cells import invocations
    from course.grader.judge import resolve_check

    for assignment in ASSIGNMENTS:
        invs = invocations(read_notebook(SOLUTIONS / assignment / f"{assignment}.ipynb"))
        assert invs, assignment
        for inv in invs:
            resolve_check(inv)  # raises unless it names a Check
