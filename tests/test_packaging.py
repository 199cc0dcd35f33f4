"""Packaging: light imports, one dependency list, and the entry points that README promises."""

import re
import subprocess
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from nbharness import ROOT


def _names(requirements):
    return {re.split(r"[<>=!~ ]", r.strip(), maxsplit=1)[0].lower() for r in requirements}


def test_environment_yml_matches_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = (ROOT / "environment.yml").read_text()
    pip_lines = [line.strip()[2:] for line in env.splitlines()
                 if line.strip().startswith("- ") and not line.strip().startswith("- --")
                 and "=" in line and not line.strip().startswith("- python")]
    pinned = {line for line in pip_lines}
    assert pinned == set(deps), f"environment.yml and pyproject.toml disagree: {pinned ^ set(deps)}"


def test_import_course_is_light():
    code = ("import sys, course, course.checks, course.device\n"
            "heavy = [m for m in ('torchvision', 'matplotlib', 'torchmetrics', 'nbgrader', 'pandas',"
            " 'course.grader', 'IPython')"
            " if m in sys.modules]\nprint(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"import course pulled in {out.stdout.strip()}"


def test_readme_commands_exist():
    readme = (ROOT / "README.md").read_text()
    assert "./run lab" in readme and "./run test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./run test" in ci


def test_course_command_help():
    out = subprocess.run([sys.executable, "-m", "course.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for command in ("data", "release", "grade", "doctor"):
        assert command in out
