"""``course publish DIR``: the student repository, made from this (private) source repository.

nbgrader's docs recommend two repositories: the instructor's, with ``solutions/``, hidden tests,
the grader and the gradebook, kept private; and a public one that students clone, open on Colab
or Binder, and that the notebooks' badges point at (``[project.urls] Repository`` in
``pyproject.toml``). This writes the public one: the released ``notebooks/``, the ``course``
library without ``course/grader/``, the data scripts, ``environment.yml``/``postBuild`` for
Binder, a student README and a ``pyproject.toml`` with the lean student install. It never copies
``solutions/``, ``autograder/``, ``tests/`` or tooling, and refuses to finish when the result
holds solution or hidden-test text (:func:`find_leaks`).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

__all__ = ["MARKER", "PublishError", "find_leaks", "library_overlap", "publish"]

MARKER = ".course-published"  # in DIR: a folder ``course publish`` may rewrite
KEEP = {".git", MARKER}  # what a re-publish leaves in DIR (the student repository's history)
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "BEGIN HIDDEN TESTS",
                    "END HIDDEN TESTS")
# A hidden test calls a check with ``hidden=True``; the library only documents the parameter.
HIDDEN_CALL = re.compile(r"[(,]\s*hidden\s*=\s*True")
INSTRUCTOR_ONLY = re.compile(r'"instructor_only"\s*:\s*true')
MIN_LINE = 25  # solution lines shorter than this (``return x``) are too common to be a leak


class PublishError(RuntimeError):
    """The student repository cannot be written; the message says why."""


def _toml(root: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads((root / "pyproject.toml").read_text())


def _quote(items: list[str], indent: str = "    ") -> str:
    return "".join(f"{indent}{json.dumps(i)},\n" for i in items)


def student_pyproject(root: Path) -> str:
    """The student library's ``pyproject.toml``: the core dependencies and the ``lab`` extra."""
    meta = _toml(root)["project"]
    extras = meta.get("optional-dependencies", {})
    urls = "".join(f"{k} = {json.dumps(v)}\n" for k, v in meta.get("urls", {}).items())
    branch = re.search(r'^course-branch\s*=.*$', (root / "pyproject.toml").read_text(), re.M)
    return (
        "# The student library of the course, written by `course publish` (do not edit here).\n"
        '[build-system]\nrequires = ["setuptools>=69"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = {json.dumps(meta["name"])}\nversion = {json.dumps(meta["version"])}\n'
        f'description = {json.dumps(meta.get("description", ""))}\nreadme = "README.md"\n'
        f'requires-python = {json.dumps(meta.get("requires-python", ">=3.10"))}\n'
        f'license = {json.dumps(meta.get("license", "MIT"))}\n'
        f'dependencies = [\n{_quote(meta["dependencies"])}]\n\n'
        f"[project.urls]\n{urls}{branch.group(0) + chr(10) if branch else ''}\n"
        f'[project.optional-dependencies]\nlab = [\n{_quote(extras.get("lab", []))}]\n\n'
        '[project.scripts]\ncourse = "course.cli:main"\n\n'
        '[tool.setuptools.packages.find]\ninclude = ["course*"]\n')


def _notebooks_section(root: Path) -> str:
    """The table of notebooks from the source README (student-facing), if it has one."""
    text = (root / "README.md").read_text() if (root / "README.md").is_file() else ""
    match = re.search(r"^## The notebooks\n(.*?)(?=^## )", text, re.M | re.S)
    return match.group(1).strip() + "\n" if match else ""


