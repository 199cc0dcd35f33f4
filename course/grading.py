"""Grade one notebook in a fresh kernel, the way the instructor's autograder does.

The graded notebook is rebuilt from the instructor's source (``solutions/``) when it is present:
every cell comes from the source except the answer cells, which come from the student. Edited,
deleted or reordered test cells therefore cannot change a grade, and the hidden tests run. Without
``solutions/`` (a student's self-check) the notebook runs as it is, visible tests only.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .grader import config as grading_config
from .paths import repo_root

__all__ = [  # noqa: F822 (HideHiddenTracebacks is built on first access, see __getattr__)
    "GradeReport", "GradingInputError", "HideHiddenTracebacks", "TestResult",
    "build_graded_notebook", "find_source", "grade_notebook",
]

HIDDEN_MARK = "BEGIN HIDDEN TESTS"


class GradingInputError(ValueError):
    """The file to grade cannot be read as a notebook; the message says what to do."""


@dataclass
class TestResult:
    grade_id: str
    points: float
    max_points: float
    passed: bool
    hidden: bool
    message: str = ""


@dataclass
class GradeReport:
    notebook: str
    assignment: str
    score: float
    max_score: float
    hidden_tests_included: bool
    tests: list[TestResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    cell_errors: list[str] = field(default_factory=list)  # errors outside test cells
    integrity: list[str] = field(default_factory=list)  # tampering found, for the instructor
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _nbmeta(cell: Any) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def _is_answer(cell: Any) -> bool:
    m = _nbmeta(cell)
    return bool(m.get("solution")) and not m.get("grade")


def _is_test(cell: Any) -> bool:
    m = _nbmeta(cell)
    return bool(m.get("grade")) and not m.get("solution") and cell.get("cell_type") == "code"


def read_notebook(path: Path) -> Any:
    import nbformat

    if not path.is_file():
        raise GradingInputError(f"{path} does not exist; give the path of a .ipynb notebook")
    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:  # invalid JSON, truncated file, not a notebook at all
        raise GradingInputError(
            f"{path} is not a readable notebook ({type(exc).__name__}: {str(exc)[:200]}). "
            "Restore it from a checkpoint (File → Revert Notebook to Checkpoint) or re-download "
            "the assignment and copy your answers into it"
        ) from None
    return nb


def find_source(path: Path, root: Path | None = None) -> Path | None:
    """The instructor's version of ``path`` in ``solutions/``, when the repository has it."""
    root = root if root is not None else repo_root()
    if root is None:
        return None
    path = path.resolve()
    stem = path.stem
    for candidate in (root / "solutions" / path.parent.name / path.name,
                      root / "solutions" / stem / f"{stem}.ipynb"):
        if candidate.is_file():
            return candidate
    return None


def _stub(cell: Any) -> Any:
    from nbformat.v4 import new_notebook
    from nbgrader.preprocessors import ClearSolutions

    nb = new_notebook(cells=[copy.deepcopy(cell)])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    ClearSolutions(code_stub={"python": grading_config.CODE_STUB}).preprocess(nb, {})
    return nb.cells[0]


def build_graded_notebook(source: Any, student: Any) -> tuple[Any, list[str]]:
    """The source notebook with the student's answer cells in place of the solutions."""
    answers: dict[str, Any] = {}
    for cell in student.cells:
        gid = _nbmeta(cell).get("grade_id")
        if _is_answer(cell) and gid and gid not in answers:
            answers[gid] = cell
    problems = []
    graded = copy.deepcopy(source)
    for i, cell in enumerate(graded.cells):
        if not _is_answer(cell):
            continue
        gid = _nbmeta(cell).get("grade_id")
        theirs = answers.get(gid)
        if theirs is None:
            problems.append(f"answer cell {gid!r} is missing (deleted, or its nbgrader metadata was "
                            "removed); it was graded as unanswered")
            graded.cells[i] = _stub(cell)
        elif theirs.get("cell_type") != cell.cell_type:
            problems.append(f"answer cell {gid!r} was changed to a {theirs.get('cell_type')} cell; "
                            "it was graded as unanswered")
            graded.cells[i] = _stub(cell)
        else:
            cell.source = theirs.get("source", "")
    for cell in graded.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return graded, problems


