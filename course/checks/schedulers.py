"""Checks for 09_schedulers: hand-written ``StepLR``, ``MultiStepLR``, ``LambdaLR`` and
``CosineAnnealingLR`` against ``torch.optim.lr_scheduler``.

Each scheduler drives an optimizer with several param groups the standard way
(``optimizer.step()`` then ``scheduler.step()``) next to PyTorch's; the learning rates must match
at every epoch, for every group, with no warning. The resume checks construct the scheduler with
``last_epoch`` on an optimizer restored from a checkpoint, and round-trip ``state_dict()``.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import math
import textwrap
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch.optim import lr_scheduler as _L

from ._core import CheckFailure, forbid_delegation, require, tripwire

__all__ = ["cosine_annealing_lr", "cosine_annealing_lr_resume", "lambda_lr", "lambda_lr_resume",
           "multi_step_lr", "multi_step_lr_resume", "step_lr", "step_lr_resume"]

_isclose = math.isclose
_REFERENCES = [c for c in vars(_L).values() if inspect.isclass(c) and c.__module__ == _L.__name__
               and c.__name__ not in ("LRScheduler", "_LRScheduler")
               and (issubclass(c, _L.LRScheduler) or c.__name__ == "ReduceLROnPlateau")]
_NAMES = {c.__name__ for c in _REFERENCES}
_HINT = ("Subclass torch.optim.lr_scheduler.LRScheduler, store your arguments, call "
         "super().__init__(optimizer, last_epoch) and write get_lr() yourself; torch's own "
         "schedulers are what yours is checked against.")

def _trip_targets() -> list[tuple[Any, str]]:
    return [(c, n) for c in _REFERENCES for n in ("__init__", "get_lr", "_get_closed_form_lr", "step")
            if n in vars(c)]


def _guard_class(cls: Any, name: str, ref: type) -> None:
    __tracebackhide__ = True
    require(inspect.isclass(cls), f"{name} must be a class (class {name}(LRScheduler))",
            f"got {type(cls).__name__}")
    forbid_delegation(cls, [], name, _HINT, references=_REFERENCES)
    require(issubclass(cls, _L.LRScheduler),
            f"{name} must subclass torch.optim.lr_scheduler.LRScheduler (it provides step(), "
            "get_last_lr(), base_lrs, last_epoch and state_dict())", f"its bases are {cls.__bases__}")
    used: set[str] = set()
    for klass in cls.__mro__:
        if klass is object or klass.__module__.split(".")[0] == "torch":
            continue
        for value in vars(klass).values():
            fn = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if not inspect.isfunction(fn):
                continue
            try:
                tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(fn))))
            except (OSError, TypeError, SyntaxError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and node.attr in _NAMES:
                    used.add(node.attr)
                elif isinstance(node, ast.Constant) and node.value in _NAMES:
                    used.add(node.value)
    require(not used, f"{name} delegates to the PyTorch reference it is checked against; that earns "
            f"no credit. {_HINT}", f"its code uses: {', '.join(sorted(used))}")
    want = [(p.name, p.default) for p in inspect.signature(ref).parameters.values()]
    got = [(p.name, p.default) for p in inspect.signature(cls).parameters.values()
           if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    shown = ", ".join(n if d is inspect.Parameter.empty else f"{n}={d!r}" for n, d in want)
    require(got[:len(want)] == want, f"{name}'s constructor must take torch's arguments, in the same "
            "order and with the same defaults", f"expected {name}({shown})")


@contextlib.contextmanager
def _student(name: str) -> Iterator[list[warnings.WarningMessage]]:
    """Run student code: stubs and crashes become readable failures; warnings are recorded."""
    __tracebackhide__ = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with tripwire(_trip_targets(), name, _HINT):
                yield caught
        except NotImplementedError:
            raise CheckFailure(f"{name} is not implemented yet: replace `raise NotImplementedError()` "
                               "in its answer cell with your code (get_lr() too), run that cell, then "
                               "run this test again") from None
        except CheckFailure:
            raise
        except Exception as exc:
            raise CheckFailure(f"{name} raised {type(exc).__name__}: {exc}") from None


def _optimizer(lrs: list[float]) -> torch.optim.Optimizer:
    params = [torch.zeros(2, requires_grad=True) for _ in lrs]
    return torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs, strict=True)],
                           lr=lrs[0], momentum=0.9)


def _drive(opt: torch.optim.Optimizer, sched: Any, epochs: int) -> list[list[float]]:
    """LRs (per group) after construction and after each of ``epochs`` steps, used correctly."""
    seq = [[float(g["lr"]) for g in opt.param_groups]]
    for _ in range(epochs):
        for g in opt.param_groups:
            for p in g["params"]:
                p.grad = torch.ones_like(p)
        opt.step()
        sched.step()
        seq.append([float(g["lr"]) for g in opt.param_groups])
    return seq


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_fmt(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    return getattr(value, "__name__", None) or repr(value) if callable(value) else repr(value)


def _matches(a: float, b: float) -> bool:
    return _isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


def _compare(name: str, got: list[list[float]], want: list[list[float]], concept: str, setting: str,
             hidden: bool, *, off_by_one: str, start: int = 0) -> None:
    """Raise at the first epoch and group where the LRs differ, with a diagnosis."""
    __tracebackhide__ = True
    for e, (row_g, row_w) in enumerate(zip(got, want, strict=True)):
        for i, (g, w) in enumerate(zip(row_g, row_w, strict=True)):
            if _matches(g, w):
                continue
            col_g, col_w = [r[i] for r in got], [r[i] for r in want]
            shifted = any(all(_matches(col_g[k], col_w[k + s]) for k in range(len(col_g))
                              if 0 <= k + s < len(col_w)) for s in (-1, 1))
            group0_ok = all(_matches(r[0], q[0]) for r, q in zip(got, want, strict=True))
            if i > 0 and group0_ok:
                why = (f"every param group must be scheduled, each from its own initial lr "
                       f"(base_lrs[i]){'' if name != 'LambdaLR' else ' and with its own lambda when a list of lambdas is given'}")
            elif shifted:
                why = f"off by one epoch: {off_by_one}"
            else:
                why = concept
            show = [round(v, 8) for v in col_w[max(0, e - 2):e + 3]]
            yours = [round(v, 8) for v in col_g[max(0, e - 2):e + 3]]
            raise CheckFailure(why, f"with {name}({setting}), param group {i}: at epoch {start + e} "
                               f"(last_epoch={start + e}) torch's lr is {w:.8g}, yours is {g:.8g}; "
                               f"around it torch has {show}, yours {yours}", hidden)


def _no_warnings(name: str, caught: list[warnings.WarningMessage], hidden: bool) -> None:
    __tracebackhide__ = True
    require(not caught, f"{name} must run without warnings when used the standard way "
            "(optimizer.step(), then scheduler.step()); do not override step() or call get_lr() "
            "yourself", f"warning: {str(caught[0].message)[:200]}" if caught else None, hidden)


def _sequence(name: str, cls: Any, ref: type, cases: list[tuple[list[float], dict[str, Any], int, str]],
              *, hidden: bool, off_by_one: str) -> None:
    """Fresh runs: ``cases`` are (group lrs, constructor kwargs, epochs, concept)."""
    __tracebackhide__ = True
    for lrs, kw, epochs, concept in cases:
        want = _drive(opt := _optimizer(lrs), ref(opt, **kw), epochs)
        with _student(name) as caught:
            opt = _optimizer(lrs)
            got = _drive(opt, cls(opt, **kw), epochs)
        setting = ", ".join(["optimizer"] + [f"{k}={_fmt(v)}" for k, v in kw.items()])
        _no_warnings(name, caught, hidden)
        _compare(name, got, want, concept, setting + f"; group lrs {lrs}", hidden, off_by_one=off_by_one)


def _resume(name: str, cls: Any, ref: type, lrs: list[float], kw: dict[str, Any], k: int, epochs: int,
            concept: str, *, hidden: bool) -> None:
    """Construct with ``last_epoch=k`` on an optimizer restored after k epochs, and round-trip
    ``state_dict()`` into a fresh scheduler mid-run."""
    __tracebackhide__ = True
    first = _optimizer(lrs)
    _drive(first, ref(first, **kw), k)
    checkpoint = first.state_dict()

    def restored() -> torch.optim.Optimizer:
        opt = _optimizer(lrs)
        opt.load_state_dict(checkpoint)
        return opt

    want = _drive(opt := restored(), ref(opt, **kw, last_epoch=k), epochs)
    with _student(name) as caught:
        opt = restored()
        got = _drive(opt, cls(opt, **kw, last_epoch=k), epochs)
    _no_warnings(name, caught, hidden)
    setting = ", ".join(["optimizer"] + [f"{k2}={_fmt(v)}" for k2, v in kw.items()] + [f"last_epoch={k}"])
    _compare(name, got, want, concept, setting + f"; group lrs {lrs}", hidden, start=k + 1,
             off_by_one=f"{concept} (resuming with last_epoch=k, the constructor's own step moves "
                        "the schedule to epoch k + 1)")

    # state_dict round trip: run k epochs, save both state_dicts, rebuild fresh, load, go on.
    full = _drive(opt := _optimizer(lrs), ref(opt, **kw), k + epochs)
    with _student(name) as caught:
        opt = _optimizer(lrs)
        sched = cls(opt, **kw)
        head = _drive(opt, sched, k)
        opt_state, sched_state = opt.state_dict(), sched.state_dict()
        opt2 = _optimizer(lrs)
        sched2 = cls(opt2, **kw)  # a fresh scheduler first, then load (as torch recommends)
        opt2.load_state_dict(opt_state)
        sched2.load_state_dict(sched_state)
        tail = _drive(opt2, sched2, epochs)
    _no_warnings(name, caught, hidden)
    _compare(name, head + tail[1:], full,
             f"{name}.state_dict() / load_state_dict() must carry everything the schedule needs "
             "(keep it in attributes of the scheduler; the inherited methods save them)",
             ", ".join(["optimizer"] + [f"{k2}={_fmt(v)}" for k2, v in kw.items()])
             + f"; state saved after {k} epochs and loaded into a fresh {name}", hidden,
             off_by_one="after load_state_dict() the schedule must continue where it stopped")


# --- StepLR ----------------------------------------------------------------------------------------

_STEP = ("StepLR multiplies the lr by gamma once every step_size epochs: "
         "lr = base_lr · gamma^(epoch // step_size)")
_STEP_OFF = "StepLR first decays when last_epoch reaches step_size (epochs 0 … step_size − 1 use base_lr)"


def step_lr(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """``cls`` gives torch's ``StepLR`` learning rates at every epoch, for every param group."""
    __tracebackhide__ = True
    _guard_class(cls, "StepLR", _L.StepLR)
    gen = torch.Generator().manual_seed(seed)
    size = int(torch.randint(2, 6, (1,), generator=gen))
    cases = [([0.1], {"step_size": 3}, 12, _STEP),
             ([0.1, 0.05, 1.0], {"step_size": size, "gamma": 0.5}, 4 * size + 3, _STEP)]
    if thorough:
        cases += [([0.3, 0.02], {"step_size": 1, "gamma": 0.9}, 15, _STEP),
                  ([0.1, 0.2, 0.4, 0.8], {"step_size": 7, "gamma": 0.3}, 40, _STEP)]
    _sequence("StepLR", cls, _L.StepLR, cases, hidden=hidden, off_by_one=_STEP_OFF)


