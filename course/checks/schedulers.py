"""Checks for 09_schedulers: hand-written ``StepLR``, ``MultiStepLR``, ``LambdaLR`` and
``CosineAnnealingLR`` against ``torch.optim.lr_scheduler``.

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

from ._core import Check, CheckFailure, Delegation, Raised, attempt, check_device, expect, require
from ._guards import tripwire

__all__ = ["cosine_annealing_lr", "cosine_annealing_lr_resume", "lambda_lr", "lambda_lr_resume",
           "multi_step_lr", "multi_step_lr_resume", "step_lr", "step_lr_resume"]

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


def _sequence_check(name: str, ref: type, cases: Callable[[bool, int], list[Case]],
                    off_by_one: str) -> Check:
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

    return Check(f"schedulers.{_SNAKE[name]}", name, scenario, verdict, _DELEGATION)


ResumeCase = tuple[list[float], dict[str, Any], int, int, str]  # lrs, kwargs, k, epochs, concept


def _resume_check(name: str, ref: type, cases: Callable[[bool, int], list[ResumeCase]]) -> Check:
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

    return Check(f"schedulers.{_SNAKE[name]}_resume", name, scenario, verdict, _DELEGATION)


_SNAKE = {"StepLR": "step_lr", "MultiStepLR": "multi_step_lr", "LambdaLR": "lambda_lr",
          "CosineAnnealingLR": "cosine_annealing_lr"}

# --- StepLR ----------------------------------------------------------------------------------------

_STEP = ("StepLR multiplies the lr by gamma once every step_size epochs: "
         "lr = base_lr · gamma^(epoch // step_size)")


def _step_cases(thorough: bool, seed: int) -> list[Case]:
    size = int(torch.randint(2, 6, (1,), generator=torch.Generator().manual_seed(seed)))
    cases = [([0.1], {"step_size": 3}, 12, _STEP),
             ([0.1, 0.05, 1.0], {"step_size": size, "gamma": 0.5}, 4 * size + 3, _STEP)]
    if thorough:
        cases += [([0.3, 0.02], {"step_size": 1, "gamma": 0.9}, 15, _STEP),
                  ([0.1, 0.2, 0.4, 0.8], {"step_size": 7, "gamma": 0.3}, 40, _STEP)]
    return cases


step_lr = _sequence_check("StepLR", _L.StepLR, _step_cases, "StepLR first decays when last_epoch "
                          "reaches step_size (epochs 0 … step_size − 1 use base_lr)")
step_lr_resume = _resume_check("StepLR", _L.StepLR, lambda thorough, seed: [
    ([0.1, 0.3], {"step_size": 3, "gamma": 0.5}, k + seed % 2, 10, _STEP)
    for k in [5, 8] + ([2, 11] if thorough else [])])

# --- MultiStepLR -----------------------------------------------------------------------------------

_MULTI = ("MultiStepLR multiplies the lr by gamma at every milestone: lr = base_lr · gamma^(number of "
          "milestones ≤ epoch); milestones may be given in any order, and one listed twice decays twice")


def _multi_cases(thorough: bool, seed: int) -> list[Case]:
    first = int(torch.randint(2, 5, (1,), generator=torch.Generator().manual_seed(seed)))
    cases = [([0.1], {"milestones": [first, 7, 12]}, 16, _MULTI),
             ([0.1, 0.5, 0.02], {"milestones": [10, 4], "gamma": 0.5}, 14, _MULTI)]
    if thorough:
        cases += [([0.2, 0.1], {"milestones": (3, 3, 8), "gamma": 0.5}, 12, _MULTI),
                  ([0.1, 1.0, 0.3], {"milestones": [15, 1, 9, 5], "gamma": 0.7}, 20, _MULTI)]
    return cases


multi_step_lr = _sequence_check("MultiStepLR", _L.MultiStepLR, _multi_cases, "MultiStepLR decays "
                                "AT the milestone epoch: epoch m already uses the decayed lr")
multi_step_lr_resume = _resume_check("MultiStepLR", _L.MultiStepLR, lambda thorough, seed: [
    ([0.1, 0.4], {"milestones": [4, 8, 10], "gamma": 0.5}, k + seed % 2, 8, _MULTI)
    for k in [3, 6] + ([1, 9] if thorough else [])])

# --- LambdaLR --------------------------------------------------------------------------------------

_LAMBDA = ("LambdaLR sets lr = base_lr · lr_lambda(epoch): it scales the INITIAL lr of each group "
           "(self.base_lrs), never the current one, so factors do not compound")


def _warmup(epoch: int) -> float:
    return min(1.0, (epoch + 1) / 4)


def _decay(epoch: int) -> float:
    return 0.9 ** epoch


def _wave(epoch: int) -> float:
    return 1.0 + 0.5 * math.sin(epoch)


def _lambda_cases(thorough: bool, seed: int) -> list[Case]:
    cases = [([0.1], {"lr_lambda": _decay}, 10, _LAMBDA),
             ([0.1, 0.5], {"lr_lambda": _warmup}, 8, _LAMBDA),
             ([0.1, 0.5, 0.2], {"lr_lambda": [_warmup, _decay, _wave]}, 12,
              "with a list, param group i uses lr_lambda[i] (one lambda per param group): "
              "lr_i = base_lrs[i] · lr_lambda[i](epoch)")]
    if thorough:
        rate = 0.8 + 0.05 * (seed % 3)
        cases += [([0.3, 0.03], {"lr_lambda": (lambda e: rate ** (e // 2), _wave)}, 15, _LAMBDA),
                  ([0.2, 0.1, 0.4], {"lr_lambda": lambda e: 1.0 / (1 + e)}, 20, _LAMBDA)]
    return cases


lambda_lr = _sequence_check("LambdaLR", _L.LambdaLR, _lambda_cases, "use lr_lambda(self.last_epoch):"
                            " epoch 0 (right after construction) uses lr_lambda(0)")
lambda_lr_resume = _resume_check("LambdaLR", _L.LambdaLR, lambda thorough, seed: [
    ([0.1, 0.4], {"lr_lambda": [_warmup, _wave]}, k + seed % 2, 8, _LAMBDA)
    for k in [3, 7] + ([0, 12] if thorough else [])])

# --- CosineAnnealingLR -----------------------------------------------------------------------------

_COS = ("CosineAnnealingLR follows half a cosine period over T_max epochs: lr = eta_min + (base_lr − "
        "eta_min) · (1 + cos(π · epoch / T_max)) / 2, from base_lr down to eta_min")
_COS_MIN = ("eta_min is the floor of the schedule: lr = eta_min + (base_lr − eta_min) · "
            "(1 + cos(π · epoch / T_max)) / 2, so the lr ends at eta_min, not at 0")
_COS_AFTER = ("after T_max epochs the cosine goes on: the lr climbs back towards base_lr over the next "
              "T_max epochs (a full period is 2·T_max); do not clamp it or restart it")
_COS_RESUME = ("resumed with last_epoch=k, torch's CosineAnnealingLR keeps the optimizer's current lr "
               "during the constructor's step and then applies its recursive formula to the current "
               "lr at every step; a closed form computed from base_lrs gives other values here")


def _cos_cases(thorough: bool, seed: int) -> list[Case]:
    t_max = 8 + seed % 5
    cases = [([0.1], {"T_max": t_max}, t_max, _COS),
             ([0.1, 0.5], {"T_max": t_max, "eta_min": 0.01}, t_max, _COS_MIN),
             ([0.1], {"T_max": t_max}, 3 * t_max + 2, _COS_AFTER),
             ([0.1, 0.5, 0.02], {"T_max": 5, "eta_min": 0.001}, 13, _COS)]
    if thorough:
        cases += [([1.0, 0.2], {"T_max": 1, "eta_min": 0.05}, 6, _COS_AFTER),
                  ([0.3, 0.1, 0.05], {"T_max": 20, "eta_min": 0.002}, 50, _COS)]
    return cases


cosine_annealing_lr = _sequence_check("CosineAnnealingLR", _L.CosineAnnealingLR, _cos_cases,
                                      "epoch 0 (right after construction) must use base_lr; epoch "
                                      "T_max reaches eta_min")
cosine_annealing_lr_resume = _resume_check("CosineAnnealingLR", _L.CosineAnnealingLR, lambda thorough, seed: [
    ([0.1, 0.4], {"T_max": 10, "eta_min": 0.01}, k + seed % 2, 14, _COS_RESUME)
    for k in [4, 9] + ([1, 15] if thorough else [])])