def student_readme(root: Path, assignments: list[str]) -> str:
    """README of the student repository: how to open the notebooks and check the work."""
    from .preprocessors.release_extras import badge_urls, repository

    owner, name, branch = repository(root)
    description = _toml(root)["project"].get("description", "")
    rows = []
    for a in assignments:
        rel = f"notebooks/{a}/{a}.ipynb"
        colab, binder = badge_urls(root, rel)
        rows.append(f"| [{a}]({rel}) | [![Open In Colab](https://colab.research.google.com/assets/"
                    f"colab-badge.svg)]({colab}) | [![Binder](https://mybinder.org/badge_logo.svg)]"
                    f"({binder}) |")
    table = _notebooks_section(root)
    return f"""# {description or name}

[![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/{owner}/{name}/{branch}?labpath=notebooks)

Fourteen JupyterLab notebooks, from tensors to CNNs on MNIST and FashionMNIST. You write the code
in the cells marked `# YOUR CODE HERE`; the test cell below each exercise compares your answer
with PyTorch and tells you which idea you missed.

{table}
## Open a notebook

| notebook | Colab | Binder |
|---|---|---|
{chr(10).join(rows)}

* **Colab**: click a badge. The notebook's first code cell installs this library and fetches the
  data sets (it does nothing outside Colab). Save a copy to your Drive to keep your work.
* **Binder**: click a badge; everything is installed already.
* **On your machine** (Python ≥ 3.10):

  ```bash
  git clone https://github.com/{owner}/{name}.git && cd {name}
  python -m venv .venv && . .venv/bin/activate     # Windows: .venv\\Scripts\\activate
  pip install -e ".[lab]"                            # the library, PyTorch and JupyterLab
  course data                                        # MNIST and FashionMNIST into data/
  jupyter lab notebooks/00_setup/00_setup.ipynb
  ```

  With conda: `conda env create -f environment.yml`, then `pip install -e ".[lab]"`.
  `course doctor` shows versions, the device (`cuda`, `mps` or `cpu`) and the data status.

## Check your work

Run each exercise's test cell after its answer cell. Before you hand a notebook in, save it
(Ctrl-S) and run its **last cell**, `course.self_check()`: it runs every visible test on the
answers your kernel holds and shows a table of what to fix. The grader runs the same checks and
some hidden ones, so a clean self-check means you are most of the way there.
Restart the kernel and run all cells once at the end: the grader starts from a fresh kernel.

## Data

`course data` downloads MNIST and FashionMNIST through torchvision and checks every file;
offline, `course data --from DIR` copies them from a folder holding the original files. See
`data/README.md`. MNIST by Yann LeCun and Corinna Cortes (CC BY-SA 3.0); Fashion-MNIST by Zalando
Research (MIT).

## Licence

Code and notebooks: MIT (see `LICENSE`).
"""


GITIGNORE = """.venv/
__pycache__/
*.pyc
.ipynb_checkpoints/
*.egg-info/
runs/
checkpoints/
# data sets are fetched by `course data`, never committed
data/*
!data/README.md
"""


def _solution_lines(solutions: Path, notebooks: Path) -> dict[str, str]:
    """Text that must never reach a student: solution lines (longer than ``MIN_LINE`` and absent
    from the student copy) and hidden tests, each with where it comes from."""
    secret: dict[str, str] = {}
    for path in sorted(solutions.glob("*/*.ipynb")):
        nb = json.loads(path.read_text())
        released = notebooks / path.parent.name / path.name
        public = set()
        if released.is_file():
            for cell in json.loads(released.read_text())["cells"]:
                src = cell.get("source", "")
                public.update(ln.strip() for ln in ("".join(src) if isinstance(src, list) else src).split("\n"))
        for cell in nb["cells"]:
            src = cell.get("source", "")
            lines = ("".join(src) if isinstance(src, list) else src).split("\n")
            region = None
            for line in lines:
                text = line.strip()
                if "BEGIN SOLUTION" in text or "BEGIN HIDDEN TESTS" in text:
                    region = "solution" if "SOLUTION" in text else "hidden test"
                elif "END SOLUTION" in text or "END HIDDEN TESTS" in text:
                    region = None
                elif region and len(text) > MIN_LINE and text not in public:
                    secret.setdefault(text, f"{region} line of {path.parent.name}")
            if cell.get("metadata", {}).get("course", {}).get("instructor_only") is True:
                for line in lines:
                    if len(line.strip()) > MIN_LINE and line.strip() not in public:
                        secret.setdefault(line.strip(), f"instructor-only cell of {path.parent.name}")
    return secret


def _scan(tree: Path, root: Path) -> tuple[list[str], list[str]]:
    secret = _solution_lines(root / "solutions", root / "notebooks")
    leaks, shared = [], []
    for path in sorted(p for p in Path(tree).rglob("*") if p.is_file() and ".git" not in p.parts):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        rel = path.relative_to(tree).as_posix()
        leaks += [f"{rel}: {m!r}" for m in SOLUTION_MARKERS if m in text]
        if HIDDEN_CALL.search(text) or (path.suffix != ".py" and "hidden=True" in text):
            leaks.append(f"{rel}: a hidden test (hidden=True)")
        if INSTRUCTOR_ONLY.search(text):
            leaks.append(f"{rel}: an instructor_only cell")
        found = {line.strip() for line in text.split("\n")} & set(secret)
        lines = [f"{rel}: {secret[s]}: {s[:80]!r}" for s in sorted(found)]
        library = rel.startswith("course/") and path.suffix == ".py"
        (shared if library else leaks).extend(lines)
    return leaks, shared


