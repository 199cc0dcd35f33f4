"""Grade one notebook: rebuild it from the source, run it sandboxed, judge it, report.

This is the pipeline behind every front door: ``course grade``, ``course autograde`` and the
nbgrader stage :class:`~course.grader.preprocessors.judged_run.JudgedRun` all call
:func:`grade_submission`, so they give the same score to the same submission.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import cells, config
from .execute import describe_answer_error, run_job
from .judge import TestVerdict as TestResult
from .judge import judge_tests
from .protocol import Job
from .sandbox import Sandbox
from .scan import scan_answer

__all__ = ["GradeReport", "GradingInputError", "TestResult", "grade_submission", "read_notebook"]

META_KEY = "course_grading"


class GradingInputError(ValueError):
    """The file to grade cannot be read as a notebook; the message says what to do."""


@dataclass
class GradeReport:
    notebook: str
    assignment: str
    score: float
    max_score: float
    hidden_tests_included: bool
    tests: list[TestResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what the student should know
    cell_errors: list[str] = field(default_factory=list)
    integrity: list[str] = field(default_factory=list)  # tampering: tests voided, instructor told
    needs_look: list[str] = field(default_factory=list)  # unresolved constructs: instructor told
    sandbox: str = "bwrap"
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def read_notebook(path: Path) -> dict:
    """The notebook at ``path`` as plain JSON data; :class:`GradingInputError` when unreadable."""
    path = Path(path)
    if path.is_symlink():
        raise GradingInputError(f"{path} is a symbolic link; submit the notebook file itself")
    if not path.is_file():
        raise GradingInputError(f"{path} does not exist; give the path of a .ipynb notebook")
    try:
        if path.stat().st_size > 200 << 20:
            raise ValueError("larger than 200 MB")
        nb = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise ValueError("no list of cells")
    except (ValueError, UnicodeDecodeError, RecursionError, OSError) as exc:
        raise GradingInputError(
            f"{path.name} is not a readable notebook ({type(exc).__name__}: {str(exc)[:200]}). "
            "Restore it from a checkpoint (File → Revert Notebook to Checkpoint) or re-download "
            "the assignment and copy your answers into it") from None
    from nbformat import from_dict

    for cell in nb["cells"]:
        text = cells.code_of(cell)
        if isinstance(cell, dict) and text is not None:
            cell["source"] = text  # nbformat's on-disk lists of lines, joined
    return from_dict(nb)


def _points(source: dict) -> dict[str, float]:
    out = {}
    for cell in cells.test_cells(source):
        pts = cell["metadata"]["nbgrader"].get("points", 0)
        out[cells.grade_id(cell)] = float(pts) if isinstance(pts, int | float) else 0.0
    return out


def _job(source: dict, rebuilt: cells.Rebuilt, invs: list[cells.Invocation]) -> Job:
    answers = [(gid, text) for gid, text in rebuilt.answers.items()
               if rebuilt.answer_types.get(gid) == "code"]
    return Job(setup=cells.setup_sources(source), answers=answers,
               invocations=[{"key": i.key(), "module": i.module, "function": i.function,
                             "answers": list(i.answers), "options": i.options} for i in invs],
               answer_timeout=config.ANSWER_TIMEOUT, check_timeout=config.CELL_TIMEOUT)


def grade_submission(source: dict, student: dict, *, sandbox: Sandbox, hidden: bool = True,
                     name: str = "", data: Path | None = None,
                     notebook_timeout: float | None = None,
                     log: Callable[[str], None] = lambda s: None) -> tuple[GradeReport, dict]:
    """Grade ``student`` against the instructor's ``source``; the report and the judged notebook.

    The judged notebook is the source with the student's answer cells (as submitted, outputs
    included) and each test cell's output replaced by the judge's verdict: nothing, or an error
    carrying the message. nbgrader's ``SaveAutoGrades`` and feedback read it as they read any
    executed notebook.
    """
    start = time.monotonic()
    rebuilt = cells.rebuild(source, student)
    invs = [i for i in cells.invocations(source) if hidden or not i.hidden]
    run = run_job(_job(source, rebuilt, invs), sandbox, data=data,
                  notebook_timeout=notebook_timeout, log=log)
    points = _points(source)
    if not hidden:
        points = {gid: p for gid, p in points.items() if any(i.test == gid for i in invs)}
    verdicts = judge_tests(invs, run.entries, rebuilt.answers, points,
                           tuple(cells.setup_sources(source)))
    integrity, needs_look = [], []
    for gid, text in rebuilt.answers.items():
        if rebuilt.answer_types.get(gid) != "code":
            continue
        tamper, look = scan_answer(text)
        integrity += [f"answer cell {gid!r} {what}" for what in tamper]
        needs_look += [f"answer cell {gid!r} {what}" for what in look]
    integrity += [f"the runner's transcript was tampered with: {f}" for f in run.forged]
    if integrity:
        why = ("integrity: an answer in this notebook reaches into torch, the course library or "
               "the grader (" + "; ".join(integrity[:3]) + "); no test of this notebook scores, "
               "and your instructor sees this report")
        for v in verdicts:
            v.passed, v.points, v.message = False, 0.0, why
    tests: list[TestResult] = verdicts
    report = GradeReport(
        notebook=name, assignment="", score=sum(t.points for t in tests),
        max_score=sum(t.max_points for t in tests),
        hidden_tests_included=any(t.hidden for t in tests), tests=tests,
        problems=rebuilt.problems + run.problems,
        cell_errors=[describe_answer_error(g, e) for g, e in run.answer_errors.items()],
        integrity=integrity, needs_look=needs_look, sandbox=sandbox.kind,
        seconds=round(time.monotonic() - start, 2))
    return report, judged_notebook(source, student, rebuilt, report)


_KEEP_MIME = ("text/plain", "image/png")


def _student_outputs(student: dict) -> dict[str, list]:
    """Outputs of the student's answer cells as submitted, reduced to text and PNG, capped."""
    out: dict[str, list] = {}
    for cell in student.get("cells", []):
        gid = cells.grade_id(cell)
        if gid is None or not cells.is_answer(cell) or not isinstance(cell.get("outputs"), list):
            continue
        kept, size = [], 0
        for o in cell["outputs"]:
            if not isinstance(o, dict) or size > 200_000:
                continue
            kind = o.get("output_type")
            if kind == "stream" and isinstance(o.get("text"), str | list):
                text = "".join(o["text"]) if isinstance(o["text"], list) else o["text"]
                name = o.get("name") if o.get("name") in ("stdout", "stderr") else "stdout"
                kept.append({"output_type": "stream", "name": name, "text": text[:20_000]})
                size += min(len(text), 20_000)
            elif kind in ("display_data", "execute_result") and isinstance(o.get("data"), dict):
                data = {k: v for k, v in o["data"].items() if k in _KEEP_MIME and isinstance(v, str | list)}
                if data:
                    item = {"output_type": "display_data", "data": data, "metadata": {}}
                    kept.append(item)
                    size += sum(len(v) for v in data.values())
        out[gid] = kept
    return out


def judged_notebook(source: dict, student: dict, rebuilt: cells.Rebuilt, report: GradeReport) -> dict:
    nb = copy.deepcopy(source)
    outputs = _student_outputs(student)
    verdicts = {t.grade_id: t for t in report.tests}
    for cell in nb["cells"]:
        gid = cells.grade_id(cell)
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
        if gid is None:
            continue
        if cells.is_answer(cell):
            cell["source"] = rebuilt.answers.get(gid, cell["source"])
            if cell.get("cell_type") == "code":
                cell["outputs"] = outputs.get(gid, [])
        elif cells.is_test(cell) and gid in verdicts and not verdicts[gid].passed:
            message = verdicts[gid].message or "this test failed"
            cell["outputs"] = [{"output_type": "error", "ename": "CheckFailure", "evalue": message,
                                "traceback": [f"CheckFailure: {message}"]}]
    nb.setdefault("metadata", {})[META_KEY] = {
        "problems": report.problems, "integrity": report.integrity,
        "needs_look": report.needs_look, "cell_errors": report.cell_errors,
        "sandbox": report.sandbox}
    return nb
