"""``course.self_check()``: every visible test of this notebook, run now, in this kernel.

The test cells are read from the saved notebook and run against the answers this kernel holds,
with the same scenarios and verdicts the grader's judge uses, so the messages are the ones the
grader would give. It is instant (no new process) and needs neither nbgrader nor a sandbox. For
the grader's exact view — a fresh process, the notebook as saved — run ``course grade PATH``.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["GRADING_ENV", "self_check"]

GRADING_ENV = "COURSE_GRADING"  # set in grading runners, where a self-check must not run


def _current_notebook() -> str | None:
    path = os.environ.get("JPY_SESSION_NAME")  # set by jupyter_server for each kernel
    if path and path.endswith(".ipynb"):
        return path
    try:
        from IPython import get_ipython

        shell = get_ipython()
        return shell.user_ns.get("__vsc_ipynb_file__") if shell else None  # VS Code
    except ImportError:
        return None


def _test_cells(path: Path) -> list[tuple[str, str, float]]:
    """(grade_id, source, points) of the notebook's test cells (nbgrader's grade cells)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "code" and meta.get("grade") and not meta.get("solution"):
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else str(source)
            found.append((str(meta.get("grade_id", "?")), source, float(meta.get("points", 0) or 0)))
    return found


def _run(source: str, ns: dict) -> str | None:
    from .checks import CheckFailure

    try:
        exec(compile(source, "<test cell>", "exec"), ns)  # noqa: S102 - the notebook's own test cell
    except CheckFailure as failure:
        return str(failure)
    except NameError as exc:
        return (f"{exc}: run the notebook's first cell and your answer cell first (and do not "
                "rename the function or class)")
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"
    return None


def self_check(path: str | None = None) -> dict[str, Any] | None:
    """Run the notebook's visible tests on this kernel's answers and show a table."""
    if os.environ.get(GRADING_ENV):
        return None
    path = path or _current_notebook()
    if path and not Path(path).is_file() and (Path.cwd() / Path(path).name).is_file():
        path = str(Path.cwd() / Path(path).name)  # the server gave a path relative to its root
    if not path or not Path(path).is_file():
        raise FileNotFoundError(
            "could not tell which notebook to check; pass its path, for example "
            "course.self_check('notebooks/02_tensors/02_tensors.ipynb')")
    from IPython import get_ipython

    shell = get_ipython()
    ns = shell.user_ns if shell is not None else {}
    tests = []
    for gid, source, points in _test_cells(Path(path)):
        message = _run(source, ns)
        tests.append({"grade_id": gid, "points": 0.0 if message else points, "max_points": points,
                      "passed": message is None, "message": message or ""})
    report = {"notebook": str(path), "score": sum(t["points"] for t in tests),
              "max_score": sum(t["max_points"] for t in tests), "tests": tests}
    _show(report)
    return report


def _show(report: dict) -> None:
    rows = []
    for t in report["tests"]:
        mark = "✅" if t["passed"] else "❌"
        msg = html.escape(t["message"]).replace("\n", "<br>") if t["message"] else ""
        rows.append(f"<tr><td>{mark}</td><td><code>{html.escape(t['grade_id'])}</code></td>"
                    f"<td>{t['points']:g} / {t['max_points']:g}</td>"
                    f"<td style='text-align:left'>{msg}</td></tr>")
    table = (f"<p><b>Score: {report['score']:g} / {report['max_score']:g}</b> (visible tests; "
             "the grader also runs hidden ones)</p>"
             "<table><tr><th></th><th>test</th><th>points</th><th>feedback</th></tr>"
             + "".join(rows) + "</table>")
    try:
        from IPython.display import HTML, display

        display(HTML(table))
    except ImportError:  # pragma: no cover - outside IPython
        for t in report["tests"]:
            print(("PASS " if t["passed"] else "FAIL ") + t["grade_id"], t["message"])
