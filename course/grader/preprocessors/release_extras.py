"""``generate_assignment`` stage: what every student notebook gets besides the exercises.

Launch badges (Colab and Binder, pointing at the student repository named in ``pyproject.toml``),
a set-up cell that only acts on Colab, and a last cell that runs ``course.self_check()``; cells
marked ``"course": {"instructor_only": true}`` (model answers) are left out. Because
it is an nbgrader stage, ``nbgrader generate_assignment``, formgrader's "Generate" button and
``course release`` write byte-identical notebooks.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

from nbformat.v4 import new_code_cell, new_markdown_cell
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

__all__ = ["BADGES_ID", "BOOTSTRAP_ID", "SELFCHECK_ID", "AddReleaseExtras", "badge_urls", "repository"]

BADGES_ID = "course-badges"
BOOTSTRAP_ID = "course-colab-setup"
SELFCHECK_ID = "course-self-check"


def repository(root: Path) -> tuple[str, str, str]:
    """``(owner, name, branch)`` of the student repository, from ``pyproject.toml``."""
    text = (Path(root) / "pyproject.toml").read_text()
    match = re.search(r'Repository\s*=\s*"https://github\.com/([^/"]+)/([^/"]+?)(?:\.git)?"', text)
    if not match:
        raise ValueError("pyproject.toml needs [project.urls] Repository = "
                         '"https://github.com/OWNER/NAME" for the notebook badges')
    branch = re.search(r'course-branch\s*=\s*"([^"]+)"', text)
    return match.group(1), match.group(2), branch.group(1) if branch else "main"


def badge_urls(root: Path, notebook: str) -> tuple[str, str]:
    """Colab and Binder links that open ``notebook`` (a path inside the student repository)."""
    owner, name, branch = repository(root)
    colab = f"https://colab.research.google.com/github/{owner}/{name}/blob/{branch}/{notebook}"
    binder = f"https://mybinder.org/v2/gh/{owner}/{name}/{branch}?labpath={quote(notebook, safe='')}"
    return colab, binder


def instructor_only(cell) -> bool:
    """Cells the instructor's source keeps to itself (model answers to the think questions)."""
    meta = cell.get("metadata", {}).get("course", {})
    return isinstance(meta, dict) and meta.get("instructor_only") is True


class AddReleaseExtras(NbGraderPreprocessor):
    """Badges and the Colab cell after the title, the self-check cell at the end; idempotent."""

    course_root = Unicode("", help="The course repository (holds pyproject.toml)").tag(config=True)

    def preprocess(self, nb, resources):  # noqa: D102
        root = Path(self.course_root or ".")
        info = resources.get("nbgrader", {})
        relpath = f"notebooks/{info.get('assignment', '')}/{info.get('notebook', '')}.ipynb"
        owner, name, branch = repository(root)
        colab, binder = badge_urls(root, relpath)
        badges = new_markdown_cell(
            f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab}) "
            f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder})", id=BADGES_ID)
        bootstrap = new_code_cell(
            "# On Colab only: install the course library and fetch the data sets (does nothing elsewhere).\n"
            "import sys\n"
            "if \"google.colab\" in sys.modules:\n"
            f"    !pip -q install \"course @ git+https://github.com/{owner}/{name}@{branch}\"\n"
            "    !course data", id=BOOTSTRAP_ID)
        selfcheck = new_code_cell(
            "# Self-check: save the notebook (Ctrl-S), then run this cell: every visible test runs on\n"
            "# the answers in this kernel and a table says what to fix (the grader adds hidden tests).\n"
            "import course\n"
            "course.self_check();", id=SELFCHECK_ID)
        ours = {BADGES_ID, BOOTSTRAP_ID, SELFCHECK_ID}
        nb.cells = [c for c in nb.cells if c.get("id") not in ours and not instructor_only(c)]
        title = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
        nb.cells[title:title] = [badges, bootstrap]
        nb.cells.append(selfcheck)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        return nb, resources
