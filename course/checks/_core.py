"""The checks' shared core: a check is a scenario (what is run) and a verdict (how it is judged).

* A **scenario** runs in the student's interpreter (in grading, inside the sandboxed runner). It
  builds inputs from a seed, calls the student's code through :func:`attempt`, and returns what
  came back as plain data: tensors, numbers, strings, lists, dicts, :class:`Raised` records. It
  never decides anything.
* A **verdict** runs wherever the verdict is made (in grading, the judge, a process where no
  student code ever ran). It receives the scenario's record after a trip through
  ``_transcript`` (no pickle: nothing it reads can run code), computes PyTorch's reference on
  inputs it builds itself from the same seed, compares, and raises :class:`CheckFailure` naming
  the concept the student missed.
* :class:`Check` joins the two. Calling it (``check.relu(relu)`` in a test cell) runs both in
  process, so a student's self-check gives the same messages as the instructor's grader.
"""

from __future__ import annotations

import contextvars
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from ._transcript import Opaque, Raised, roundtrip

__all__ = ["Check", "CheckFailure", "Opaque", "Raised", "attempt", "check_device", "expect",
           "note_evidence", "require", "same_tensor", "swapped_globals", "type_name"]

# Captured at import: the comparisons never look these names up on torch again.
_allclose = torch.allclose
_equal = torch.equal
_isnan = torch.isnan
_Tensor = torch.Tensor
_isinstance = isinstance
_repr = repr


class CheckFailure(AssertionError):
    """A check failed. ``concept`` says what to fix; ``detail`` shows the evidence.

    Hidden tests pass ``hidden=True``: the student then sees the concept, never the inputs or
    expected values.
    """

    def __init__(self, concept: str, detail: str | None = None, hidden: bool = False):
        self.concept = concept
        self.detail = None if hidden else detail
        self.hidden = hidden
        text = concept if self.detail is None else f"{concept}\n{textwrap.indent(self.detail, '  ')}"
        super().__init__(text)


def require(condition: bool, concept: str, detail: str | None = None, hidden: bool = False) -> None:
    """Raise :class:`CheckFailure` unless ``condition`` holds."""
    if not condition:
        raise CheckFailure(concept, detail, hidden)


def _short(value: Any, limit: int = 160) -> str:
    try:
        text = _repr(value)
    except Exception:  # noqa: BLE001 - a student's __repr__ may raise
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_name(value: Any) -> str:
    """What feedback calls the type of a recorded value (an ``Opaque`` record keeps the type the
    runner saw)."""
    return value.type if isinstance(value, Opaque) else type(value).__name__


def check_device() -> torch.device:
    """The device scenarios run on: ``$COURSE_DEVICE``, else cuda, mps, cpu (the course's one rule)."""
    from ..device import choose_device

    return choose_device().device


# --- scenario side -------------------------------------------------------------------------------

_EVIDENCE: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("evidence", default=None)


def note_evidence(text: str) -> None:
    """Record, during a scenario, that the answer did something only a delegating answer does."""
    found = _EVIDENCE.get()
    if found is not None and text not in found:
        found.append(text)