def find_leaks(tree: Path, root: Path) -> list[str]:
    """Every file of ``tree`` that holds solution or hidden-test text of ``root``; empty if none.

    Solution markers, hidden-test calls and instructor-only cells count anywhere; solution lines
    count everywhere except the ``course`` library's code (see :func:`library_overlap`).
    """
    return _scan(tree, root)[0]


def library_overlap(tree: Path, root: Path) -> list[str]:
    """Solution lines that the ``course`` library's code also holds. The library is public by
    design (Colab installs it; later notebooks use its loaders and training loop), so these are
    shared idioms or exercises the library solves for later notebooks: for review, not a leak."""
    return _scan(tree, root)[1]


def _prepare(out: Path, root: Path) -> None:
    if out == root or out in root.parents or root in out.parents:
        raise PublishError(f"{out} overlaps the source repository {root}; publish outside it")
    if out.exists() and not out.is_dir():
        raise PublishError(f"{out} is not a folder")
    if out.is_dir() and any(p.name not in KEEP for p in out.iterdir()):
        if not (out / MARKER).is_file():
            raise PublishError(f"{out} is not empty and was not written by `course publish`; "
                               "give an empty folder or a clone of the student repository")
        for p in out.iterdir():
            if p.name not in KEEP:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def publish(out: Path, root: Path | None = None, log=print) -> list[str]:
    """Write the student repository into ``out``; return the assignments published."""
    from ..paths import repo_root
    from .preprocessors.release_extras import BADGES_ID, badge_urls

    root = Path(root or repo_root() or "").resolve()
    if not (root / "notebooks").is_dir() or not (root / "course").is_dir():
        raise PublishError("`course publish` needs the course's source repository (notebooks/, course/)")
    out = Path(out).resolve()
    assignments = sorted(p.name for p in (root / "notebooks").iterdir()
                         if (p / f"{p.name}.ipynb").is_file())
    for a in assignments:  # badges must point at the repository being published
        rel = f"notebooks/{a}/{a}.ipynb"
        cells = json.loads((root / rel).read_text())["cells"]
        badge = "".join(next((c["source"] for c in cells if c.get("id") == BADGES_ID), ""))
        if badge_urls(root, rel)[0] not in badge:
            raise PublishError(f"{rel} has no badges for the repository in pyproject.toml; "
                               "run `course release` first")
    _prepare(out, root)
    for a in assignments:
        shutil.copytree(root / "notebooks" / a, out / "notebooks" / a, ignore=SKIP)
    shutil.copytree(root / "course", out / "course",
                    ignore=lambda d, names: SKIP(d, names) | ({"grader"} if Path(d) == root / "course" else set()))
    (out / "data").mkdir()
    shutil.copy2(root / "data" / "README.md", out / "data" / "README.md")
    for name in ("environment.yml", "postBuild", "LICENSE"):
        shutil.copy2(root / name, out / name)
    if (root / "docs" / "glossary.md").is_file():
        (out / "docs").mkdir()
        shutil.copy2(root / "docs" / "glossary.md", out / "docs" / "glossary.md")
    (out / "pyproject.toml").write_text(student_pyproject(root))
    (out / "README.md").write_text(student_readme(root, assignments))
    (out / ".gitignore").write_text(GITIGNORE)
    leaks, shared = _scan(out, root)
    if leaks:
        for p in out.iterdir():  # never leave a tree that someone might push
            if p.name not in KEEP:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        raise PublishError("the student repository would hold secret text (removed again):\n  "
                           + "\n  ".join(leaks[:20]))
    (out / MARKER).write_text(json.dumps({"written_by": "course publish",
                                          "assignments": assignments}, indent=2) + "\n")
    log(f"published {len(assignments)} notebooks, the course library and the student README "
        f"to {out}")
    if shared:
        log(f"note: the course library (public by design) shares {len(shared)} line(s) with "
            "solutions/, e.g. " + "; ".join(shared[:3]))
    return assignments
