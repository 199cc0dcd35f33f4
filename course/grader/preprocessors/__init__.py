"""The course's nbgrader stages, one per module (configured in ``course.grader.config``).

* :class:`~.release_extras.AddReleaseExtras` — ``generate_assignment``: launch badges, the
  Colab-only set-up cell and the self-check cell.
* :class:`~.judged_run.JudgedRun` — ``autograde``: instead of executing the notebook in a kernel,
  rebuild it from the source, run the student's code in the sandboxed runner and let the judge
  decide every test cell.
* :class:`~.judge_comments.SaveJudgeComments` — ``autograde``, after ``SaveAutoGrades``: the
  judge's messages as grade comments, integrity findings as a flag.
* :class:`~.feedback.HiddenTestsOut` and :class:`~.feedback.ScoreTable` — ``generate_feedback``:
  hidden tests removed from test cells only; the judge's messages in a table on top.
"""