def step_lr_resume(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """Construction with ``last_epoch`` (resume) and a ``state_dict`` round trip."""
    __tracebackhide__ = True
    _guard_class(cls, "StepLR", _L.StepLR)
    ks = [5, 8] + ([2, 11] if thorough else [])
    for k in ks:
        _resume("StepLR", cls, _L.StepLR, [0.1, 0.3], {"step_size": 3, "gamma": 0.5}, k + seed % 2, 10,
                _STEP, hidden=hidden)


# --- MultiStepLR -----------------------------------------------------------------------------------

_MULTI = ("MultiStepLR multiplies the lr by gamma at every milestone: lr = base_lr · gamma^(number of "
          "milestones ≤ epoch); milestones may be given in any order, and one listed twice decays twice")
_MULTI_OFF = "MultiStepLR decays AT the milestone epoch: epoch m already uses the decayed lr"


def multi_step_lr(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """``cls`` gives torch's ``MultiStepLR`` learning rates at every epoch, for every param group."""
    __tracebackhide__ = True
    _guard_class(cls, "MultiStepLR", _L.MultiStepLR)
    gen = torch.Generator().manual_seed(seed)
    first = int(torch.randint(2, 5, (1,), generator=gen))
    cases = [([0.1], {"milestones": [first, 7, 12]}, 16, _MULTI),
             ([0.1, 0.5, 0.02], {"milestones": [10, 4], "gamma": 0.5}, 14, _MULTI)]
    if thorough:
        cases += [([0.2, 0.1], {"milestones": (3, 3, 8), "gamma": 0.5}, 12, _MULTI),
                  ([0.1, 1.0, 0.3], {"milestones": [15, 1, 9, 5], "gamma": 0.7}, 20, _MULTI)]
    _sequence("MultiStepLR", cls, _L.MultiStepLR, cases, hidden=hidden, off_by_one=_MULTI_OFF)


def multi_step_lr_resume(cls: Any, *, thorough: bool = False, hidden: bool = False,
                         seed: int = 0) -> None:
    """Construction with ``last_epoch`` (resume) and a ``state_dict`` round trip."""
    __tracebackhide__ = True
    _guard_class(cls, "MultiStepLR", _L.MultiStepLR)
    for k in [3, 6] + ([1, 9] if thorough else []):
        _resume("MultiStepLR", cls, _L.MultiStepLR, [0.1, 0.4], {"milestones": [4, 8, 10], "gamma": 0.5},
                k + seed % 2, 8, _MULTI, hidden=hidden)


# --- LambdaLR --------------------------------------------------------------------------------------

_LAMBDA = ("LambdaLR sets lr = base_lr · lr_lambda(epoch): it scales the INITIAL lr of each group "
           "(self.base_lrs), never the current one, so factors do not compound")
_LAMBDA_OFF = "use lr_lambda(self.last_epoch): epoch 0 (right after construction) uses lr_lambda(0)"


def _warmup(epoch: int) -> float:
    return min(1.0, (epoch + 1) / 4)


def _decay(epoch: int) -> float:
    return 0.9 ** epoch


def _wave(epoch: int) -> float:
    return 1.0 + 0.5 * math.sin(epoch)


def lambda_lr(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """``cls`` gives torch's ``LambdaLR`` learning rates for one callable and one per group."""
    __tracebackhide__ = True
    _guard_class(cls, "LambdaLR", _L.LambdaLR)
    cases = [([0.1], {"lr_lambda": _decay}, 10, _LAMBDA),
             ([0.1, 0.5], {"lr_lambda": _warmup}, 8, _LAMBDA),
             ([0.1, 0.5, 0.2], {"lr_lambda": [_warmup, _decay, _wave]}, 12,
              "with a list, param group i uses lr_lambda[i] (one lambda per param group): "
              "lr_i = base_lrs[i] · lr_lambda[i](epoch)")]
    if thorough:
        rate = 0.8 + 0.05 * (seed % 3)
        cases += [([0.3, 0.03], {"lr_lambda": (lambda e: rate ** (e // 2), _wave)}, 15, _LAMBDA),
                  ([0.2, 0.1, 0.4], {"lr_lambda": lambda e: 1.0 / (1 + e)}, 20, _LAMBDA)]
    _sequence("LambdaLR", cls, _L.LambdaLR, cases, hidden=hidden, off_by_one=_LAMBDA_OFF)


def lambda_lr_resume(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """Construction with ``last_epoch`` (resume) and a ``state_dict`` round trip."""
    __tracebackhide__ = True
    _guard_class(cls, "LambdaLR", _L.LambdaLR)
    for k in [3, 7] + ([0, 12] if thorough else []):
        _resume("LambdaLR", cls, _L.LambdaLR, [0.1, 0.4], {"lr_lambda": [_warmup, _wave]},
                k + seed % 2, 8, _LAMBDA, hidden=hidden)


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
_COS_OFF = "epoch 0 (right after construction) must use base_lr; epoch T_max reaches eta_min"


def cosine_annealing_lr(cls: Any, *, thorough: bool = False, hidden: bool = False,
                        seed: int = 0) -> None:
    """``cls`` gives torch's ``CosineAnnealingLR`` rates within T_max, with eta_min, and beyond."""
    __tracebackhide__ = True
    _guard_class(cls, "CosineAnnealingLR", _L.CosineAnnealingLR)
    t_max = 8 + seed % 5
    cases = [([0.1], {"T_max": t_max}, t_max, _COS),
             ([0.1, 0.5], {"T_max": t_max, "eta_min": 0.01}, t_max, _COS_MIN),
             ([0.1], {"T_max": t_max}, 3 * t_max + 2, _COS_AFTER),
             ([0.1, 0.5, 0.02], {"T_max": 5, "eta_min": 0.001}, 13, _COS)]
    if thorough:
        cases += [([1.0, 0.2], {"T_max": 1, "eta_min": 0.05}, 6, _COS_AFTER),
                  ([0.3, 0.1, 0.05], {"T_max": 20, "eta_min": 0.002}, 50, _COS)]
    _sequence("CosineAnnealingLR", cls, _L.CosineAnnealingLR, cases, hidden=hidden, off_by_one=_COS_OFF)


def cosine_annealing_lr_resume(cls: Any, *, thorough: bool = False, hidden: bool = False,
                               seed: int = 0) -> None:
    """Construction with ``last_epoch`` (resume) and a ``state_dict`` round trip."""
    __tracebackhide__ = True
    _guard_class(cls, "CosineAnnealingLR", _L.CosineAnnealingLR)
    for k in [4, 9] + ([1, 15] if thorough else []):
        _resume("CosineAnnealingLR", cls, _L.CosineAnnealingLR, [0.1, 0.4],
                {"T_max": 10, "eta_min": 0.01}, k + seed % 2, 14, _COS_RESUME, hidden=hidden)
