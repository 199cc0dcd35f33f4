"""Run a solution notebook's answer and test cells in-process, with mutants swapped in.

This is how the test suite proves the checks: the *same* test cells the grader runs (hidden tests
included) execute here against the correct answer and against known-wrong implementations.
"""

from __future__ import annotations

import contextlib
import io
import linecache
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"


def notebook_path(assignment: str) -> Path:
    return SOLUTIONS / assignment / f"{assignment}.ipynb"


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


@dataclass
class Parts:
    setup: list[tuple[str, str]] = field(default_factory=list)  # (grade_id, source)
    answers: dict[str, str] = field(default_factory=dict)
    tests: dict[str, tuple[str, float]] = field(default_factory=dict)  # gid -> (source, points)


@cache
def parts(assignment: str) -> Parts:
    nb = nbformat.read(str(notebook_path(assignment)), as_version=4)
    result = Parts()
    for cell in nb.cells:
        m = _meta(cell)
        if cell.cell_type != "code" or not m:
            continue
        gid = m.get("grade_id", "")
        if m.get("solution") and not m.get("grade"):
            result.answers[gid] = cell.source
        elif m.get("grade"):
            result.tests[gid] = (cell.source, float(m.get("points", 0)))
        elif gid.startswith("setup"):
            result.setup.append((gid, cell.source))
    return result


def _exec(source: str, name: str, ns: dict) -> None:
    filename = f"<{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    code = compile(source, filename, "exec")
    with contextlib.redirect_stdout(io.StringIO()):
        exec(code, ns)  # noqa: S102 - running the course's own cells is the point


@dataclass
class Outcome:
    points: float
    max_points: float
    failures: dict[str, str]  # test grade_id -> message

    @property
    def messages(self) -> str:
        return "\n".join(self.failures.values())


def tests_for(assignment: str, exercise: str) -> dict[str, tuple[str, float]]:
    prefix = f"test_{exercise}"
    found = {gid: t for gid, t in parts(assignment).tests.items()
             if gid == prefix or gid.startswith(prefix + "_")}
    if not found:
        raise KeyError(f"{assignment} has no test cell for {exercise!r} (grade_id test_{exercise}...)")
    return found


@cache
def _invocations(assignment: str):
    from course.grader.cells import invocations

    return invocations(nbformat.read(str(notebook_path(assignment)), as_version=4))


def _split(assignment: str, exercise: str, ns: dict, answers: dict[str, str]) -> Outcome:
    """The grader's path: scenarios here, their records through JSON and bytes, then the judge
    (which sees only the records and the answers' source text, never the objects)."""
    from course.checks import _transcript as tr
    from course.grader.judge import Entry, judge_tests, resolve_check

    tests = tests_for(assignment, exercise)
    invs = [inv for inv in _invocations(assignment) if inv.test in tests]
    entries = {}
    for inv in invs:
        if any(name not in ns for name in inv.answers):
            entries[inv.key()] = Entry(inv.key(), inv.check, "missing")
            continue
        record = resolve_check(inv).record([ns[n] for n in inv.answers],
                                           resolve_check(inv).scenario_options(inv.options))
        doc, blob = tr.encode(record)
        decoded = tr.decode(tr.loads(tr.dumps(doc)), blob)
        entries[inv.key()] = Entry(inv.key(), inv.check, "ok", decoded)
    verdicts = judge_tests(invs, entries, answers, {gid: pts for gid, (_, pts) in tests.items()},
                           tuple(src for _, src in parts(assignment).setup))
    return Outcome(sum(v.points for v in verdicts), sum(v.max_points for v in verdicts),
                   {v.grade_id: v.message for v in verdicts if not v.passed})


def run_exercise(assignment: str, exercise: str, mutant: str | None = None,
                 mode: str = "split") -> Outcome:
    """Execute setup and answer cells, optionally a mutant's source, then the exercise's tests.

    ``mode="split"`` judges the way the grader does (scenario records → judge); ``"inline"`` runs
    the test cells themselves, as a student's notebook does.
    """
    p = parts(assignment)
    ns: dict = {"__name__": "__main__"}
    for gid, src in p.setup:
        _exec(src, f"{assignment}:{gid}", ns)
    for gid, src in p.answers.items():
        _exec(src, f"{assignment}:{gid}", ns)
    answers = dict(p.answers)
    if mutant is not None:
        _exec(mutant, f"{assignment}:mutant:{exercise}", ns)
        answers[exercise] = mutant
    if mode == "split":
        with contextlib.redirect_stdout(io.StringIO()):
            return _split(assignment, exercise, ns, answers)
    points, max_points, failures = 0.0, 0.0, {}
    for gid, (src, pts) in tests_for(assignment, exercise).items():
        max_points += pts
        try:
            _exec(src, f"{assignment}:{gid}", ns)
        except Exception as exc:  # a failed test cell scores 0, like nbgrader
            failures[gid] = f"{type(exc).__name__}: {exc}"
        else:
            points += pts
    return Outcome(points, max_points, failures)
