"""``course grade PATH``: one notebook through the same pipeline as class grading.

Against the instructor's source (found in ``solutions/`` of the clone, or ``--source``) the
hidden tests run and a sandbox is required; a student's copy without the source is checked
against itself, visible tests only, and may run unsandboxed on a laptop without bubblewrap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .grade import GradeReport, grade_submission, read_notebook

__all__ = ["find_source", "grade_path", "render_feedback"]


def find_source(path: Path, root: Path | None) -> Path | None:
    """The instructor's version of ``path`` in ``solutions/``, when this clone has it."""
    if root is None:
        return None
    for candidate in (root / "solutions" / path.parent.name / path.name,
                      root / "solutions" / path.stem / f"{path.stem}.ipynb"):
        if candidate.is_file():
            return candidate
    return None


def render_feedback(judged: dict, target: Path) -> None:
    """Feedback HTML from a judged notebook: score table on top, no hidden tests."""
    import copy

    from nbconvert import HTMLExporter
    from nbformat import from_dict

    from .files import write_atomic
    from .preprocessors.feedback import HiddenTestsOut, ScoreTable

    nb = from_dict(copy.deepcopy(judged))
    for stage in (HiddenTestsOut(), ScoreTable()):
        nb, _ = stage.preprocess(nb, {})
    html, _ = HTMLExporter().from_notebook_node(nb)
    write_atomic(target, html)


def grade_path(path: str | Path, *, source: Path | None = None, visible_only: bool = False,
               feedback: Path | None = None, save_judged: Path | None = None,
               unsafe_no_sandbox: bool = False,
               log: Callable[[str], None] = lambda s: None) -> GradeReport:
    from ..paths import data_root, repo_root
    from .sandbox import find_sandbox

    path = Path(path)
    student = read_notebook(path)
    source = source if source is not None else find_source(path.resolve(), repo_root())
    instructor = source is not None and not visible_only
    src = read_notebook(source) if source is not None else student
    sandbox = find_sandbox(data=data_root(), allow_none=unsafe_no_sandbox or not instructor, warn=log)
    report, judged = grade_submission(src, student, sandbox=sandbox, hidden=not visible_only,
                                      name=str(path), data=data_root(), log=log)
    report.assignment = (source or path).parent.name
    if feedback is not None:
        render_feedback(judged, Path(feedback))
    if save_judged is not None:
        import json

        Path(save_judged).write_text(json.dumps(judged, indent=1))
    return report
