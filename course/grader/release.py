"""``course release``: regenerate ``notebooks/`` from ``solutions/`` through nbgrader.

It is ``nbgrader generate_assignment`` with the course's configuration (release extras included),
written to a scratch folder first so a failed release leaves the previous student notebooks.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["release"]


def _bin_on_path() -> None:
    """nbgrader runs helper programs (alembic) by name: find them beside this interpreter."""
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def release(assignments: list[str] | None = None, out_dir: Path | None = None,
            db_url: str | None = None, quiet: bool = False) -> list[str]:
    """Regenerate student notebooks from ``solutions/`` with nbgrader; return the assignments.

    Everything is generated in a scratch folder first: a failed release leaves the previous
    student notebooks in place.
    """
    import shutil
    import tempfile

    from ..paths import repo_root
    from . import config as grading_config

    root = repo_root()
    if root is None:
        raise SystemExit("error: `course release` needs a clone of the course repository")
    cfg = grading_config.load_config(root)
    target = Path(out_dir).resolve() if out_dir is not None else (
        root / cfg.CourseDirectory.release_directory)
    if db_url is not None:
        cfg.CourseDirectory.db_url = db_url
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    _bin_on_path()
    names = assignments or sorted(p.name for p in (root / "solutions").iterdir()
                                  if p.is_dir() and any(p.glob("*.ipynb")))
    with tempfile.TemporaryDirectory(prefix="course-release-") as scratch:
        cfg.CourseDirectory.release_directory = scratch
        api = NbGraderAPI(CourseDirectory(config=cfg), config=cfg)
        for name in names:
            result = api.generate_assignment(name, force=True, create=True)
            if not result["success"]:
                raise SystemExit(f"error: releasing {name} failed (notebooks/ left as it was):\n"
                                 f"{result.get('log', '')[-4000:]}")
        for name in names:
            shutil.rmtree(target / name, ignore_errors=True)
            shutil.copytree(Path(scratch) / name, target / name)
            if not quiet:
                print(f"released {name}")
    return names


