"""``course report``: what the class got wrong, from nbgrader's gradebook, as one HTML page.

Per assignment: how the scores spread, per exercise (test cell) the share of students who
passed, failed or did not attempt it, and the concepts that failed most often. Concepts come from
the judge's messages, which ``SaveJudgeComments`` stores as grade comments, one
``<test_id>: <message>`` line per failed test (details on indented lines); a concept is the
message's first sentence, so "41 % of students: weight decay is added to the gradient BEFORE ...".
Each concept links to the notebook section that teaches it and to the exercise. Plots are
matplotlib PNGs embedded in the page; nothing else is written.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .files import write_atomic

__all__ = ["AssignmentStats", "Concept", "TestStats", "collect", "render", "write_report"]

NOT_DONE = "is not implemented yet"  # the check's message for an untouched answer cell
_LINE = re.compile(r"^([A-Za-z0-9_.\-]+): (.+)$")


@dataclass
class TestStats:
    grade_id: str
    max_points: float
    passed: int = 0
    failed: int = 0  # attempted, wrong
    not_done: int = 0  # the answer cell still raises NotImplementedError
    ungraded: int = 0  # no score (the grader failed; needs manual grading)

    @property
    def graded(self) -> int:
        return self.passed + self.failed + self.not_done

    @property
    def share_passed(self) -> float:
        return self.passed / self.graded if self.graded else 0.0


@dataclass
class Concept:
    text: str
    tests: set[str] = field(default_factory=set)
    students: set[str] = field(default_factory=set)
    share: float = 0.0


@dataclass
class AssignmentStats:
    name: str
    max_score: float
    scores: dict[str, float | None] = field(default_factory=dict)  # student -> total (None: error)
    tests: list[TestStats] = field(default_factory=list)
    concepts: list[Concept] = field(default_factory=list)  # most frequent first
    flagged: list[str] = field(default_factory=list)  # students with integrity findings


def concept_of(message: str) -> str:
    """The first sentence of a judge's message: what the student should understand."""
    first = message.strip().split("\n")[0]
    for stop in (". ", "; "):
        if stop in first:
            first = first[:first.index(stop)]
    return first.rstrip(" .:;")


def parse_comment(text: str | None) -> list[tuple[str, str]]:
    """``(test_id, message)`` of each judge line in a grade comment (flags and details skipped)."""
    found = []
    for line in (text or "").split("\n"):
        if line[:1].isspace() or line.startswith("["):
            continue
        match = _LINE.match(line)
        if match:
            found.append((match.group(1), match.group(2)))
    return found


def collect(db_url: str, course_id: str | None = None) -> list[AssignmentStats]:
    """Everything the page shows, read from the gradebook."""
    from nbgrader.api import Gradebook

    from .config import COURSE_ID
    from .gradebook import normalize_url

    stats = []
    with Gradebook(normalize_url(db_url), course_id or COURSE_ID) as gb:
        for assignment in sorted(gb.assignments, key=lambda a: a.name):
            a = AssignmentStats(assignment.name, float(assignment.max_score or 0))
            tests = {gc.name: TestStats(gc.name, float(gc.max_score or 0))
                     for nb in assignment.notebooks for gc in nb.grade_cells}
            concepts: dict[str, Concept] = {}
            for sub in assignment.submissions:
                student = sub.student.id
                lines = [(t, m) for nb in sub.notebooks for c in nb.comments
                         for t, m in parse_comment(c.auto_comment)]
                undone = {t for t, m in lines if NOT_DONE in m}
                ungraded = False
                for nb in sub.notebooks:
                    for grade in nb.grades:
                        t = tests.setdefault(grade.name, TestStats(grade.name, float(grade.max_score or 0)))
                        if grade.auto_score is None and grade.manual_score is None:
                            t.ungraded += 1
                            ungraded = True
                        elif grade.score >= t.max_points - 1e-9:
                            t.passed += 1
                        elif grade.name in undone:
                            t.not_done += 1
                        else:
                            t.failed += 1
                a.scores[student] = None if ungraded else float(sub.score)
                if any(nb.flagged for nb in sub.notebooks):
                    a.flagged.append(student)
                    continue  # tests voided for tampering say nothing about concepts
                for test_id, message in lines:
                    if NOT_DONE in message or test_id not in tests:
                        continue
                    c = concepts.setdefault(concept_of(message), Concept(concept_of(message)))
                    c.tests.add(test_id)
                    c.students.add(student)
            graded = sum(1 for s in a.scores.values() if s is not None) or 1
            for c in concepts.values():
                c.share = len(c.students) / graded
            a.tests = sorted(tests.values(), key=lambda t: t.grade_id)
            a.concepts = sorted(concepts.values(), key=lambda c: (-len(c.students), c.text))
            stats.append(a)
    return stats


