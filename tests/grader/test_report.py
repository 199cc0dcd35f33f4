"""`course report`: the gradebook of a small class as an instructor's page, numbers checked.

The class of 02_tensors (4 tests: 2 + 2 + 2 + 3 points), graded by `course autograde`:
alice right, bob and carol with the same wrong `flat_index`, carol also delegating
`transpose_view` to torch, dave untouched, mallory tampering, erin's grading failed.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest
from nbharness import ROOT
from submissions import submission

from course.grader.autograde import autograde
from course.grader.config import COURSE_ID
from course.grader.report import collect, concept_of, parse_comment, render

pytestmark = pytest.mark.grader

NB = "02_tensors"
WRONG_FLAT = "def flat_index(index, strides, offset=0):\n    return 0\n"
DELEGATING = "def transpose_view(t, dim0, dim1):\n    return t.transpose(dim0, dim1)\n"
FLAT_CONCEPT = "the position in storage is offset + Σ index[d] · stride[d] over all dimensions d"
DELEGATION = "transpose_view delegates to the PyTorch reference it is checked against"


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    import shutil

    tmp = tmp_path_factory.mktemp("report")
    submitted, db = tmp / "submitted", f"sqlite:///{tmp / 'gradebook.db'}"
    submission(submitted, NB, student="alice")
    submission(submitted, NB, {"flat_index": WRONG_FLAT}, student="bob")
    submission(submitted, NB, {"flat_index": WRONG_FLAT, "transpose_view": DELEGATING}, student="carol")
    (submitted / "dave" / NB).mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / NB / f"{NB}.ipynb", submitted / "dave" / NB / f"{NB}.ipynb")
    submission(submitted, NB, {"flat_index": WRONG_FLAT + "import torch.testing as tt\n"
                               "tt.assert_close = print\n"}, student="mallory")
    results = autograde(submitted, tmp / "out", db_url=db, jobs=2, progress=False, log=lambda s: None)
    assert {r["student"]: r["score"] for r in results} == {
        "alice": 9, "bob": 7, "carol": 4, "dave": 0, "mallory": 0}
    from nbgrader.api import Gradebook

    with Gradebook(db, COURSE_ID) as gb:  # the grader failed on erin's notebook: no score stands
        gb.update_or_create_student("erin")
        gb.update_or_create_submission(NB, "erin")
        for grade in gb.find_submission_notebook(NB, NB, "erin").grades:
            grade.auto_score, grade.needs_manual_grade = None, True
        gb.db.commit()
    return tmp, db


def test_numbers_come_from_the_gradebook(graded_class):
    _, db = graded_class
    [a] = collect(db)
    assert a.name == NB and a.max_score == 9
    assert a.scores == {"alice": 9, "bob": 7, "carol": 4, "dave": 0, "mallory": 0, "erin": None}
    assert a.flagged == ["mallory"]
    tests = {t.grade_id: (t.passed, t.failed, t.not_done, t.ungraded) for t in a.tests}
    assert tests == {  # (passed, wrong, not attempted, not graded) over 5 graded students
        "test_contiguous_strides": (3, 1, 1, 1), "test_flat_index": (1, 3, 1, 1),
        "test_is_contiguous": (3, 1, 1, 1), "test_transpose_view": (2, 2, 1, 1)}
    assert {t.grade_id: t.share_passed for t in a.tests}["test_flat_index"] == pytest.approx(0.2)
    # Concepts: bob and carol missed the flat index (2 of 5), carol delegated (1 of 5); the
    # tamperer's voided tests and dave's untouched cells are no concept.
    assert [(c.text, sorted(c.students), c.share) for c in a.concepts] == [
        (FLAT_CONCEPT, ["bob", "carol"], pytest.approx(0.4)),
        (DELEGATION, ["carol"], pytest.approx(0.2))]


def test_cli_writes_one_page_with_plots_and_links(graded_class, tmp_path):
    tmp, db = graded_class
    done = subprocess.run([sys.executable, "-m", "course.cli", "report", "--db", db, "--out",
                           str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "report.html").read_text()
    assert f"40 % of students: {FLAT_CONCEPT}" in page
    assert f"20 % of students: {DELEGATION}" in page
    assert "20 % (1/5)" in page and "60 % (3/5)" in page  # flat_index, contiguous_strides
    assert "mallory" in page and "bob" not in page  # integrity findings named; nobody else is
    png = page.split("data:image/png;base64,")[1].split("'")[0]
    assert base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"
    # Each concept links to the section and the exercise that teach it, in the released notebook.
    nb = json.loads((ROOT / "notebooks" / NB / f"{NB}.ipynb").read_text())
    headings = {line for c in nb["cells"] if c["cell_type"] == "markdown"
                for line in "".join(c["source"]).split("\n") if line.startswith("#")}
    assert "## 3. Storage, offset and strides" in headings
    assert f"notebooks/{NB}/{NB}.ipynb#3.-Storage,-offset-and-strides" in page
    assert f"notebooks/{NB}/{NB}.ipynb#Exercise-2:-flat_index(index,-strides,-offset=0)" in page


def test_a_missing_gradebook_is_a_clear_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "course.cli", "report", "--db",
                           f"sqlite:///{tmp_path / 'none.db'}", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "no gradebook" in done.stderr
    assert not (tmp_path / "none.db").exists()
    assert "no graded assignment" in render([])


def test_concepts_are_the_first_sentence_of_the_judges_message():
    comment = ("[integrity] answer cell 'step' assigns to torch.optim\n"
               "test_sgd_weight_decay: weight decay is added to the gradient BEFORE the gradient "
               "enters the momentum buffer (g = grad + weight_decay·p). See section 3\n"
               "  lr=0.02, momentum=0.8: expected 0.5, got 0.4\n"
               "test_sgd: SGD delegates to the PyTorch reference it is checked against; that earns"
               " no credit")
    lines = parse_comment(comment)
    assert [t for t, _ in lines] == ["test_sgd_weight_decay", "test_sgd"]
    assert [concept_of(m) for _, m in lines] == [
        "weight decay is added to the gradient BEFORE the gradient enters the momentum buffer "
        "(g = grad + weight_decay·p)",
        "SGD delegates to the PyTorch reference it is checked against"]