def _call_text(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    shown = [_short(a, 60) for a in args] + [f"{k}={_short(v, 60)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(shown)})"


def attempt(fn: Any, *args: Any, call: str | None = None, **kwargs: Any) -> Any:
    """Run the student's ``fn(*args, **kwargs)``; an exception becomes a :class:`Raised` record.

    ``call`` is how the call reads in feedback (default: the function's name and the arguments).
    """
    try:
        return _plain(fn(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - whatever the student's code raises is data here
        name = getattr(fn, "__name__", None) or type(fn).__name__
        text = call if call is not None else _call_text(str(name), args, kwargs)
        try:
            message = str(exc)
        except Exception:  # noqa: BLE001
            message = ""
        return Raised(text, type(exc).__name__, textwrap.shorten(message, 400) if message else "")


def _globals_of(obj: Any) -> list[dict]:
    found = []
    for value in [obj, *vars(obj).values()] if isinstance(obj, type) else [obj]:
        func = getattr(value, "__func__", value)
        g = getattr(func, "__globals__", None)
        if isinstance(g, dict) and all(g is not other for other in found):
            found.append(g)
    return found


@contextmanager
def swapped_globals(obj: Any, replacements: Mapping[str, Any]) -> Iterator[None]:
    """While active, names the student's ``obj`` looks up globally resolve to ``replacements``.

    A scenario uses this to run one exercise with a correct version of another (``Conv2d`` with the
    reference ``conv2d_output_shape``), so a mistake is charged once, to the exercise that made it.
    """
    saved = []
    for g in _globals_of(obj):
        for name, value in replacements.items():
            if name in g:
                saved.append((g, name, g[name]))
                g[name] = value
    try:
        yield
    finally:
        for g, name, value in reversed(saved):
            g[name] = value


def run_scenario(scenario: Callable[..., Any], exercise: str, answers: Sequence[Any],
                 options: Mapping[str, Any]) -> dict[str, Any]:
    """``{"data": ..., "evidence": [...]}``, or ``{"failed": Raised}`` when the scenario itself
    broke on what the answer did. The runner captures this function (and each scenario) before
    any answer runs, so rebinding them later changes nothing it calls."""
    evidence: list[str] = []
    token = _EVIDENCE.set(evidence)
    try:
        data = scenario(*answers, **options)
        return {"data": data, "evidence": evidence}
    except Exception as exc:  # noqa: BLE001 - a scenario must survive any answer
        return {"failed": Raised(exercise, type(exc).__name__, str(exc)[:400]), "evidence": evidence}
    finally:
        _EVIDENCE.reset(token)


def _plain(value: Any, depth: int = 0) -> Any:
    """Tensors the student returned, as plain tensors (still in the autograd graph): a subclass's
    ``__torch_function__`` never runs inside the scenario's own computations."""
    if isinstance(value, torch.Tensor) and type(value) is not torch.Tensor:
        with torch._C.DisableTorchFunction():
            return torch.Tensor.as_subclass(value, torch.Tensor)
    if depth < 4 and type(value) in (tuple, list):
        return type(value)(_plain(v, depth + 1) for v in value)
    if depth < 4 and type(value) is dict:
        return {k: _plain(v, depth + 1) for k, v in value.items()}
    return value


# --- verdict side ---------------------------------------------------------------------------------

def expect(value: Any, exercise: str, concept: str = "", *, hidden: bool = False) -> Any:
    """``value`` unless the student's code raised; then a failure that says where and why.

    ``concept`` names what the call probed (``"bias=False: a layer without a bias"``), so the
    student learns which idea the crash is about, not only the exception.
    """
    if not isinstance(value, Raised):
        return value
    if value.type == "NotImplementedError":
        raise CheckFailure(f"{exercise} is not implemented yet: replace `raise NotImplementedError()` "
                           "in its answer cell with your code, run that cell, then run this test again")
    head = f"{exercise} raised an exception"
    if concept:
        head += f" on a case that checks {concept}"
    raise CheckFailure(head, value.describe(), hidden)


@dataclass(frozen=True)
class Delegation:
    """What an answer may not use: the reference it is checked against, by name.

    ``names`` may not appear anywhere (as attributes, imported names or strings); ``attrs`` may not
    appear as attributes (``F.relu``) or strings. The judge applies these to the answer's source
    text (see ``_guards``); nothing here needs the student's objects.
    """

    hint: str
    names: frozenset[str] = frozenset()
    attrs: frozenset[str] = frozenset()
    bases: frozenset[str] = frozenset()  # classes an answer may not subclass (``nn.Linear``)


@dataclass
class Check:
    """One check: ``scenario`` (runs student code, returns data) + ``verdict`` (judges the data).

    ``name`` is ``"<module>.<function>"`` as test cells call it; ``exercise`` is what feedback
    calls the student's answer.
    """

    name: str
    exercise: str
    scenario: Callable[..., Any]
    verdict: Callable[..., None]
    delegation: Delegation | None = None
    options: tuple[str, ...] = ("thorough", "seed")
    __doc__: str | None = field(default=None, repr=False)

    def scenario_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in options.items() if k != "hidden"}

    def record(self, answers: Sequence[Any], options: Mapping[str, Any]) -> dict[str, Any]:
        """Run the scenario; always return a record, whatever the student's code does."""
        return run_scenario(self.scenario, self.exercise, answers, self.scenario_options(options))

    def judge(self, record: Any, options: Mapping[str, Any], findings: Sequence[str] = ()) -> None:
        """Decide from a decoded record; raise :class:`CheckFailure` when the answer is wrong."""
        from ._guards import delegation_failure

        __tracebackhide__ = True
        hidden = bool(options.get("hidden", False))
        if findings:
            raise delegation_failure(self, findings)
        if not isinstance(record, dict):
            raise CheckFailure(f"the grader got no usable result for {self.exercise}")
        evidence = record.get("evidence")
        if isinstance(evidence, list) and evidence:
            raise delegation_failure(self, [str(e) for e in evidence])
        if "failed" in record:
            failed = record["failed"]
            why = failed.describe() if isinstance(failed, Raised) else "it stopped"
            raise CheckFailure(f"{self.exercise} could not be checked to the end: the check's "
                               "scenario broke on what your code returned or did", why, hidden)
        try:
            self.verdict(record.get("data"), **options)
        except CheckFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - malformed data costs this test, never a crash
            raise CheckFailure(f"{self.exercise} returned something the check cannot read (not the "
                               "kind of value the exercise asks for)",
                               f"{type(exc).__name__}: {str(exc)[:200]}", hidden) from None

    def __call__(self, *answers: Any, **options: Any) -> None:
        """Run scenario and verdict here, in this interpreter (self-checks and the test suite)."""
        from ._guards import findings_for_objects

        __tracebackhide__ = True
        if options.pop("device", None) is not None:
            pass  # test cells once passed the notebook's device; scenarios pick it themselves
        record = roundtrip(self.record(answers, options))
        self.judge(record, options, findings_for_objects(self, answers))



def same_tensor(actual: Any, expected: torch.Tensor, what: str, *, hidden: bool = False,
                rtol: float = 1e-5, atol: float = 1e-6, concept: str | None = None) -> None:
    """Require a tensor with the expected shape, dtype, device and values (NaNs match NaNs)."""
    __tracebackhide__ = True
    require(_isinstance(actual, _Tensor), f"{what} must be a torch.Tensor, got {type_name(actual)}",
            hidden=hidden)
    require(tuple(actual.shape) == tuple(expected.shape),
            concept or f"{what} has the wrong shape",
            f"expected shape {tuple(expected.shape)}, got {tuple(actual.shape)}", hidden)
    require(actual.dtype == expected.dtype, f"{what} has the wrong dtype",
            f"expected {expected.dtype}, got {actual.dtype}", hidden)
    require(actual.device == expected.device, f"{what} is on the wrong device",
            f"expected {expected.device}, got {actual.device}; create results on the input's device",
            hidden)
    a, e = actual.detach(), expected.detach()
    if e.is_floating_point() or e.is_complex():
        nan_a, nan_e = _isnan(a), _isnan(e)
        ok = _equal(nan_a, nan_e) and _allclose(a.nan_to_num(0.0), e.nan_to_num(0.0), rtol=rtol, atol=atol)
    else:
        ok = _equal(a, e)
    if not ok:
        diff = (a.double() - e.double()).abs().nan_to_num(float("inf"))
        raise CheckFailure(concept or f"{what} has the wrong values",
                           f"largest difference {diff.max().item():.3g} "
                           f"(expected e.g. {_short(e.flatten()[:4].tolist())}, got "
                           f"{_short(a.flatten()[:4].tolist())})", hidden)
