"""What ``course release`` adds after nbgrader: launch badges, a Colab bootstrap cell and a
self-check cell, so every student notebook opens anywhere and checks itself.

The repository address lives in one place, ``[project.urls] Repository`` in ``pyproject.toml``;
the badges are generated from it.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

__all__ = ["badge_urls", "postprocess_release", "repository"]

BADGES_ID = "course-badges"
BOOTSTRAP_ID = "course-colab-setup"
SELFCHECK_ID = "course-self-check"


def repository(root: Path) -> tuple[str, str, str]:
    """``(owner, name, branch)`` of the course's GitHub repository, from pyproject.toml."""
    text = (root / "pyproject.toml").read_text()
    match = re.search(r'Repository\s*=\s*"https://github\.com/([^/"]+)/([^/"]+?)(?:\.git)?"', text)
    if not match:
        raise ValueError("pyproject.toml needs [project.urls] Repository = "
                         '"https://github.com/OWNER/NAME" for the notebook badges')
    branch = re.search(r'course-branch\s*=\s*"([^"]+)"', text)
    return match.group(1), match.group(2), branch.group(1) if branch else "main"


def badge_urls(root: Path, notebook: str) -> tuple[str, str]:
    """Colab and Binder links that open ``notebook`` (a path inside the repository)."""
    owner, name, branch = repository(root)
    colab = f"https://colab.research.google.com/github/{owner}/{name}/blob/{branch}/{notebook}"
    binder = f"https://mybinder.org/v2/gh/{owner}/{name}/{branch}?labpath={quote(notebook, safe='')}"
    return colab, binder


def _cells(root: Path, relpath: str) -> tuple:
    from nbformat.v4 import new_code_cell, new_markdown_cell

    owner, name, branch = repository(root)
    colab, binder = badge_urls(root, relpath)
    badges = new_markdown_cell(
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab}) "
        f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder})")
    badges.id = BADGES_ID
    bootstrap = new_code_cell(
        "# On Colab only: install the course library and fetch the data sets (does nothing elsewhere).\n"
        "import sys\n"
        "if \"google.colab\" in sys.modules:\n"
        f"    !pip -q install \"course @ git+https://github.com/{owner}/{name}@{branch}\"\n"
        "    !course data")
    bootstrap.id = BOOTSTRAP_ID
    selfcheck = new_code_cell(
        "# Self-check: save the notebook first (Ctrl-S), then run this cell. It grades the saved\n"
        "# notebook in a fresh kernel, as the grader will (without the hidden tests).\n"
        "import course\n"
        "course.self_check();")
    selfcheck.id = SELFCHECK_ID
    return badges, bootstrap, selfcheck


def postprocess_release(release_dir: Path, assignments: list[str], root: Path) -> None:
    """Add badges, the Colab cell and the self-check cell; clear outputs. Idempotent."""
    import nbformat

    for name in assignments:
        for path in sorted((release_dir / name).glob("*.ipynb")):
            nb = nbformat.read(str(path), as_version=4)
            relpath = f"notebooks/{name}/{path.name}"
            badges, bootstrap, selfcheck = _cells(root, relpath)
            ours = {BADGES_ID, BOOTSTRAP_ID, SELFCHECK_ID}
            nb.cells = [c for c in nb.cells if c.get("id") not in ours]
            title = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
            nb.cells[title:title] = [badges, bootstrap]
            nb.cells.append(selfcheck)
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs, cell.execution_count = [], None
            nbformat.write(nb, str(path))
