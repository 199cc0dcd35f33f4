"""Where the course keeps things: the repository, the data folder, solutions and notebooks."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["autograder_dir", "data_root", "notebooks_dir", "repo_root", "solutions_dir"]


def repo_root() -> Path | None:
    """The course repository this package was installed from, or None for a plain install."""
    env = os.environ.get("COURSE_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file() and (here / "autograder").is_dir():
        return here
    return None


def data_root() -> Path:
    """Folder holding ``MNIST/raw`` and ``FashionMNIST/raw``.

    ``COURSE_DATA_DIR`` wins; otherwise the repository's ``data/`` (the course's, or a student
    repository's); otherwise ``./data``.
    """
    env = os.environ.get("COURSE_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    root = repo_root()
    if root is not None:
        return root / "data"
    here = Path(__file__).resolve().parent.parent  # a student repository (made by `course publish`)
    if (here / "pyproject.toml").is_file() and (here / "data" / "README.md").is_file():
        return here / "data"
    return Path.cwd() / "data"


def _under_root(name: str) -> Path:
    root = repo_root()
    if root is None:
        raise FileNotFoundError(
            f"the course's {name}/ folder is only available in a clone of the course repository; "
            "run this command from a clone, or set COURSE_ROOT to one"
        )
    return root / name


def solutions_dir() -> Path:
    return _under_root("solutions")


def notebooks_dir() -> Path:
    return _under_root("notebooks")


def autograder_dir() -> Path:
    return _under_root("autograder")
