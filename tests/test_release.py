"""Student copies: badges that open the notebook itself, a Colab-only bootstrap, a self-check."""

from __future__ import annotations

import json
from urllib.parse import unquote

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from nbharness import ROOT

from course.grader.preprocessors.release_extras import BADGES_ID, BOOTSTRAP_ID, SELFCHECK_ID, repository

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


@pytest.mark.notebook
def test_self_check_reports_a_table(tmp_path, capsys):
    import course

    src = ROOT / "notebooks" / "00_setup" / "00_setup.ipynb"
    path = tmp_path / "00_setup.ipynb"
    path.write_text(src.read_text())
    report = course.self_check(str(path))
    assert report["max_score"] == 1 and report["score"] == 0
    assert "not implemented yet" in report["tests"][0]["message"]
    assert "fresh kernel" in capsys.readouterr().out


def test_self_check_is_skipped_inside_grading(monkeypatch, capsys):
    import course

    monkeypatch.setenv("COURSE_GRADING", "1")
    assert course.self_check() is None
    assert "skipped" in capsys.readouterr().out


def test_self_check_without_a_path_says_what_to_do(monkeypatch):
    import course

    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    with pytest.raises(FileNotFoundError, match="pass its path"):
        course.self_check()