GUARD_KEY = "course_guard"


def _guard_cell(tag: str) -> Any:
    from nbformat.v4 import new_code_cell

    cell = new_code_cell(f'__import__("course.integrity").integrity.emit({tag!r})')
    cell.metadata[GUARD_KEY] = tag
    return cell


def _setup_imports(nb: Any) -> str:
    """The import statements of the cells before the first answer (the notebook's setup)."""
    import ast

    lines = []
    for cell in nb.cells:
        if _is_answer(cell):
            break
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        lines += [ast.unparse(n) for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    return "\n".join(lines)


def add_guards(nb: Any) -> None:
    """Insert integrity guards: before the first answer cell, then after every answer and test.

    Each test cell also re-runs the setup's imports first, so a name such as ``check`` or
    ``torch`` that an answer cell rebound is restored before the test uses it.
    """
    prelude = _setup_imports(nb)
    cells, seen_answer = [], False
    for cell in nb.cells:
        m = _nbmeta(cell)
        if _is_answer(cell) and not seen_answer:
            cells.append(_guard_cell("baseline"))
            seen_answer = True
        if _is_test(cell) and prelude:
            cell.source = f"{prelude}  # (restored by the grader)\n{cell.source}"
        cells.append(cell)
        if cell.cell_type == "code" and (_is_answer(cell) or _is_test(cell)):
            cells.append(_guard_cell(m.get("grade_id", "?")))
    nb.cells = cells


def _guard_reports(nb: Any) -> list[tuple[int, str, list[str] | None]]:
    """(position, tag, replaced names or None when the guard produced no report)."""
    from .integrity import MIME

    found = []
    for i, cell in enumerate(nb.cells):
        tag = cell.get("metadata", {}).get(GUARD_KEY)
        if tag is None:
            continue
        report = None
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if MIME in data and isinstance(data[MIME], dict):
                report = list(data[MIME].get("changed", []))
        found.append((i, tag, report))
    return found


def _error_output(ename: str, evalue: str) -> Any:
    from nbformat.v4 import new_output

    return new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _memory_limit_line() -> str:
    limit = int(grading_config.KERNEL_MEMORY_GB * (1 << 30))
    code = f"import resource as _r; _r.setrlimit(_r.RLIMIT_AS, ({limit}, {limit})); del _r"
    return f"--IPKernelApp.exec_lines={json.dumps([code])}"


def _capped_client_class() -> type:
    """A NotebookClient that keeps at most OUTPUT_LIMIT bytes of output per cell."""
    from nbclient import NotebookClient

    class CappedClient(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):  # noqa: D102
            size = len(json.dumps(msg.get("content", {}), default=str))
            used = self._output_bytes.get(cell_index, 0)
            self._output_bytes[cell_index] = used + size
            if used + size > grading_config.OUTPUT_LIMIT:
                if used <= grading_config.OUTPUT_LIMIT:
                    from nbformat.v4 import new_output

                    outs.append(new_output("stream", name="stdout", text=(
                        f"\n[output truncated: more than {grading_config.OUTPUT_LIMIT // 1000} kB]\n")))
                return None
            return super().output(outs, msg, display_id, cell_index)

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._output_bytes: dict[int, int] = {}

    return CappedClient


def _kernel_env() -> dict[str, str]:
    """The grading kernel's environment: marked as grading, and with a thread budget.

    Several kernels at once (``course autograde --jobs``, ``pytest -n``) each running as many
    threads as there are cores oversubscribe the CPU and slow training checks several-fold.
    """
    import os

    from .selfcheck import GRADING_ENV

    env = {**os.environ, GRADING_ENV: "1"}
    threads = os.environ.get("COURSE_KERNEL_THREADS")
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = threads
    return env


GUARD_TIMEOUT = 30  # seconds an integrity guard may take before the kernel counts as hung
ANSWER_TIMEOUT = 120  # seconds an answer cell may take (it should only define things)


def _last_answer_before(nb: Any, index: int) -> int | None:
    """When a guard or test hangs or dies, the answer cell that ran last is the likely cause."""
    if _is_answer(nb.cells[index]):
        return None
    for j in range(index - 1, -1, -1):
        if nb.cells[j].cell_type == "code" and _is_answer(nb.cells[j]):
            return j
    return None


def execute(nb: Any, workdir: Path, cell_timeout: float, notebook_timeout: float,
            log: Callable[[str], None] = lambda s: None) -> list[str]:
    """Run every code cell in a fresh kernel, surviving hangs and crashes.

    A cell that times out or kills its kernel gets an error output; the kernel is then killed,
    a new one started, the cells before it re-run, and execution continues after it.
    """
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    client_class = _capped_client_class()
    problems: list[str] = []
    deadline = time.monotonic() + notebook_timeout
    broken: set[int] = set()
    while True:
        client = client_class(
            nb, timeout=int(cell_timeout), kernel_name="python3", allow_errors=True,
            interrupt_on_timeout=False, shutdown_kernel="immediate", record_timing=False,
            resources={"metadata": {"path": str(workdir)}},
            extra_arguments=["--HistoryManager.hist_file=:memory:", _memory_limit_line()],
        )
        crashed = None
        import subprocess


        # The kernel's own stdout/stderr go nowhere: a submission cannot write into the grader's.
        with client.setup_kernel(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL,
                                 env=_kernel_env()):
            for i, cell in enumerate(nb.cells):
                if cell.cell_type != "code" or i in broken:
                    continue
                cell.outputs = []
                remaining = deadline - time.monotonic()
                if remaining <= 1:
                    cell.outputs = [_error_output(
                        "NotebookTimeout", f"not run: the notebook used up its "
                        f"{int(notebook_timeout)} s grading budget")]
                    continue
                if GUARD_KEY in cell.get("metadata", {}):
                    limit = GUARD_TIMEOUT
                elif _is_answer(cell):  # answers define things; the tests do the heavy work
                    limit = min(ANSWER_TIMEOUT, cell_timeout)
                else:
                    limit = cell_timeout
                client.timeout = int(min(limit, remaining))
                try:
                    client.execute_cell(cell, i)
                except CellTimeoutError:
                    crashed, why = i, f"ran longer than {client.timeout} s and was stopped"
                except DeadKernelError:
                    crashed, why = i, "crashed the Python kernel (it died or was killed)"
                if crashed is not None:
                    cell.outputs = [_error_output("CellTimeoutError" if "longer" in why
                                                  else "DeadKernelError", f"this cell {why}")]
                    problems.append(f"cell {i} {why}; the kernel was restarted and grading went on")
                    log(problems[-1])
                    broken.add(i)
                    culprit = _last_answer_before(nb, i)
                    if culprit is not None:  # it left the kernel unusable: do not run it again
                        broken.add(culprit)
                    break
        if crashed is None:
            return problems



def _hidden_message(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _message(cell: Any, hidden: bool) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            ename, evalue = out.get("ename", "Error"), str(out.get("evalue", ""))
            if ename == "CheckFailure":
                text = evalue
            elif ename == "NameError":
                text = (f"NameError: {evalue}. Define it in its answer cell (and run that cell); "
                        "do not rename the function or class")
            else:
                text = f"{ename}: {evalue}"
            return _hidden_message(text) if hidden else text[:2000]
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            text = "".join(out.get("text", ""))
            return ("the test wrote to stderr, which counts as a failure"
                    + ("" if hidden else f": {text.strip()[:300]}"))
    return ""


def score(nb: Any, voided: dict[str, str] | None = None) -> list[TestResult]:
    """Points per test cell; ``voided`` maps test grade_ids to why they score zero regardless."""
    from nbgrader.utils import determine_grade

    voided = voided or {}
    results = []
    for cell in nb.cells:
        if not _is_test(cell):
            continue
        meta = _nbmeta(cell)
        gid = meta.get("grade_id", "?")
        points, max_points = determine_grade(cell)
        points = float(points or 0.0)
        hidden = HIDDEN_MARK in cell.source
        if gid in voided:
            results.append(TestResult(gid, 0.0, float(max_points), False, hidden, voided[gid]))
            continue
        passed = points >= max_points
        results.append(TestResult(gid, points, float(max_points), passed,
                                  hidden, "" if passed else _message(cell, hidden)))
    return results


def check_integrity(nb: Any) -> tuple[dict[str, str], list[str]]:
    """Static scan of answer cells and the guards' reports: voided tests and findings."""
    from .integrity import scan_source

    voided: dict[str, str] = {}
    findings: list[str] = []
    tests = [(i, _nbmeta(c).get("grade_id", "?")) for i, c in enumerate(nb.cells) if _is_test(c)]
    for i, cell in enumerate(nb.cells):
        if not _is_answer(cell) or cell.cell_type != "code":
            continue
        gid = _nbmeta(cell).get("grade_id", "?")
        found = scan_source(cell.source)
        if not found:
            continue
        what = "; ".join(found)
        findings.append(f"answer cell {gid!r}: {what}")
        mine = [t for _, t in tests if t == f"test_{gid}" or t.startswith(f"test_{gid}_")]
        mine = mine or [t for j, t in tests if j > i]
        for t in mine:
            voided.setdefault(t, f"integrity: answer cell {gid!r} {what}; answers may not change "
                                 "torch, the course library, or the grader's environment. This "
                                 "test scores 0 and your instructor sees this report")
    for pos, tag, changed in _guard_reports(nb):
        if changed is None or changed:
            what = (", ".join(changed) if changed else
                    "the grader's integrity report went missing")
            findings.append(f"after cell {tag!r}: {what}")
            for j, t in tests:
                if j > pos:
                    voided.setdefault(t, f"integrity: code in this notebook replaced {what} "
                                         f"(first seen after {tag!r}); tests from there on score 0 "
                                         "and your instructor sees this report")
            break
    return voided, findings


def _limit_outputs(nb: Any, cfg: Any) -> None:
    from nbgrader.preprocessors import LimitOutput

    LimitOutput(config=cfg).preprocess(nb, {})


def _cell_errors(nb: Any) -> list[str]:
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or _is_test(cell):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                gid = _nbmeta(cell).get("grade_id")
                where = f"cell {i}" + (f" ({gid})" if gid else "")
                found.append(f"{where}: {out.get('ename')}: {str(out.get('evalue', ''))[:300]}")
    return found


def grade_notebook(path: str | Path, *, hidden: bool = True, root: Path | None = None,
                   log: Callable[[str], None] = lambda s: None,
                   executed_path: Path | None = None,
                   cell_timeout: float | None = None,
                   notebook_timeout: float | None = None,
                   source: Path | None = None,
                   feedback_path: Path | None = None) -> GradeReport:
    """Grade ``path`` in a fresh kernel and return the report.

    With ``hidden`` (the default) and the instructor's ``solutions/`` present, the graded notebook
    is rebuilt from the source and includes the hidden tests.
    """
    start = time.monotonic()
    path = Path(path)
    root = root if root is not None else repo_root()
    cfg = grading_config.load_config(root)
    if cell_timeout is None:
        cell_timeout = float(cfg.Execute.get("timeout", grading_config.CELL_TIMEOUT))
    if notebook_timeout is None:
        notebook_timeout = grading_config.NOTEBOOK_TIMEOUT
    student = read_notebook(path)
    source_path = (Path(source) if source is not None else find_source(path, root)) if hidden else None
    problems: list[str] = []
    if source_path is not None and source_path.resolve() != path.resolve():
        graded, problems = build_graded_notebook(read_notebook(source_path), student)
    elif source_path is not None:
        graded = student  # grading the instructor's own source
    else:
        graded = copy.deepcopy(student)
    assignment = (source_path or path.resolve()).parent.name
    add_guards(graded)
    with tempfile.TemporaryDirectory(prefix="course-grade-") as tmp:
        workdir = Path(tmp) / assignment
        assets = (source_path or path).parent
        shutil.copytree(assets, workdir, ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
        problems += execute(graded, workdir, cell_timeout, notebook_timeout, log)
    voided, findings = check_integrity(graded)
    graded.cells = [c for c in graded.cells if GUARD_KEY not in c.get("metadata", {})]
    _limit_outputs(graded, cfg)
    if executed_path is not None:
        import nbformat

        nbformat.write(graded, str(executed_path))
    tests = score(graded, voided)
    report = GradeReport(
        notebook=str(path), assignment=assignment,
        score=sum(t.points for t in tests), max_score=sum(t.max_points for t in tests),
        hidden_tests_included=any(t.hidden for t in tests), tests=tests, problems=problems,
        cell_errors=_cell_errors(graded), integrity=findings,
        seconds=round(time.monotonic() - start, 2),
    )
    if feedback_path is not None:
        write_feedback(graded, report, Path(feedback_path))
    return report


def write_feedback(nb: Any, report: GradeReport, path: Path) -> None:
    """Feedback HTML for the student: scores on top, hidden tests and their tracebacks removed."""
    from nbconvert import HTMLExporter
    from nbformat.v4 import new_markdown_cell
    from nbgrader.preprocessors import ClearHiddenTests

    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code" and HIDDEN_MARK in cell.source:
            _hide_in_cell(cell)
    ClearHiddenTests().preprocess(nb, {})
    rows = "\n".join(f"| `{t.grade_id}` | {t.points:g} / {t.max_points:g} | "
                     f"{_md_escape(t.message.splitlines()[0]) if t.message else 'passed'} |"
                     for t in report.tests)
    notes = "".join(f"\n* {_md_escape(p)}" for p in report.problems)
    summary = (f"# Feedback: {report.assignment}\n\n**Score: {report.score:g} / "
               f"{report.max_score:g}**\n\n| test | points | feedback |\n|---|---|---|\n{rows}\n"
               + (f"\n**Notes**{notes}\n" if notes else ""))
    nb.cells.insert(0, new_markdown_cell(summary))
    html, _ = HTMLExporter().from_notebook_node(nb)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _hide_in_cell(cell: Any) -> None:
    from nbformat.v4 import new_output

    outputs = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            line = _hidden_message(str(out.get("evalue", "")))
            outputs.append(new_output("error", ename=out.get("ename", "Error"), evalue=line,
                                      traceback=[f"{out.get('ename', 'Error')}: {line}"]))
    cell.outputs = outputs


def _make_feedback_preprocessor() -> type:
    from nbgrader.preprocessors import NbGraderPreprocessor

    class HideHiddenTracebacks(NbGraderPreprocessor):
        """Feedback preprocessor: a hidden test cell keeps only its failure's first line.

        Tracebacks quote the failing lines of a cell, and printed output may show values; both
        would leak hidden tests into the feedback.
        """

        def preprocess_cell(self, cell, resources, index):  # noqa: D102
            if cell.cell_type == "code" and HIDDEN_MARK in cell.source:
                _hide_in_cell(cell)
            return cell, resources

    return HideHiddenTracebacks


def __getattr__(name: str) -> Any:
    if name == "HideHiddenTracebacks":  # built on demand: nbgrader is slow to import
        cls = _make_feedback_preprocessor()
        globals()[name] = cls
        return cls
    raise AttributeError(name)
