"""The judge: decides every test from transcripts, in a process where no student code ever ran.

It reads the runner's transcript (JSON and tensor bytes, see ``course.checks._transcript``),
looks up each test cell's checks in the instructor's source, applies the delegation rules to the
answer cells' *text*, and runs each check's verdict, which computes PyTorch's reference itself.
A missing, garbled or forged transcript costs exactly the tests it concerns.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .cells import Invocation, answer_sources

__all__ = ["Entry", "TestVerdict", "judge_invocation", "judge_tests", "resolve_check"]


@dataclass
class Entry:
    """One transcript entry as the runner reported it (untrusted until judged)."""

    key: str
    check: str
    status: str  # ok | missing | crashed | timeout | error
    record: Any = None  # decoded record, or None
    note: str = ""
    seconds: float = 0.0


@dataclass
class TestVerdict:
    grade_id: str
    points: float
    max_points: float
    passed: bool
    hidden: bool
    message: str = ""


def resolve_check(inv: Invocation) -> Any:
    """The :class:`~course.checks._core.Check` a test cell names (trusted: from the source)."""
    from ..checks._core import Check

    module = importlib.import_module(f"course.checks.{inv.module}")
    found = getattr(module, inv.function, None)
    if not isinstance(found, Check):
        raise LookupError(f"course.checks.{inv.module}.{inv.function} is not a check")
    return found


_STATUS = {
    "missing": "{name} is not defined: define it in its answer cell and do not rename it",
    "crashed": "the check stopped because the grading process died while it ran your code "
               "(for example os._exit, a crash in native code, or running out of memory)",
    "timeout": "the check ran longer than its time limit and was stopped: look for an endless "
               "loop, or work that is far slower than it needs to be",
    "skipped": "not run: an earlier problem in this notebook stopped grading",
}


def judge_invocation(inv: Invocation, entry: Entry | None, answers: Mapping[str, str],
                     preamble: tuple[str, ...] = (), exercises: frozenset[str] = frozenset()) -> str | None:
    """None when this check call passes; otherwise the message for the student."""
    from ..checks._core import CheckFailure
    from ..checks._guards import findings_for_source, torch_names

    check = resolve_check(inv)
    options = dict(inv.options)
    hidden = bool(options.get("hidden", False))
    if entry is None:
        return (f"{check.exercise}: the grader got no result for this check (the notebook "
                "stopped before it ran)")
    if entry.check != inv.check:
        return f"{check.exercise}: the grader's record of this check does not match the test"
    if entry.status != "ok":
        template = _STATUS.get(entry.status, "the check could not run")
        text = template.format(name=", ".join(inv.answers))
        return f"{check.exercise}: {text}" if entry.status != "missing" else text
    findings: list[str] = []
    if check.delegation is not None:
        findings = findings_for_source(check.delegation, answer_sources(dict(answers), inv.answers,
                                                                      exercises - set(inv.answers)),
                                       torch_names(preamble))
    try:
        check.judge(entry.record, options, findings)
    except CheckFailure as failure:
        return str(failure) if not hidden else failure.concept
    return None


def judge_tests(invs: list[Invocation], entries: Mapping[str, Entry], answers: Mapping[str, str],
                points: Mapping[str, float], preamble: tuple[str, ...] = ()) -> list[TestVerdict]:
    """One verdict per test cell (in source order): passed when every check call in it passes."""
    out: dict[str, TestVerdict] = {}
    for gid, pts in points.items():
        out[gid] = TestVerdict(gid, float(pts), float(pts), True, False)
    exercises = frozenset(name for inv in invs for name in inv.answers)
    cycles = _cycles(exercises, answers)
    for inv in invs:
        verdict = out[inv.test]
        verdict.hidden = verdict.hidden or inv.hidden
        if not verdict.passed:
            continue  # the first failure of a test cell is its message, as in a notebook
        looped = [cycles[name] for name in inv.answers if name in cycles]
        message = looped[0] if looped else judge_invocation(inv, entries.get(inv.key()), answers,
                                                            preamble, exercises)
        if message is not None:
            verdict.passed, verdict.points, verdict.message = False, 0.0, message
    return list(out.values())


def _cycles(exercises: frozenset[str], answers: Mapping[str, str]) -> dict[str, str]:
    """Exercises whose answers call each other in a loop, with the message for each.

    Each exercise's scenario runs with a correct version of the others it calls (a mistake is
    charged once); answers that only work through one another would pass that way and fail in
    the student's own kernel, so a loop fails every exercise on it.
    """
    from .cells import definition_of, free_names

    uses: dict[str, set[str]] = {}
    for name in exercises:
        text = next(filter(None, (definition_of(t, name) for t in answers.values())), None)
        uses[name] = (free_names(text) & exercises) - {name} if text else set()
    found: dict[str, str] = {}
    for start in exercises:
        stack, seen = [(start, (start,))], set()
        while stack:
            node, path = stack.pop()
            for nxt in uses.get(node, ()):
                if nxt == start:
                    loop = " → ".join((*path, start))
                    found[start] = (f"{start} and the exercises it calls form a loop ({loop}): each "
                                    "answer must work on its own, without calling back into another")
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, (*path, nxt)))
    return found
