"""The machinery of 09_schedulers' checks: driving a scheduler, recording and judging LRs.

The scenario drives the student's scheduler on an optimizer with several param groups the standard
way (``optimizer.step()`` then ``scheduler.step()``) and records every group's lr at every epoch,
and the warnings torch's scheduler machinery raised. The resume scenarios construct the scheduler
with ``last_epoch`` on an optimizer restored from a checkpoint, and carry ``state_dict()`` (copied,
as a save does) into a fresh scheduler. The verdict runs torch's scheduler itself and names the
first epoch and group where the two part.
"""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import lr_scheduler as _L

from .._core import Check, CheckFailure, Delegation, Raised, attempt, check_device, expect, require
from .._guards import tripwire

__all__ = ["Case", "ResumeCase", "resume_check", "sequence_check"]

_isclose = math.isclose
_REFERENCES = [c for c in vars(_L).values() if inspect.isclass(c) and c.__module__ == _L.__name__
               and c.__name__ not in ("LRScheduler", "_LRScheduler")
               and (issubclass(c, _L.LRScheduler) or c.__name__ == "ReduceLROnPlateau")]
_HINT = ("Subclass torch.optim.lr_scheduler.LRScheduler, store your arguments, call "
         "super().__init__(optimizer, last_epoch) and write get_lr() yourself; torch's own "
         "schedulers are what yours is checked against.")
_DELEGATION = Delegation(_HINT, names=frozenset(c.__name__ for c in _REFERENCES))
# What torch's LRScheduler says when a scheduler is misused (stepped with an epoch, get_lr() called
# outside step(), optimizer.step() skipped). Other warnings (a student's own, deprecations) are
# shown, never judged.
_MISUSE = ("The epoch parameter in `scheduler.step()`", "please use `get_last_lr()`",
           "before `optimizer.step()`", "`optimizer.step()` has been overridden")


def _trip_targets() -> list[tuple[Any, str]]:
    return [(c, n) for c in _REFERENCES for n in ("__init__", "get_lr", "_get_closed_form_lr", "step")
            if n in vars(c)]


Case = tuple[list[float], dict[str, Any], int, str]  # group lrs, constructor kwargs, epochs, concept


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_fmt(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    return getattr(value, "__name__", None) or repr(value) if callable(value) else repr(value)


def _call(name: str, kw: dict[str, Any]) -> str:
    return f"{name}({', '.join(['optimizer'] + [f'{k}={_fmt(v)}' for k, v in kw.items()])})"


def _optimizer(lrs: list[float], device: Any = "cpu") -> torch.optim.Optimizer:
    params = [torch.zeros(2, device=device, requires_grad=True) for _ in lrs]
    return torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs, strict=True)],
                           lr=lrs[0], momentum=0.9)


def _epoch(opt: torch.optim.Optimizer) -> None:
    for g in opt.param_groups:
        for p in g["params"]:
            p.grad = torch.ones_like(p)
    opt.step()


def _drive_ref(opt: torch.optim.Optimizer, sched: Any, epochs: int) -> list[list[float]]:
    """torch's LRs (per group) after construction and after each of ``epochs`` epochs."""
    seq = [[float(g["lr"]) for g in opt.param_groups]]
    for _ in range(epochs):
        _epoch(opt)
        sched.step()
        seq.append([float(g["lr"]) for g in opt.param_groups])
    return seq


# --- scenario: runs the student's scheduler --------------------------------------------------------

