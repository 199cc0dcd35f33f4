"""The course's nbgrader settings, in one place.

``autograder/nbgrader_config.py`` calls :func:`configure`, so an instructor's ``nbgrader``
commands (run inside ``autograder/``) and ``course grade`` use the same values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["CELL_TIMEOUT", "COURSE_ID", "NOTEBOOK_TIMEOUT", "configure", "load_config"]

COURSE_ID = "pytorch-nn-course"
CELL_TIMEOUT = 300  # seconds a single cell may run (training cells included)
NOTEBOOK_TIMEOUT = 1500  # seconds a whole notebook may run when graded
KERNEL_MEMORY_GB = 6.0  # address-space limit of a grading kernel
OUTPUT_LIMIT = 2_000_000  # bytes of output kept per cell when grading
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


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
    c.CourseDirectory.db_url = f"sqlite:///{root / 'autograder' / 'gradebook.db'}"
    c.Exchange.root = str(root / "autograder" / "exchange")  # nbgrader release/collect, local
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]
    c.ClearSolutions.code_stub = {"python": CODE_STUB}
    c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
    c.Execute.timeout = CELL_TIMEOUT
    # A kernel that ignores SIGINT never answers an interrupt: kill it on timeout instead.
    c.Execute.interrupt_on_timeout = False
    c.Execute.kernel_name = "python3"
    c.LimitOutput.max_lines = 200
    c.LimitOutput.max_traceback = 60
    # Feedback must never show hidden tests: strip them (and their tracebacks) before rendering.
    c.GenerateFeedback.preprocessors = [
        "nbgrader.preprocessors.GetGrades",
        "course.grading.HideHiddenTracebacks",  # must run while the markers are still there
        "nbgrader.preprocessors.ClearHiddenTests",
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
