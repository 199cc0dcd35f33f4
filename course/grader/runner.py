"""The runner: the only place student code runs when a notebook is graded.

Started by the parent inside the sandbox (``python -m course.grader.runner OUT``), it reads a
:class:`~course.grader.protocol.Job` from stdin, runs the notebook's setup cells and the student's
answer cells in an IPython shell, then calls each check's *scenario* against the student's objects
and writes what came back as transcript data into ``OUT``. It decides nothing: the judge, in the
parent, does. Whatever the student's code prints goes to ``/dev/null``.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from .protocol import Job


class _Timeout(BaseException):
    """Raised in the runner's main thread when a step overruns (BaseException: not caught by
    ``except Exception`` in student code or scenarios)."""


def _alarm(_signum: int, _frame: Any) -> None:
    raise _Timeout()


class _Writer:
    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self.progress = open(out / "progress.jsonl", "a", buffering=1)  # noqa: SIM115
        self.answers = open(out / "answers.jsonl", "a", buffering=1)  # noqa: SIM115
        self.entries = open(out / "entries.jsonl", "a", buffering=1)  # noqa: SIM115
        self.blob = open(out / "blob.bin", "ab", buffering=0)  # noqa: SIM115
        from ..checks._transcript import dumps, encode

        self._codec = (dumps, encode)  # captured before any answer runs

    def mark(self, **item: Any) -> None:
        self.progress.write(json.dumps(item) + "\n")

    def answer(self, grade_id: str, error: str | None) -> None:
        self.answers.write(json.dumps({"grade_id": grade_id, "error": error}) + "\n")

    def entry(self, key: str, check: str, status: str, record: Any = None, seconds: float = 0.0,
              note: str = "") -> None:
        dumps, encode = self._codec
        item: dict[str, Any] = {"key": key, "check": check, "status": status,
                                "seconds": round(seconds, 3), "note": note[:300]}
        if record is not None:
            doc, blob = encode(record)
            start = self.blob.tell()
            self.blob.write(blob)
            item["record"], item["blob"] = doc, [start, len(blob)]
        self.entries.write(dumps(item) + "\n")


def _silence() -> None:
    """Student output goes nowhere: nothing a runner prints is ever read."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)


def _not_dumpable() -> None:
    """Student code in this process cannot read the runner's memory through /proc."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass


def _shell() -> Any:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    cfg = Config()
    cfg.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=cfg)
    shell.user_ns["__name__"] = "__main__"
    return shell


def _run_cell(shell: Any, source: str, timeout: float) -> str | None:
    """Run one cell; the name of the exception it raised, or None."""
    signal.setitimer(signal.ITIMER_REAL, max(timeout, 1.0))
    try:
        result = shell.run_cell(source, store_history=False)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    error = result.error_before_exec or result.error_in_exec
    return type(error).__name__ if error is not None else None


def _resolve(invocations: list[dict[str, Any]]) -> dict[str, tuple[Any, str, dict[str, Any]]]:
    """Every check's scenario, captured before any answer runs: rebinding a check, its record
    method or its scenario afterwards changes nothing the runner calls."""
    found = {}
    for inv in invocations:
        module = importlib.import_module(f"course.checks.{inv['module']}")
        check = getattr(module, inv["function"])
        found[inv["key"]] = (check.scenario, check.exercise, check.scenario_options(inv["options"]))
    return found


def _scenario(shell: Any, inv: dict[str, Any], captured: tuple[Any, str, dict[str, Any]],
              timeout: float, run_scenario: Any = None) -> tuple[str, Any]:
    missing = [name for name in inv["answers"] if name not in shell.user_ns]
    if missing:
        return "missing", None
    answers = [shell.user_ns[name] for name in inv["answers"]]
    scenario, exercise, options = captured
    signal.setitimer(signal.ITIMER_REAL, max(timeout, 1.0))
    try:
        record = run_scenario(scenario, exercise, answers, options)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return "ok", record


def run(job: Job, out: Path) -> None:
    from ..checks._core import run_scenario

    writer = _Writer(out)
    signal.signal(signal.SIGALRM, _alarm)
    captured = _resolve(job.invocations)
    entry, mark, answer = writer.entry, writer.mark, writer.answer  # bound now, before answers run
    shell = _shell()
    for i, source in enumerate(job.setup):
        mark(start=f"setup:{i}")
        try:
            _run_cell(shell, source, job.answer_timeout)
        except _Timeout:
            pass
        mark(end=f"setup:{i}")
    for grade_id, source in job.answers:
        if grade_id in job.skip_answers:
            continue
        mark(start=f"answer:{grade_id}")
        try:
            error = _run_cell(shell, source, job.answer_timeout)
        except _Timeout:
            error = "TimeoutError"
        answer(grade_id, error)
        mark(end=f"answer:{grade_id}")
    for inv in job.invocations:
        key, check = inv["key"], f"{inv['module']}.{inv['function']}"
        mark(start=f"check:{key}")
        start = time.monotonic()
        try:
            status, record = _scenario(shell, inv, captured[key], job.check_timeout, run_scenario)
        except _Timeout:
            status, record = "timeout", None
        except Exception as exc:  # noqa: BLE001 - e.g. the check module itself was broken
            status, record = "error", None
            entry(key, check, status, None, time.monotonic() - start, type(exc).__name__)
            mark(end=f"check:{key}")
            continue
        entry(key, check, status, record, time.monotonic() - start)
        mark(end=f"check:{key}")
    mark(done=True)


def main() -> None:
    out = Path(sys.argv[1])
    job = Job.from_json(sys.stdin.read())
    sys.stdin.close()
    _not_dumpable()
    _silence()
    workdir = Path(sys.argv[2]) if len(sys.argv) > 2 else out.parent / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    run(job, out)
    sys.stdout.flush()
    os._exit(0)  # do not wait on threads or atexit handlers the student's code left behind


if __name__ == "__main__":
    main()
