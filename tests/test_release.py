"""Student copies: badges that open the notebook itself, a Colab-only bootstrap, a self-check."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from nbharness import ROOT

from course.grader.preprocessors.release_extras import (
    BADGES_ID,
    BOOTSTRAP_ID,
    SELFCHECK_ID,
    repository,
)

STUDENT = sorted((ROOT / "notebooks").glob("*/*.ipynb"))


@pytest.mark.parametrize("path", STUDENT, ids=lambda p: p.parent.name)
def test_badges_point_at_this_notebook(path):
    nb = nbformat.read(str(path), as_version=4)
    owner, name, branch = repository(ROOT)
    rel = path.relative_to(ROOT).as_posix()
    badges = next(c for c in nb.cells if c.get("id") == BADGES_ID)
    assert nb.cells.index(badges) <= 1
    assert f"colab.research.google.com/github/{owner}/{name}/blob/{branch}/{rel})" in badges.source
    assert f"mybinder.org/v2/gh/{owner}/{name}/{branch}?labpath=" in badges.source
    assert f"labpath={rel})" in unquote(badges.source)


@pytest.mark.parametrize("path", STUDENT, ids=lambda p: p.parent.name)
def test_bootstrap_does_nothing_outside_colab(path):
    nb = nbformat.read(str(path), as_version=4)
    cell = next(c for c in nb.cells if c.get("id") == BOOTSTRAP_ID)
    python = TransformerManager().transform_cell(cell.source)  # `!pip` becomes get_ipython().system
    calls = []

    class Shell:
        def system(self, cmd):
            calls.append(cmd)

    exec(compile(python, "<bootstrap>", "exec"), {"get_ipython": Shell})  # noqa: S102
    assert calls == []
    assert "git+https://github.com/" in cell.source and "course data" in cell.source


@pytest.mark.parametrize("path", STUDENT, ids=lambda p: p.parent.name)
def test_self_check_is_the_last_cell(path):
    nb = json.loads(path.read_text())
    assert nb["cells"][-1]["id"] == SELFCHECK_ID
    assert "course.self_check()" in "".join(nb["cells"][-1]["source"])


def test_self_check_reports_a_table(tmp_path, monkeypatch):
    """In the student's kernel: the notebook's visible tests, on the answers the kernel holds."""
    import course
    from course.checks import setup as check

    src = ROOT / "notebooks" / "00_setup" / "00_setup.ipynb"
    path = tmp_path / "00_setup.ipynb"
    path.write_text(src.read_text())

    class Shell:
        user_ns = {"check": check, "mean_square": lambda x: (x ** 2).sum()}

    monkeypatch.setattr("IPython.get_ipython", lambda: Shell)
    report = course.self_check(str(path))
    assert report["max_score"] == 1 and report["score"] == 0
    assert "MEAN of the squared" in report["tests"][0]["message"]
    Shell.user_ns["mean_square"] = lambda x: (x ** 2).mean()
    assert course.self_check(str(path))["score"] == 1


def test_self_check_is_skipped_inside_grading(monkeypatch):
    import course

    monkeypatch.setenv("COURSE_GRADING", "1")
    assert course.self_check() is None


def test_self_check_without_a_path_says_what_to_do(monkeypatch):
    import course

    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    with pytest.raises(FileNotFoundError, match="pass its path"):
        course.self_check()


def test_release_is_fresh(tmp_path):
    """notebooks/ is exactly what `course release` generates from solutions/ (regenerate if not)."""
    from course.grader.release import release

    release(out_dir=tmp_path / "release", db_url=f"sqlite:///{tmp_path / 'gb.db'}", quiet=True)
    stale = []
    names = sorted(p.name for p in (ROOT / "solutions").iterdir() if any(p.glob("*.ipynb")))
    for assignment in names:
        for fresh in (tmp_path / "release" / assignment).glob("*"):
            committed = ROOT / "notebooks" / assignment / fresh.name
            if not committed.is_file() or _canon(committed) != _canon(fresh):
                stale.append(str(committed.relative_to(ROOT)))
    assert not stale, f"run `course release` and commit: stale or missing {stale}"
    extra = {p.parent.name for p in (ROOT / "notebooks").glob("*/*.ipynb")} - set(names)
    assert not extra, f"notebooks without a source in solutions/: {extra}"


def _canon(path):
    if path.suffix != ".ipynb":
        return path.read_bytes()
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        cell.pop("id", None)
    return json.dumps(nb, sort_keys=True)


def test_nbgrader_generate_assignment_writes_the_same_bytes_as_course_release(tmp_path):
    """Release extras are nbgrader stages: plain `nbgrader generate_assignment` (what formgrader's
    Generate button runs) and `course release` produce byte-identical student notebooks."""
    import os
    import shutil
    import subprocess
    import sys

    from course.grader.release import release

    course_dir = tmp_path / "course"
    shutil.copytree(ROOT / "solutions" / "00_setup", course_dir / "solutions" / "00_setup")
    shutil.copy(ROOT / "pyproject.toml", course_dir / "pyproject.toml")
    (course_dir / "autograder").mkdir()
    (course_dir / "autograder" / "nbgrader_config.py").write_text(
        "from pathlib import Path\nfrom course.grader.config import configure\n"
        "configure(get_config(), Path(__file__).resolve().parent.parent)\n")
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + ":" + os.environ["PATH"]}
    done = subprocess.run([f"{bindir}/nbgrader", "generate_assignment", "00_setup", "--force"],
                          cwd=course_dir / "autograder", env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    release(["00_setup"], out_dir=tmp_path / "ours", db_url=f"sqlite:///{tmp_path / 'g.db'}", quiet=True)
    theirs = (course_dir / "notebooks" / "00_setup" / "00_setup.ipynb").read_bytes()
    ours = (tmp_path / "ours" / "00_setup" / "00_setup.ipynb").read_bytes()
    assert theirs == ours
