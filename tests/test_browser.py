"""A real browser: JupyterLab serves a student notebook, headless Chromium runs it and sees the
self-check report; nbgrader's formgrader page opens; over a small graded class, formgrader shows
every student's autograded score and a student's feedback page opens.

Needs Debian's ``chromium`` (``/usr/bin/chromium``) and Playwright's Python package; CI installs
both (``.ci/run``) and sets COURSE_REQUIRE_BROWSER=1 so that a missing browser fails the run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbharness import ROOT, SOLUTIONS
from submissions import submission

pytestmark = pytest.mark.notebook

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    if os.environ.get("COURSE_REQUIRE_BROWSER"):
        raise RuntimeError("COURSE_REQUIRE_BROWSER is set but chromium is not installed")
    pytest.skip("headless Chromium is not installed (apt-get install chromium)",
                allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api")

TOKEN = "course-browser-test"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab():
    """JupyterLab on localhost over the course, with a solved copy of 00_setup to run.

    The server's root is the repository (formgrader needs the course inside it) and its working
    folder ``autograder/`` (where nbgrader finds its configuration).
    """
    scratch = Path(tempfile.mkdtemp(prefix="browser-", dir=_scratch_parent()))
    nb = nbformat.read(str(ROOT / "notebooks" / "00_setup" / "00_setup.ipynb"), as_version=4)
    sol = nbformat.read(str(SOLUTIONS / "00_setup" / "00_setup.ipynb"), as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in sol.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    nbformat.write(nb, str(scratch / "00_setup.ipynb"))
    server, base = _serve(ROOT, ROOT / "autograder", scratch)
    yield base, scratch.relative_to(ROOT).as_posix() + "/00_setup.ipynb"
    os.killpg(server.pid, 9)
    shutil.rmtree(scratch, ignore_errors=True)


def _serve(root: Path, cwd: Path, scratch: Path) -> tuple[subprocess.Popen, str]:
    """JupyterLab on localhost with ``root`` as its root and ``cwd`` as its working folder (where
    nbgrader finds its configuration); the server and its base URL."""
    port = _free_port()
    env = {**os.environ, "COURSE_DEVICE": "cpu", "JUPYTER_CONFIG_DIR": str(scratch / ".jupyter")}
    root_flag = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
         f"--ServerApp.root_dir={root}", "--LabApp.news_url=", *root_flag],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.5)
    else:
        server.kill()
    if server.poll() is not None:
        pytest.fail(f"JupyterLab did not start: {server.stdout.read()[-2000:]}")
    return server, base


def _scratch_parent() -> Path:
    parent = ROOT / "autograder" / "output"  # ignored by git
    parent.mkdir(parents=True, exist_ok=True)
    return parent


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def test_student_runs_the_notebook_and_sees_the_self_check(lab, browser, tmp_path):
    base, notebook = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{base}/lab/tree/{notebook}?token={TOKEN}")
    page.wait_for_selector(".jp-Notebook", timeout=90_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
    shot = Path(os.environ.get("COURSE_SCREENSHOTS", tmp_path)) / "lab.png"
    try:
        for attempt in range(3):  # a busy machine may still be connecting the kernel: retry
            page.click("li.lm-MenuBar-item:has-text('Kernel')")
            page.click("li.lm-Menu-item:has-text('Restart Kernel and Run All Cells')")
            page.click(".jp-Dialog-button.jp-mod-accept")  # confirm the restart
            try:
                page.wait_for_selector(".jp-InputPrompt:has-text('[1]')", timeout=60_000)
                break
            except playwright.TimeoutError:
                if attempt == 2:
                    raise
        page.wait_for_selector("text=Score: 1 / 1", timeout=240_000)
    finally:
        page.screenshot(path=str(shot))
    assert page.get_by_text("test_mean_square").count() >= 1
    page.close()


def test_formgrader_page_opens(lab, browser, tmp_path):
    base, _ = lab
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{base}/formgrader?token={TOKEN}")
    page.wait_for_selector("text=Manage Assignments", timeout=60_000)
    page.wait_for_selector("text=02_tensors", timeout=60_000)
    page.screenshot(path=str(Path(os.environ.get("COURSE_SCREENSHOTS", tmp_path)) / "formgrader.png"))
    page.close()


CLASS = {"alice": 9, "bob": 7, "carol": 0}  # right, wrong flat_index, untouched


@pytest.fixture(scope="module")
def graded_class():
    """A course directory of its own (its nbgrader_config.py: the course's stages, paths moved)
    with three submissions of 02_tensors, graded by `nbgrader autograde` (formgrader's button)
    and given feedback by `nbgrader generate_feedback`; JupyterLab serves it."""
    course = Path(tempfile.mkdtemp(prefix="browser-class-"))
    shutil.copytree(SOLUTIONS / "02_tensors", course / "solutions" / "02_tensors")
    (course / "nbgrader_config.py").write_text(
        "from pathlib import Path\nfrom course.grader.config import configure\n"
        f"c = get_config()  # noqa: F821\nconfigure(c, Path({str(ROOT)!r}))\n"
        "here = Path(__file__).resolve().parent\nc.CourseDirectory.root = str(here)\n"
        "c.CourseDirectory.db_url = f\"sqlite:///{here / 'gradebook.db'}\"\n"
        "c.Exchange.root = str(here / 'exchange')\n")
    submitted = course / "autograder" / "submitted"
    wrong = "def flat_index(index, strides, offset=0):\n    return 0\n"
    submission(submitted, "02_tensors", student="alice")
    submission(submitted, "02_tensors", {"flat_index": wrong}, student="bob")
    (submitted / "carol" / "02_tensors").mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / "02_tensors" / "02_tensors.ipynb",
                submitted / "carol" / "02_tensors" / "02_tensors.ipynb")
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "1", "COURSE_KERNEL_THREADS": "1"}
    for step in (["generate_assignment", "02_tensors", "--force"], ["autograde", "02_tensors"],
                 ["generate_feedback", "02_tensors"]):
        done = subprocess.run([str(bindir / "nbgrader"), *step], cwd=course, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"nbgrader {step[0]}: {done.stderr[-3000:]}"
    server, base = _serve(course, course, course)
    yield base, course
    os.killpg(server.pid, 9)
    shutil.rmtree(course, ignore_errors=True)


def test_formgrader_shows_the_class_scores_and_a_students_feedback(graded_class, browser, tmp_path):
    base, _ = graded_class
    shots = Path(os.environ.get("COURSE_SCREENSHOTS", tmp_path))
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{base}/formgrader/manage_students?token={TOKEN}")
    for student, score in CLASS.items():  # one row per student: id ... "score / max"
        row = page.locator("tr", has_text=student)
        row.first.wait_for(timeout=60_000)
        assert f"{score} / 9" in row.first.inner_text(), (student, row.first.inner_text())
    page.screenshot(path=str(shots / "formgrader-students.png"))

    # Manual grading: the class's submissions, then bob's, with the judge's words as comments.
    page.goto(f"{base}/formgrader/gradebook/02_tensors/02_tensors?token={TOKEN}")
    names = page.locator("a.name-shown")  # formgrader hides names until asked; links are there
    names.first.wait_for(state="attached", timeout=60_000)
    assert sorted(names.all_text_contents()) == sorted(CLASS)
    page.screenshot(path=str(shots / "formgrader-gradebook.png"))
    bob = next(a.get_attribute("href") for a in names.all() if a.text_content() == "bob")
    page.goto(f"{base}{bob}?token={TOKEN}")
    page.wait_for_selector("text=test_flat_index", timeout=60_000)
    # formgrader shows a grade comment's automatic part as the comment box's placeholder
    page.wait_for_function("() => [...document.querySelectorAll('textarea.comment')].some("
                           "e => (e.placeholder || '').includes('offset + Σ index[d] · stride[d]'))",
                           timeout=60_000)
    page.screenshot(path=str(shots / "formgrader-submission-bob.png"))

    # Bob's feedback, as nbgrader generated it and the server serves it.
    page.goto(f"{base}/files/autograder/feedback/bob/02_tensors/02_tensors.html?token={TOKEN}")
    page.wait_for_selector("text=Score: 7 / 9", timeout=60_000)
    page.wait_for_selector("text=offset + Σ index[d] · stride[d]", timeout=10_000)
    text = page.inner_text("body")
    assert "BEGIN HIDDEN" not in text and "hidden=True" not in text
    page.screenshot(path=str(shots / "feedback-bob.png"))
    page.close()
