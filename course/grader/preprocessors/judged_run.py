"""``autograde`` stage: the judged run that replaces nbgrader's ``Execute``.

nbgrader's own ``Execute`` runs the notebook in a kernel and scores what the kernel printed; a
student's code can fake that. This stage instead rebuilds the notebook from the instructor's
source, runs only the student's answers and the checks' scenarios in the sandboxed runner, and
lets the judge (in this process, where no student code runs) decide each test cell. The notebook
it returns carries the verdicts as test-cell outputs, so ``SaveAutoGrades``, formgrader and
``generate_feedback`` work unchanged.
"""

from __future__ import annotations

from pathlib import Path

from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Float, Unicode

__all__ = ["JudgedRun"]


class JudgedRun(NbGraderPreprocessor):
    """Grade the submission in the sandbox; the verdicts become the test cells' outputs."""

    course_root = Unicode("", help="The course repository (holds solutions/ and data/)").tag(config=True)
    source_directory = Unicode("solutions", help="Where the instructor's notebooks live").tag(config=True)
    unsafe_no_sandbox = Bool(False, help="Run student code without a sandbox (never for "
                                         "untrusted submissions)").tag(config=True)
    notebook_timeout = Float(0.0, help="Seconds for the whole notebook (0: the course default)").tag(config=True)

    def preprocess(self, nb, resources):  # noqa: D102
        from ...paths import data_root
        from ..grade import grade_submission, read_notebook
        from ..sandbox import find_sandbox

        info = resources["nbgrader"]
        root = Path(self.course_root or ".")
        source_path = root / self.source_directory / info["assignment"] / f"{info['notebook']}.ipynb"
        source = read_notebook(source_path)
        # The course directory holds the source, the submissions, the gradebook: all invisible.
        hide = [root.resolve()] + [Path(p) for p in (resources.get("course_hide") or [])]
        sandbox = find_sandbox(hide=hide, data=data_root(), allow_none=self.unsafe_no_sandbox,
                               warn=self.log.warning)
        report, judged = grade_submission(source, nb, sandbox=sandbox, data=data_root(),
                                          name=f"{info.get('student', '')}/{info['assignment']}",
                                          notebook_timeout=self.notebook_timeout or None,
                                          log=self.log.info)
        resources["course_report"] = report
        from nbformat import from_dict

        return from_dict(judged), resources