def _facts(cls: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {"is_class": inspect.isclass(cls)}
    if facts["is_class"]:
        try:
            facts["is_scheduler"] = bool(issubclass(cls, _L.LRScheduler))
        except Exception:  # noqa: BLE001 - a metaclass may do anything
            facts["is_scheduler"] = False
        try:
            facts["signature"] = [[p.name, p.default is not inspect.Parameter.empty,
                                   None if p.default is inspect.Parameter.empty else p.default]
                                  for p in inspect.signature(cls).parameters.values()
                                  if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
        except (TypeError, ValueError):
            facts["signature"] = None
    return facts


def _drive(opt: torch.optim.Optimizer, sched: Any, epochs: int, out: dict[str, Any]) -> bool:
    """Record the student's LRs per epoch into ``out["lrs"]``; False when their code raised."""
    out["lrs"].append([g["lr"] for g in opt.param_groups])
    for e in range(epochs):
        done = attempt(_epoch, opt, call=f"optimizer.step() with the lrs your scheduler set (epoch {e})")
        if not isinstance(done, Raised):
            done = attempt(sched.step, call=f"scheduler.step() (epoch {e} → {e + 1})")
        if isinstance(done, Raised):
            out["error"] = done
            return False
        out["lrs"].append([g["lr"] for g in opt.param_groups])
    return True


def _record(fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    out: dict[str, Any] = {"lrs": [], "error": None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tripwire(_trip_targets()):
            fn(out)
    out["warnings"] = [[type(w.message).__name__, str(w.message)[:300]] for w in caught]
    return out


def _fresh(name: str, cls: Any, lrs: list[float], kw: dict[str, Any], epochs: int,
           device: Any) -> dict[str, Any]:
    def go(out: dict[str, Any]) -> None:
        opt = _optimizer(lrs, device)
        sched = attempt(cls, opt, **kw, call=_call(name, kw))
        if isinstance(sched, Raised):
            out["error"] = sched
        else:
            _drive(opt, sched, epochs, out)

    return _record(go)


def _resumed(name: str, cls: Any, lrs: list[float], kw: dict[str, Any], k: int, epochs: int,
             ref: type, device: Any) -> dict[str, Any]:
    first = _optimizer(lrs, device)  # the checkpoint: torch's schedule run for k epochs
    _drive_ref(first, ref(first, **kw), k)
    checkpoint = first.state_dict()

    def go(out: dict[str, Any]) -> None:
        opt = _optimizer(lrs, device)
        opt.load_state_dict(checkpoint)
        sched = attempt(cls, opt, **kw, last_epoch=k, call=_call(name, {**kw, "last_epoch": k}))
        if isinstance(sched, Raised):
            out["error"] = sched
        else:
            _drive(opt, sched, epochs, out)

    return _record(go)


def _round_trip(name: str, cls: Any, lrs: list[float], kw: dict[str, Any], k: int, epochs: int,
                device: Any) -> dict[str, Any]:
    def go(out: dict[str, Any]) -> None:
        opt = _optimizer(lrs, device)
        sched = attempt(cls, opt, **kw, call=_call(name, kw))
        if isinstance(sched, Raised):
            out["error"] = sched
            return
        if not _drive(opt, sched, k, out):
            return
        saved = attempt(lambda: copy.deepcopy(sched.state_dict()),
                        call=f"{name}.state_dict() after {k} epochs (then copied, as a save does)")
        opt2 = _optimizer(lrs, device)
        sched2 = saved if isinstance(saved, Raised) else attempt(cls, opt2, **kw, call=_call(name, kw))
        if not isinstance(sched2, Raised):
            opt2.load_state_dict(opt.state_dict())
            loaded = attempt(sched2.load_state_dict, saved,
                             call=f"{name}.load_state_dict(saved) on a fresh {name}")
            sched2 = loaded if isinstance(loaded, Raised) else sched2
        if isinstance(sched2, Raised):
            out["error"] = sched2
            return
        tail: dict[str, Any] = {"lrs": [], "error": None}
        _drive(opt2, sched2, epochs, tail)
        out["lrs"] += tail["lrs"][1:]
        out["error"] = tail["error"]

    return _record(go)


# --- verdict: torch's schedule, computed here ------------------------------------------------------

def _same_default(got: Any, want: Any) -> bool:
    return type(got) in (int, float, bool) and got == want


def _judge_facts(facts: Any, name: str, ref: type, hidden: bool) -> None:
    require(isinstance(facts, dict), f"the grader got no usable result for {name}")
    require(facts.get("is_class") is True, f"{name} must be a class (class {name}(LRScheduler))",
            hidden=hidden)
    require(facts.get("is_scheduler") is True,
            f"{name} must subclass torch.optim.lr_scheduler.LRScheduler (it provides step(), "
            "get_last_lr(), base_lrs, last_epoch and state_dict())", hidden=hidden)
    want = [(p.name, p.default) for p in inspect.signature(ref).parameters.values()]
    got = facts.get("signature")
    ok = isinstance(got, list) and len(got) >= len(want) and all(
        isinstance(g, list) and len(g) == 3 and g[0] == n
        and (g[1] is False if d is inspect.Parameter.empty else g[1] is True and _same_default(g[2], d))
        for g, (n, d) in zip(got, want, strict=False))
    shown = ", ".join(n if d is inspect.Parameter.empty else f"{n}={d!r}" for n, d in want)
    require(ok, f"{name}'s constructor must take torch's arguments, in the same order and with the "
            "same defaults", f"expected {name}({shown})", hidden)


def _number(value: Any) -> float | None:
    if type(value) in (int, float):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point():
        return float(value.detach().cpu().reshape(()))
    return None


def _matches(a: float, b: float) -> bool:
    return _isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


def _compare(name: str, got: list[list[float]], want: list[list[float]], concept: str, setting: str,
             hidden: bool, *, off_by_one: str, start: int = 0) -> None:
    """Raise at the first epoch and group where the LRs differ, with a diagnosis."""
    for e, (row_g, row_w) in enumerate(zip(got, want, strict=False)):
        for i, (g, w) in enumerate(zip(row_g, row_w, strict=True)):
            if _matches(g, w):
                continue
            col_g, col_w = [r[i] for r in got], [r[i] for r in want]
            shifted = any(all(_matches(col_g[k], col_w[k + s]) for k in range(len(col_g))
                              if 0 <= k + s < len(col_w)) for s in (-1, 1))
            group0_ok = all(_matches(r[0], q[0]) for r, q in zip(got, want, strict=False))
            if i > 0 and group0_ok:
                why = ("every param group must be scheduled, each from its own initial lr "
                       f"(base_lrs[i]){' and with its own lambda when a list of lambdas is given' if name == 'LambdaLR' else ''}")
            elif shifted:
                why = f"off by one epoch: {off_by_one}"
            else:
                why = concept
            show = [round(v, 8) for v in col_w[max(0, e - 2):e + 3]]
            yours = [round(v, 8) for v in col_g[max(0, e - 2):e + 3]]
            raise CheckFailure(why, f"with {setting}, param group {i}: at epoch {start + e} "
                               f"(last_epoch={start + e}) torch's lr is {w:.8g}, yours is {g:.8g}; "
                               f"around it torch has {show}, yours {yours}", hidden)


def _judge(name: str, run: Any, want: list[list[float]], concept: str, setting: str, hidden: bool,
           *, off_by_one: str, start: int = 0) -> None:
    require(isinstance(run, dict) and isinstance(run.get("lrs"), list),
            f"the grader got no usable result for {name}", hidden=hidden)
    got: list[list[float]] = []
    for row in run["lrs"]:
        values = [_number(v) for v in row] if isinstance(row, list) else [None]
        require(len(values) == len(want[0]) and None not in values,
                f"{name}.get_lr() must return a list of numbers, one lr per param group",
                f"with {setting}, the param groups' lrs became {row!r:.120}", hidden)
        got.append(values)  # type: ignore[arg-type]
    _compare(name, got, want, concept, setting, hidden, off_by_one=off_by_one, start=start)
    misuse = [m for c, m in run.get("warnings") or [] if isinstance(m, str) and any(s in m for s in _MISUSE)]
    require(not misuse, f"{name} must run without warnings from torch's scheduler machinery when used "
            "the standard way (optimizer.step(), then scheduler.step()): do not override step() to "
            "pass it an epoch, and do not call get_lr() yourself",
            f"with {setting}: {misuse[0][:200]}" if misuse else None, hidden)
    expect(run.get("error"), name, concept, hidden=hidden)
    require(len(got) == len(want), f"{name} stopped before the end of the run ({setting})",
            hidden=hidden)


def sequence_check(check: str, name: str, ref: type, cases: Callable[[bool, int], list[Case]],
                   off_by_one: str) -> Check:
    """The check that ``name`` gives torch's LRs at every epoch of fresh runs (``cases``)."""
    def scenario(cls: Any, *, thorough: bool = False, seed: int = 0) -> dict[str, Any]:
        facts = _facts(cls)
        if not facts["is_class"]:
            return {"facts": facts}
        device = check_device()
        return {"facts": facts, "runs": [_fresh(name, cls, lrs, kw, epochs, device)
                                         for lrs, kw, epochs, _ in cases(thorough, seed)]}

    def verdict(data: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
        require(isinstance(data, dict), f"the grader got no usable result for {name}", hidden=hidden)
        _judge_facts(data.get("facts"), name, ref, hidden)
        todo, runs = cases(thorough, seed), data.get("runs")
        require(isinstance(runs, list) and len(runs) == len(todo),
                f"the grader got no usable result for {name}", hidden=hidden)
        for (lrs, kw, epochs, concept), run in zip(todo, runs, strict=True):
            want = _drive_ref(opt := _optimizer(lrs), ref(opt, **kw), epochs)
            _judge(name, run, want, concept, f"{_call(name, kw)}; group lrs {lrs}", hidden,
                   off_by_one=off_by_one)

    return Check(check, name, scenario, verdict, _DELEGATION)


ResumeCase = tuple[list[float], dict[str, Any], int, int, str]  # lrs, kwargs, k, epochs, concept


def resume_check(check: str, name: str, ref: type,
                 cases: Callable[[bool, int], list[ResumeCase]]) -> Check:
    """The check that ``name`` resumes like torch: with ``last_epoch=k`` and through state_dict."""
    def scenario(cls: Any, *, thorough: bool = False, seed: int = 0) -> dict[str, Any]:
        facts = _facts(cls)
        if not facts["is_class"]:
            return {"facts": facts}
        device = check_device()
        return {"facts": facts, "runs": [
            {"resumed": _resumed(name, cls, lrs, kw, k, epochs, ref, device),
             "round_trip": _round_trip(name, cls, lrs, kw, k, epochs, device)}
            for lrs, kw, k, epochs, _ in cases(thorough, seed)]}

    def verdict(data: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
        require(isinstance(data, dict), f"the grader got no usable result for {name}", hidden=hidden)
        _judge_facts(data.get("facts"), name, ref, hidden)
        todo, runs = cases(thorough, seed), data.get("runs")
        require(isinstance(runs, list) and len(runs) == len(todo) and all(isinstance(r, dict) for r in runs),
                f"the grader got no usable result for {name}", hidden=hidden)
        for (lrs, kw, k, epochs, concept), run in zip(todo, runs, strict=True):
            first = _optimizer(lrs)
            _drive_ref(first, ref(first, **kw), k)
            opt = _optimizer(lrs)
            opt.load_state_dict(first.state_dict())
            want = _drive_ref(opt, ref(opt, **kw, last_epoch=k), epochs)
            _judge(name, run.get("resumed"), want, concept,
                   f"{_call(name, {**kw, 'last_epoch': k})}; group lrs {lrs}", hidden, start=k + 1,
                   off_by_one=f"{concept} (resuming with last_epoch=k, the constructor's own step "
                              "moves the schedule to epoch k + 1)")
            full = _drive_ref(opt := _optimizer(lrs), ref(opt, **kw), k + epochs)
            _judge(name, run.get("round_trip"), full,
                   f"{name}.state_dict() / load_state_dict() must carry everything the schedule "
                   "needs (keep it in attributes of the scheduler; the inherited methods save them)",
                   f"{_call(name, kw)}; group lrs {lrs}; state saved after {k} epochs and loaded "
                   f"into a fresh {name}", hidden,
                   off_by_one="after load_state_dict() the schedule must continue where it stopped")

    return Check(check, name, scenario, verdict, _DELEGATION)
