"""``autograde`` stage after ``SaveAutoGrades``: the judge's words go into the gradebook.

Each answer cell gets a grade comment (``auto_comment``) listing the failed tests of its exercise
with the judge's concept feedback, so formgrader shows them next to the code; integrity findings
and "needs a look" notes flag the submission and are written in the comment of the first answer
cell, from where ``course autograde`` exports ``integrity.csv``.
"""

from __future__ import annotations

from nbgrader.api import Gradebook
from nbgrader.preprocessors import NbGraderPreprocessor

__all__ = ["INTEGRITY_PREFIX", "LOOK_PREFIX", "SaveJudgeComments"]

INTEGRITY_PREFIX = "[integrity] "
LOOK_PREFIX = "[needs a look] "


def _exercise_of(test_id: str, answers: list[str]) -> str | None:
    """The answer cell a test belongs to: ``test_<answer>`` or ``test_<answer>_<aspect>``."""
    best = None
    for gid in answers:
        if test_id == f"test_{gid}" or test_id.startswith(f"test_{gid}_"):
            if best is None or len(gid) > len(best):
                best = gid
    return best


class SaveJudgeComments(NbGraderPreprocessor):
    """Write the judge's messages as grade comments; flag integrity findings."""

    def preprocess(self, nb, resources):  # noqa: D102
        from .. import cells

        info = resources["nbgrader"]
        meta = nb.metadata.get("course_grading", {})
        answers = [cells.grade_id(c) for c in nb.cells if cells.is_answer(c)]
        notes: dict[str, list[str]] = {gid: [] for gid in answers}
        for cell in nb.cells:
            if not cells.is_test(cell):
                continue
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    owner = _exercise_of(cells.grade_id(cell), answers) or (answers[0] if answers else None)
                    if owner is not None:
                        notes[owner].append(f"{cells.grade_id(cell)}: {out.get('evalue', '')}")
        findings = [INTEGRITY_PREFIX + f for f in meta.get("integrity", [])]
        findings += [LOOK_PREFIX + f for f in meta.get("needs_look", [])]
        if answers:
            notes[answers[0]] = findings + notes[answers[0]]
        with Gradebook(info["db_url"]) as gb:
            for gid, lines in notes.items():
                comment = gb.find_comment(gid, info["notebook"], info["assignment"], info["student"])
                if lines:
                    comment.auto_comment = "\n".join(lines)
                elif comment.auto_comment != "No response.":
                    comment.auto_comment = None
            submission = gb.find_submission_notebook(info["notebook"], info["assignment"], info["student"])
            submission.flagged = bool(findings)
            gb.db.commit()
        return nb, resources
