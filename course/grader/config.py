"""The course's grading settings, in one place: names, limits and the nbgrader pipeline.

``autograder/nbgrader_config.py`` calls :func:`configure`, so an instructor's ``nbgrader``
commands (run inside ``autograder/``), formgrader and the ``course`` commands run the same stages
with the same values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["CELL_TIMEOUT", "COURSE_ID", "NOTEBOOK_TIMEOUT", "configure", "gradebook_url",
           "load_config"]

COURSE_ID = "pytorch-nn-course"
CELL_TIMEOUT = 300  # seconds one check scenario may run (training scenarios included)
ANSWER_TIMEOUT = 120  # seconds one answer cell may run (answers define things)
NOTEBOOK_TIMEOUT = 1500  # seconds the runner may spend on a whole notebook
KERNEL_MEMORY_GB = 6.0  # data-segment limit of a runner (RLIMIT_DATA; CUDA's reservations are not data)
TRANSCRIPT_LIMIT = 1 << 30  # bytes a runner may write in all (RLIMIT_FSIZE, and what the judge reads)
RESTARTS = 4  # times a runner is restarted after a crash or hang, skipping the culprit
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


def gradebook_url(root: Path) -> str:
    """``COURSE_DB_URL`` when set (a shared PostgreSQL gradebook for many graders, e.g.
    ``postgresql+psycopg://grader@db.example.edu/course``; keep the password in ``PGPASSWORD`` or
    ``~/.pgpass``), else SQLite in ``autograder/gradebook.db``."""
    url = os.environ.get("COURSE_DB_URL", "").strip()
    if url.startswith(("postgresql://", "postgres://")):  # the driver the course installs
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url or f"sqlite:///{Path(root) / 'autograder' / 'gradebook.db'}"


def configure(c: Any, root: Path) -> None:
    """Fill an nbgrader ``Config`` object for the course repository at ``root``."""
    root = Path(root).resolve()
    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.source_directory = "solutions"
    c.CourseDirectory.release_directory = "notebooks"
    c.CourseDirectory.submitted_directory = "autograder/submitted"
    c.CourseDirectory.autograded_directory = "autograder/autograded"
    c.CourseDirectory.feedback_directory = "autograder/feedback"
    c.CourseDirectory.db_url = gradebook_url(root)
    c.Exchange.root = str(root / "autograder" / "exchange")  # nbgrader release/collect, local
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]
    c.ClearSolutions.code_stub = {"python": CODE_STUB}
    c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
    c.LimitOutput.max_lines = 200
    c.LimitOutput.max_traceback = 60
    stages = "course.grader.preprocessors"
    # Release: nbgrader's own stages, then the course's extras (badges, Colab cell, self-check).
    c.GenerateAssignment.preprocessors = [
        f"nbgrader.preprocessors.{name}" for name in (
            "IncludeHeaderFooter", "InstantiateTests", "LockCells", "ClearSolutions", "ClearOutput",
            "CheckCellMetadata", "ComputeChecksums", "SaveCells", "ClearHiddenTests",
            "ClearMarkScheme", "ComputeChecksums", "CheckCellMetadata")
    ] + [f"{stages}.release_extras.AddReleaseExtras"]
    c.AddReleaseExtras.course_root = str(root)
    # Autograde: no kernel runs the submission. The judged run rebuilds it from the source, runs
    # the student's code in the sandbox and judges; nbgrader then records the grades as usual.
    c.Autograde.sanitize_preprocessors = []
    c.Autograde.autograde_preprocessors = [
        f"{stages}.judged_run.JudgedRun",
        "nbgrader.preprocessors.LimitOutput",
        "nbgrader.preprocessors.SaveAutoGrades",
        "nbgrader.preprocessors.AssignLatePenalties",
        f"{stages}.judge_comments.SaveJudgeComments",
        "nbgrader.preprocessors.CheckCellMetadata",
    ]
    c.JudgedRun.course_root = str(root)
    # Feedback: the judge's messages on top, hidden tests removed from test cells only.
    c.GenerateFeedback.preprocessors = [
        "nbgrader.preprocessors.GetGrades",
        f"{stages}.feedback.HiddenTestsOut",
        f"{stages}.feedback.ScoreTable",
        "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    ]


def load_config(root: Path | None) -> Any:
    """The nbgrader config in force: ``autograder/nbgrader_config.py`` or the defaults above."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    if root is not None and (Path(root) / "autograder" / "nbgrader_config.py").is_file():
        loader = PyFileConfigLoader("nbgrader_config.py", path=str(Path(root) / "autograder"))
        return loader.load_config()
    cfg = Config()
    configure(cfg, root or Path.cwd())
    return cfg
