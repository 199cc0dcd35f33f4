"""`course publish DIR`: the student repository holds nothing secret, and works on its own.

The scan here is independent of the one `course publish` runs: every line of a solution region
or hidden-test region of solutions/*.ipynb (longer than 25 characters and not in the student
notebook), every line of an instructor-only cell, nbgrader's markers and hidden-test calls must
appear in no published file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from nbharness import ROOT, SOLUTIONS

from course.grader.preprocessors.release_extras import (
    BADGES_ID,
    BOOTSTRAP_ID,
    badge_urls,
    repository,
)
from course.grader.publish import MARKER, PublishError, find_leaks, publish

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

pytestmark = pytest.mark.grader

MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
# Lines the course library shares with solutions/: the library is public by design (Colab installs
# it, later notebooks use its loaders and training loop), so these are reviewed, not leaks. A new
# one fails this test: look at it, then add it here or take it out of the library.
LIBRARY_SHARES = {
    "torch.save(model.state_dict(), best_path)",
    '"scheduler": scheduler.state_dict() if scheduler is not None else None,',
    "device = next(model.parameters()).device",
    "for inputs, targets in loader:",
    "loss = loss_fn(model(inputs), targets)",
    "loss = loss_fn(model(x), y)",
    "batch_mean = x.mean(dim=0)",
    "if torch.cuda.is_available():",
    "self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last",
    '"model": model.state_dict(),',
    '"optimizer": optimizer.state_dict(),',
    "inputs, targets = inputs.to(device), targets.to(device)",
    'model.load_state_dict(state["model"])',
    'optimizer.load_state_dict(state["optimizer"])',
    'scheduler.load_state_dict(state["scheduler"])',
    'torch.cuda.set_rng_state_all(state["cuda_rng"])',
}


def _source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def secret_lines() -> dict[str, str]:
    secret = {}
    for path in sorted(SOLUTIONS.glob("*/*.ipynb")):
        student = ROOT / "notebooks" / path.parent.name / path.name
        public = {line.strip() for c in json.loads(student.read_text())["cells"]
                  for line in _source(c).split("\n")}
        for cell in json.loads(path.read_text())["cells"]:
            inside = cell.get("metadata", {}).get("course", {}).get("instructor_only") is True
            for line in _source(cell).split("\n"):
                text = line.strip()
                if "BEGIN SOLUTION" in text or "BEGIN HIDDEN TESTS" in text:
                    inside = True
                elif "END SOLUTION" in text or "END HIDDEN TESTS" in text:
                    inside = cell.get("metadata", {}).get("course", {}).get("instructor_only") is True
                elif inside and len(text) > 25 and text not in public:
                    secret[text] = path.parent.name
    return secret


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    out = tmp_path_factory.mktemp("student-repo")
    publish(out, ROOT, log=lambda s: None)
    return out


def test_the_tree_is_the_student_repository(published):
    top = {p.name for p in published.iterdir()}
    assert top == {"notebooks", "course", "data", "docs", "environment.yml", "postBuild", "LICENSE",
                   "README.md", "pyproject.toml", ".gitignore", MARKER}
    assert not (published / "course" / "grader").exists()
    assert (published / "course" / "checks" / "tensors.py").is_file()
    assert [p.name for p in (published / "data").iterdir()] == ["README.md"]
    for nb in (ROOT / "notebooks").glob("*/*.ipynb"):  # as released, byte for byte
        assert (published / nb.relative_to(ROOT)).read_bytes() == nb.read_bytes()
    names = {p.name for p in published.rglob("*")}
    assert not names & {"solutions", "autograder", "tests", "grader", "gradebook.db", "__pycache__"}


def test_no_solution_or_hidden_test_text_anywhere(published):
    secret = secret_lines()
    assert len(secret) > 100, "the scan found the solutions"
    shared, leaks = set(), []
    for path in sorted(p for p in published.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(published).as_posix()
        leaks += [f"{rel}: {m}" for m in MARKERS if m in text]
        if "hidden=True" in text and rel != "course/checks/_core.py":  # documents the parameter
            leaks.append(f"{rel}: hidden=True")
        if '"instructor_only": true' in text:
            leaks.append(f"{rel}: instructor-only cell")
        found = {line.strip() for line in text.split("\n")} & set(secret)
        if rel.startswith("course/") and rel.endswith(".py"):
            shared |= found
        else:
            leaks += [f"{rel}: {line!r} ({secret[line]})" for line in sorted(found)]
    assert leaks == []
    assert shared <= LIBRARY_SHARES, f"the library shares new solution lines: {shared - LIBRARY_SHARES}"
    assert find_leaks(published, ROOT) == []


def test_publish_refuses_a_tree_with_a_leak(tmp_path):
    planted = tmp_path / "notebooks" / "x.md"
    planted.parent.mkdir(parents=True)
    hidden = next(line for line in secret_lines() if "hidden=True" in line)
    planted.write_text(f"notes\n    {hidden}\n")
    assert any("hidden" in leak for leak in find_leaks(tmp_path, ROOT))


def test_badges_point_at_the_published_repository(published):
    owner, name, branch = repository(published)  # read from the published pyproject.toml
    assert (owner, name, branch) == repository(ROOT)
    for path in (published / "notebooks").glob("*/*.ipynb"):
        rel = path.relative_to(published).as_posix()
        cells = json.loads(path.read_text())["cells"]
        badges = _source(next(c for c in cells if c.get("id") == BADGES_ID))
        assert all(url in badges for url in badge_urls(published, rel))
        assert f"[{path.parent.name}]({rel})" in (published / "README.md").read_text()


def test_the_published_library_works_on_its_own(published, tmp_path):
    """Imported from the published tree (no install: PYTHONPATH), course and its checks load,
    the self-check grades a notebook, the grader is absent and the CLI says so."""
    code = textwrap.dedent(f"""
        import sys
        # The test's own environment has the source library installed in editable mode; its
        # finder would resolve course.grader from the source tree. A student's has none.
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
        import course, course.checks.tensors, course.checks.setup
        assert course.__file__.startswith({str(published)!r}), course.__file__
        try:
            import course.grader
            raise SystemExit("course.grader is importable")
        except ModuleNotFoundError:
            pass
        import IPython

        class Shell:
            user_ns = {{"check": course.checks.setup, "mean_square": lambda x: (x ** 2).mean()}}

        IPython.get_ipython = lambda: Shell
        report = course.self_check({str(published / "notebooks/00_setup/00_setup.ipynb")!r})
        assert report["score"] == report["max_score"] == 1, report
        from course.cli import main
        assert main(["autograde", "x"]) == 2
        assert main(["report"]) == 2
        print("OK")
    """)
    env = {k: v for k, v in os.environ.items() if k != "COURSE_ROOT"}
    env["PYTHONPATH"] = str(published)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("OK"), done.stderr[-3000:]
    assert "instructor command" in done.stderr and "self_check" in done.stderr
    helptext = subprocess.run(
        [sys.executable, "-c", "import sys; sys.meta_path[:] = [f for f in sys.meta_path if "
         "'editable' not in repr(f)]\nfrom course.cli import main\nmain(['--help'])"],
        cwd=tmp_path, env=env, capture_output=True, text=True).stdout
    assert "data" in helptext and "doctor" in helptext
    assert not any(c in helptext for c in ("autograde", "release", "publish", "report"))


def test_the_student_install_is_lean(published):
    source = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    student = tomllib.loads((published / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in source["dependencies"]}
    assert names == {"torch", "torchvision", "torchmetrics", "numpy", "pandas", "matplotlib", "tqdm",
                     "tensorboard", "ipython"}
    assert student["dependencies"] == source["dependencies"]
    assert set(student["optional-dependencies"]) == {"lab"}
    assert any(d.startswith("jupyterlab") for d in source["optional-dependencies"]["lab"])
    instructor = " ".join(source["optional-dependencies"]["instructor"])
    for dist in ("nbgrader", "nbformat", "nbclient", "nbconvert", "sqlalchemy"):
        assert dist in instructor
    assert "nbgrader" not in (published / "pyproject.toml").read_text()
    assert ".[lab]" in (ROOT / "postBuild").read_text()
    assert "lab" in (ROOT / "run").read_text().split('-e ".[')[1].split("]")[0].split(",")
    assert "instructor" in (ROOT / "run").read_text().split('-e ".[')[1].split("]")[0].split(",")
    nb = json.loads((published / "notebooks/00_setup/00_setup.ipynb").read_text())
    bootstrap = _source(next(c for c in nb["cells"] if c.get("id") == BOOTSTRAP_ID))
    assert '"course @ git+https://github.com/' in bootstrap and "course[" not in bootstrap


def test_republishing_keeps_git_and_refuses_strangers(published, tmp_path):
    (published / ".git").mkdir(exist_ok=True)
    (published / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (published / "stale.txt").write_text("from an older release")
    publish(published, ROOT, log=lambda s: None)
    assert (published / ".git" / "HEAD").is_file() and not (published / "stale.txt").exists()
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "thesis.tex").write_text("mine")
    with pytest.raises(PublishError, match="not empty"):
        publish(stranger, ROOT, log=lambda s: None)
    assert (stranger / "thesis.tex").read_text() == "mine"
    with pytest.raises(PublishError, match="overlaps"):
        publish(ROOT / "notebooks", ROOT, log=lambda s: None)