# --- where each exercise is taught -------------------------------------------------------------

def _anchor(heading: str) -> str:
    """JupyterLab's (and nbconvert's) anchor for a markdown heading."""
    text = re.sub(r"[`*]", "", heading.lstrip("#").strip())
    return text.replace(" ", "-")


def teaching_cells(root: Path | None, assignment: str) -> dict[str, tuple[str, str]]:
    """``answer grade_id -> (section heading, exercise heading)`` from the released notebook."""
    path = Path(root or ".") / "notebooks" / assignment / f"{assignment}.ipynb"
    if root is None or not path.is_file():
        return {}
    found, section, exercise = {}, "", ""
    for cell in json.loads(path.read_text())["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "markdown":
            for line in source.split("\n"):
                if line.startswith("## "):
                    section, exercise = line, ""
                elif line.startswith("### "):
                    exercise = line
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and not meta.get("grade"):
            found[meta.get("grade_id", "")] = (section, exercise)
    return found


def _links(root: Path | None, assignment: str, test_ids: set[str], cells: dict) -> str:
    from .preprocessors.judge_comments import _exercise_of

    rel = f"notebooks/{assignment}/{assignment}.ipynb"
    base = rel
    if root is not None:
        try:
            from .preprocessors.release_extras import repository

            owner, name, branch = repository(root)
            base = f"https://github.com/{owner}/{name}/blob/{branch}/{rel}"
        except (OSError, ValueError):
            pass
    out = []
    for answer in sorted({_exercise_of(t, list(cells)) or t for t in test_ids}):
        section, exercise = cells.get(answer, ("", ""))
        for heading in (section, exercise) if section or exercise else ("",):
            if heading:
                label = re.sub(r"[`*#]", "", heading).strip()
                out.append(f'<a href="{html.escape(base)}#{html.escape(_anchor(heading))}">'
                           f"{html.escape(label)}</a>")
            else:
                out.append(f'<a href="{html.escape(base)}#{html.escape(answer)}">'
                           f"{html.escape(rel)} · {html.escape(answer)}</a>")
    return " · ".join(dict.fromkeys(out))


# --- the page -----------------------------------------------------------------------------------

def plot(a: AssignmentStats) -> bytes:
    """PNG: per test the share passed / wrong / not attempted, and the spread of total scores."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 0.45 * max(len(a.tests), 4) + 1.6), dpi=110)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    names = [f"{t.grade_id} ({t.max_points:g} pt)" for t in a.tests][::-1]
    y = range(len(names))
    start = [0.0] * len(names)
    for attr, colour, label in (("passed", "#2e7d32", "passed"), ("failed", "#c62828", "wrong"),
                                ("not_done", "#9e9e9e", "not attempted")):
        values = [100 * getattr(t, attr) / (t.graded or 1) for t in a.tests][::-1]
        left.barh(y, values, left=start, color=colour, label=label)
        start = [s + v for s, v in zip(start, values, strict=True)]
    for i, t in enumerate(a.tests[::-1]):
        left.text(1, i, f"{100 * t.share_passed:.0f} %", va="center", color="white", fontsize=9)
    left.set_yticks(list(y), names, fontsize=9)
    left.set_xlim(0, 100)
    left.set_xlabel("% of graded students")
    left.set_title(f"{a.name}: who passed each test", fontsize=11)
    left.legend(loc="lower center", bbox_to_anchor=(0.5, 1.08), ncol=3, fontsize=8, frameon=False)
    scores = [s for s in a.scores.values() if s is not None]
    bins = [x - 0.5 for x in range(int(a.max_score) + 2)] if a.max_score <= 40 else 20
    right.hist(scores, bins=bins, color="#1565c0", edgecolor="white")
    right.set_xlabel(f"score (of {a.max_score:g})")
    right.set_ylabel("students")
    right.set_title(f"scores ({len(scores)} graded)", fontsize=11)
    right.yaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{padding:.3em .7em;border-bottom:1px solid #ddd;
text-align:left;vertical-align:top}th{background:#f4f4f4}.bar{background:#c62828;height:.8em;
display:inline-block;margin-right:.4em}.pct{font-weight:600;white-space:nowrap}.flag{color:#b71c1c}
img{max-width:100%}code{background:#f4f4f4;padding:0 .2em}"""


def render(stats: list[AssignmentStats], root: Path | None = None, top: int = 10) -> str:
    """The whole page as HTML text."""
    from .config import COURSE_ID

    e = html.escape
    parts = [f"<!doctype html><meta charset='utf-8'><title>{e(COURSE_ID)}: class report</title>"
             f"<style>{CSS}</style><h1>What the class got wrong</h1>"]
    if not stats:
        parts.append("<p>The gradebook holds no graded assignment yet: run <code>course "
                     "autograde</code> or <code>nbgrader autograde</code> first.</p>")
    parts.append("<table><tr><th>assignment</th><th>graded</th><th>mean</th><th>full marks</th>"
                 "<th>not graded</th><th>integrity flags</th></tr>")
    for a in stats:
        scores = [s for s in a.scores.values() if s is not None]
        mean = f"{sum(scores) / len(scores):.1f} / {a.max_score:g}" if scores else "–"
        full = sum(1 for s in scores if s >= a.max_score - 1e-9)
        parts.append(f"<tr><td><a href='#{e(a.name)}'>{e(a.name)}</a></td><td>{len(scores)}</td>"
                     f"<td>{mean}</td><td>{full}</td><td>{len(a.scores) - len(scores)}</td>"
                     f"<td>{len(a.flagged)}</td></tr>")
    parts.append("</table>")
    for a in stats:
        graded = sum(1 for s in a.scores.values() if s is not None)
        parts.append(f"<h2 id='{e(a.name)}'>{e(a.name)}</h2>")
        if not a.scores:
            parts.append("<p>No submissions graded.</p>")
            continue
        png = base64.b64encode(plot(a)).decode()
        parts.append(f"<img alt='pass rates and scores of {e(a.name)}' src='data:image/png;base64,{png}'>")
        parts.append("<table><tr><th>test</th><th>points</th><th>passed</th><th>wrong</th>"
                     "<th>not attempted</th><th>not graded</th></tr>")
        for t in a.tests:
            parts.append(f"<tr><td><code>{e(t.grade_id)}</code></td><td>{t.max_points:g}</td>"
                         f"<td class='pct'>{100 * t.share_passed:.0f} % ({t.passed}/{t.graded})</td>"
                         f"<td>{t.failed}</td><td>{t.not_done}</td><td>{t.ungraded}</td></tr>")
        parts.append("</table><h3>Concepts that failed most often</h3>")
        if not a.concepts:
            parts.append("<p>None: every attempted test passed.</p>")
        else:
            cells = teaching_cells(root, a.name)
            parts.append("<table><tr><th>share of students</th><th>concept (the judge's words)</th>"
                         "<th>tests</th><th>taught in</th></tr>")
            for c in a.concepts[:top]:
                pct = round(100 * c.share)
                parts.append(
                    f"<tr><td class='pct'><span class='bar' style='width:{pct * 0.8:.0f}px'></span>"
                    f"{pct} % ({len(c.students)}/{graded})</td>"
                    f"<td>{pct} % of students: {e(c.text)}</td>"
                    f"<td>{', '.join(f'<code>{e(t)}</code>' for t in sorted(c.tests))}</td>"
                    f"<td>{_links(root, a.name, c.tests, cells)}</td></tr>")
            parts.append("</table>")
        if a.flagged:
            parts.append(f"<p class='flag'>Integrity findings (see <code>integrity.csv</code> or "
                         f"formgrader): {e(', '.join(sorted(a.flagged)))}</p>")
    return "\n".join(parts) + "\n"


def write_report(db_url: str | None = None, out: Path | None = None, root: Path | None = None) -> Path:
    """Write ``OUT/report.html`` from the gradebook; return its path."""
    from ..paths import repo_root
    from . import config

    root = root or repo_root()
    if db_url is None:
        db_url = config.load_config(root).CourseDirectory.db_url
    if db_url.startswith("sqlite:///") and not Path(db_url.removeprefix("sqlite:///")).is_file():
        raise SystemExit(f"error: no gradebook at {db_url.removeprefix('sqlite:///')}; grade first "
                         "(`course autograde` or `nbgrader autograde`) or pass --db URL")
    out = Path(out) if out is not None else (root / "autograder" / "output" if root else Path.cwd())
    stats = collect(db_url)
    path = out / "report.html"
    write_atomic(path, render(stats, root))
    return path

