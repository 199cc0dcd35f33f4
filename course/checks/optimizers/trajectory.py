"""The machinery of 08_optimizers' checks: the problem, the scenario and the verdict.

The scenario runs the student's optimizer on parameters it creates from the seed, on a smooth loss
whose gradients it writes by hand, and records every step's parameters, what ``step(closure)``
returned, the saved ``state_dict`` and the inherited ``zero_grad``. A resume saves
``state_dict()`` with ``torch.save``, loads it with ``weights_only=True`` into a FRESH optimizer
over NEW parameter tensors (as a restart does) and goes on. The verdict runs ``torch.optim.SGD`` or
``Adam`` on the same problem itself and names the first step and option where the two part.
"""

from __future__ import annotations

import importlib
import inspect
import io
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .._core import CheckFailure, Delegation, Raised, attempt, check_device, expect, require
from .._guards import tripwire

__all__ = ["DELEGATION", "Case", "Groups", "scenario_for", "verdict_for"]

_allclose = torch.allclose
_equal = torch.equal
Groups = list[tuple[list[int], dict[str, Any]]] | None

# --- delegation -------------------------------------------------------------------------------

_MODS = [importlib.import_module(f"torch.optim.{m}") for m in ("sgd", "adam", "adamw")]
_FUNCTIONAL = ["sgd", "adam", "adamw", "_single_tensor_sgd", "_multi_tensor_sgd", "_fused_sgd",
               "_single_tensor_adam", "_multi_tensor_adam", "_fused_adam", "_single_tensor_adamw",
               "_multi_tensor_adamw", "_fused_adamw", "_fused_sgd_", "_fused_adam_", "_fused_adamw_",
               "_functional"]
_HINT = ("Subclass torch.optim.Optimizer and write the update yourself with tensor arithmetic "
         "(add_, mul_, addcdiv_, sqrt, maximum ...); torch.optim.SGD/Adam/AdamW and the functional "
         "torch.optim sgd/adam helpers are what your class is checked against.")
DELEGATION = Delegation(_HINT, names=frozenset(["SGD", "Adam", "AdamW", *_FUNCTIONAL]))


def _trip_targets() -> list[tuple[Any, str]]:
    targets: list[tuple[Any, str]] = []
    for cls in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW):
        targets += [(cls, n) for n in ("step", "__init__") if n in vars(cls)]
    for owner in [*_MODS, torch.optim._functional, torch]:
        targets += [(owner, n) for n in _FUNCTIONAL if n in vars(owner) and callable(vars(owner)[n])]
    return targets


# --- the problem the optimizers minimise (shared by scenario and verdict) -----------------------

_SHAPES = [(3,), (2, 3), (4,)]


def _problem(seed: int, dtype: torch.dtype, device: Any) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    inits, slopes = [], []
    for shape in _SHAPES:
        inits.append((0.5 * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype).to(device))
        size = 2.0 + torch.rand(shape, generator=gen, dtype=torch.float64)
        sign = torch.where(torch.rand(shape, generator=gen) < 0.5, -1.0, 1.0).double()
        slopes.append((size * sign).to(dtype).to(device))
    return inits, slopes


def _loss_and_grads(params: list[torch.Tensor], slopes: list[torch.Tensor],
                    t: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A smooth loss whose gradients stay of order 1 and change from step to step, with its
    gradients written out by hand (much faster than autograd for so small a problem)."""
    wave = 0.8 * math.sin(0.7 * t)
    with torch.no_grad():
        x = [p.detach() for p in params]
        sums = [v.sum() for v in x]
        loss = 0.05 * sums[0] * sums[2]
        grads = []
        for v, a in zip(x, slopes, strict=True):
            loss = loss + (a * v + 0.5 * v * v + 0.1 * torch.sin(3 * v) + wave * v).sum()
            grads.append(a + v + 0.3 * torch.cos(3 * v) + wave)
        grads[0] = grads[0] + 0.05 * sums[2]
        grads[2] = grads[2] + 0.05 * sums[0]
    return loss, grads


def _no_grad_on(t: int) -> list[int]:
    """Which parameters get ``.grad = None`` at step ``t`` in the 'skip' cases."""
    return ([1] if t < 5 else []) + ([2] if t % 3 == 1 else [])


@dataclass(frozen=True)
class Case:
    kw: dict[str, Any]
    groups: Groups
    concept: str
    steps: int
    seed: int
    dtype: torch.dtype = torch.float64
    skip: bool = False
    closure: bool = False
    reload_at: int | None = None
    first_step: str | None = field(default=None)


def _make(cls: Any, params: list[torch.Tensor], kw: dict[str, Any], groups: Groups) -> Any:
    if groups is None:
        return cls(params, **kw)
    return cls([{"params": [params[i] for i in idx], **opts} for idx, opts in groups], **kw)


def _describe(name: str, kw: dict[str, Any], groups: Groups) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
    if groups is None:
        return f"{name}(params, {args})"
    shown = ", ".join("{" + ", ".join(f"{k}: {v!r}" for k, v in opts.items()) + "}" for _, opts in groups)
    return f"{name}([{shown}], {args})"


# --- scenario: runs the student's optimizer ------------------------------------------------------

def _signature(cls: Any) -> list[list[Any]] | None:
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return None
    return [[p.name, p.default is not inspect.Parameter.empty,
             None if p.default is inspect.Parameter.empty else p.default]
            for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]


def _facts(cls: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {"is_class": inspect.isclass(cls)}
    if facts["is_class"]:
        try:
            facts["is_optimizer"] = bool(issubclass(cls, torch.optim.Optimizer))
        except Exception:  # noqa: BLE001 - a metaclass may do anything
            facts["is_optimizer"] = False
        facts["signature"] = _signature(cls)
    return facts


def _save_and_load(state: Any) -> Any:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _summary(saved: Any) -> Any:
    """What the saved state_dict holds: the keys of its state and each group's parameter indices."""
    try:
        return {"keys": [k if type(k) is int else repr(k)[:60] for k in saved["state"]],
                "params": [list(g["params"]) for g in saved["param_groups"]]}
    except Exception:  # noqa: BLE001 - a state_dict of the student's own making
        return None


def _run(name: str, cls: Any, case: Case, device: torch.device) -> dict[str, Any]:
    dtype = torch.float32 if device.type == "mps" else case.dtype
    inits, slopes = _problem(case.seed, dtype, device)
    params = [x.clone().requires_grad_(True) for x in inits]
    out: dict[str, Any] = {"device": str(device), "steps": [], "returned": [], "error": None}
    made = attempt(_make, cls, params, case.kw, case.groups, call=_describe(name, case.kw, case.groups))
    if isinstance(made, Raised):
        out["error"] = made
        return out
    opt, retired = made, []  # retired parameters stay alive, so no new tensor reuses their id
    for t in range(case.steps):
        def compute(t: int = t) -> torch.Tensor:
            loss, grads = _loss_and_grads(params, slopes, t)
            off = _no_grad_on(t) if case.skip else []
            for i, (p, g) in enumerate(zip(params, grads, strict=True)):
                p.grad = None if i in off else g
            return loss

        if case.closure:
            got = attempt(opt.step, compute, call=f"{name}.step(closure) at step {t + 1}")
            out["returned"].append(got)
        else:
            compute()
            got = attempt(opt.step, call=f"{name}.step() at step {t + 1}")
        if isinstance(got, Raised):
            out["error"] = got
            return out
        out["steps"].append([p.detach().clone() for p in params])
        if any(p.shape != x.shape or p.dtype != x.dtype for p, x in zip(params, inits, strict=True)):
            return out  # the parameters changed shape or dtype: the verdict says so
        if case.reload_at == t:
            saved = attempt(opt.state_dict, call=f"{name}.state_dict() after step {t + 1}")
            if not isinstance(saved, Raised):
                saved = attempt(_save_and_load, saved, call="torch.save(optimizer.state_dict(), f), "
                                "then torch.load(f, weights_only=True)")
            if isinstance(saved, Raised):
                out["error"] = saved
                return out
            out["saved"] = _summary(saved)
            retired.append(list(params))
            params[:] = [p.detach().clone().requires_grad_(True) for p in params]
            opt = attempt(_make, cls, params, case.kw, case.groups,
                          call=_describe(name, case.kw, case.groups) + " over new parameters")
            loaded = opt if isinstance(opt, Raised) else attempt(
                opt.load_state_dict, saved, call=f"{name}.load_state_dict(saved) on a fresh "
                f"{name} over new parameters")
            if isinstance(loaded, Raised):
                out["error"] = loaded
                return out
    return out


def _zero_grad_run(name: str, cls: Any, device: torch.device) -> dict[str, Any]:
    params = [torch.ones(3, device=device, requires_grad=True),
              torch.ones(2, 2, device=device, requires_grad=True)]
    opt = attempt(cls, [{"params": params[:1]}, {"params": params[1:]}], lr=0.1,
                  call=f"{name}([{{'params': [a]}}, {{'params': [b]}}], lr=0.1)")
    if isinstance(opt, Raised):
        return {"error": opt}
    for p in params:
        p.grad = torch.ones_like(p)
    done = attempt(opt.zero_grad, call=f"{name}.zero_grad()")
    return {"error": done if isinstance(done, Raised) else None, "grads": [p.grad for p in params]}


def scenario_for(name: str, cases: Any, state: bool) -> Any:
    def scenario(cls: Any, *, thorough: bool = False, seed: int = 0) -> dict[str, Any]:
        facts = _facts(cls)
        if not facts["is_class"]:
            return {"facts": facts}
        device = check_device()
        with tripwire(_trip_targets()):
            zero = _zero_grad_run(name, cls, device) if state else None
            runs = [_run(name, cls, case, device) for case in cases(thorough, seed)]
        return {"facts": facts, "zero_grad": zero, "runs": runs}

    return scenario


# --- verdict: torch.optim's trajectory, computed here ---------------------------------------------

def _same_default(got: Any, want: Any) -> bool:
    if isinstance(want, tuple):
        return (isinstance(got, tuple) and len(got) == len(want)
                and all(_same_default(g, w) for g, w in zip(got, want, strict=True)))
    return type(got) in (int, float, bool) and got == want


def _judge_facts(facts: Any, name: str, ref: type, hidden: bool) -> None:
    require(isinstance(facts, dict), f"the grader got no usable result for {name}")
    require(facts.get("is_class") is True,
            f"{name} must be a class (class {name}(torch.optim.Optimizer))", hidden=hidden)
    require(facts.get("is_optimizer") is True,
            f"{name} must subclass torch.optim.Optimizer (it provides param_groups, state, "
            "zero_grad, state_dict and load_state_dict)", hidden=hidden)
    want = [(p.name, p.default) for p in inspect.signature(ref).parameters.values()
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    got = facts.get("signature")
    ok = isinstance(got, list) and len(got) >= len(want) and all(
        isinstance(g, list) and len(g) == 3 and g[0] == n
        and (g[1] is False if d is inspect.Parameter.empty else g[1] is True and _same_default(g[2], d))
        for g, (n, d) in zip(got, want, strict=False))
    shown = ", ".join(f"{n}={d!r}" if d is not inspect.Parameter.empty else n for n, d in want)
    require(ok, f"{name}'s constructor must take torch.optim.{ref.__name__}'s arguments, in the "
            "same order and with the same defaults", f"expected {name}({shown})", hidden)


def _hint(value: Raised) -> str:
    text = value.message
    if "NoneType" in text:
        return " (a parameter's .grad can be None: skip such parameters)"
    if "leaf Variable" in text or "in-place" in text:
        return " (update parameters in place inside `with torch.no_grad():` or under @torch.no_grad())"
    if "device" in text:
        return " (create state on the parameter's device: torch.zeros_like(p), p.clone())"
    if "weights_only" in text or "Unsupported" in text:
        return " (state_dict() must hold only tensors, numbers and containers, as torch's does)"
    return ""


def _reference(ref: type, case: Case, dtype: torch.dtype) -> tuple[list[list[torch.Tensor]], list[Any]]:
    inits, slopes = _problem(case.seed, dtype, "cpu")
    params = [x.clone().requires_grad_(True) for x in inits]
    opt = _make(ref, params, case.kw, case.groups)
    history, returned = [], []
    for t in range(case.steps):
        def compute(t: int = t) -> torch.Tensor:
            loss, grads = _loss_and_grads(params, slopes, t)
            off = _no_grad_on(t) if case.skip else []
            for i, (p, g) in enumerate(zip(params, grads, strict=True)):
                p.grad = None if i in off else g
            return loss

        if case.closure:
            returned.append(opt.step(compute))
        else:
            compute()
            opt.step()
        history.append([p.detach().clone() for p in params])
    return history, returned


def _state_note(saved: Any) -> str:
    if not isinstance(saved, dict) or not isinstance(saved.get("keys"), list):
        return ""
    groups = saved.get("params") if isinstance(saved.get("params"), list) else []
    keys = saved["keys"]
    indices = {i for g in groups if isinstance(g, list) for i in g if type(i) is int}
    if not keys:
        return "; the saved state_dict's state was empty: the per-parameter quantities live elsewhere"
    odd = [k for k in keys if k not in indices]
    if odd:
        return (f"; the saved state is keyed by {odd[0]!r}, not by parameter: index self.state by the "
                "parameter tensor itself (self.state[p]), which state_dict() turns into positions")
    return ""


def _judge_run(name: str, ref: type, case: Case, run: Any, hidden: bool) -> None:
    require(isinstance(run, dict) and isinstance(run.get("steps"), list),
            f"the grader got no usable result for {name}", hidden=hidden)
    device = str(run.get("device", "cpu"))
    dtype = torch.float32 if device.startswith("mps") else case.dtype
    expected, exp_ret = _reference(ref, case, dtype)
    inits, _ = _problem(case.seed, dtype, "cpu")
    tol = {"rtol": 1e-7, "atol": 1e-9} if dtype == torch.float64 else {"rtol": 2e-4, "atol": 2e-5}
    where = _describe(name, case.kw, case.groups) + (f" on {device}, {dtype}" if device != "cpu"
                                                     or dtype != torch.float64 else "")
    reload = "" if case.reload_at is None else (f" (state_dict saved after step {case.reload_at + 1} "
                                                "and loaded into a fresh optimizer over new parameters)")
    steps = run["steps"]
    for t, (g_step, e_step) in enumerate(zip(steps, expected, strict=False)):
        require(isinstance(g_step, list) and len(g_step) == len(e_step),
                f"the grader got no usable result for {name}", hidden=hidden)
        for i, (g, e) in enumerate(zip(g_step, e_step, strict=True)):
            require(isinstance(g, torch.Tensor), f"the grader got no usable result for {name}",
                    hidden=hidden)
            g = g.detach().cpu()
            if g.dtype == e.dtype and g.shape == e.shape and _allclose(g, e, **tol):
                continue
            concept = case.concept
            if g.shape != e.shape or g.dtype != e.dtype:
                concept = (f"{name}.step() must update each parameter in place, keeping its shape "
                           f"and dtype (expected {tuple(e.shape)} {e.dtype}, got {tuple(g.shape)} "
                           f"{g.dtype})")
            elif t == 0 and g.shape == e.shape and g.dtype == e.dtype and _equal(g, inits[i]):
                concept = (f"{name}.step() did not change the parameters: update each parameter "
                           "in place (p.add_(...)) under torch.no_grad(); rebinding a local name "
                           "changes nothing")
            elif t == 0 and case.first_step:
                concept = case.first_step
            note = _state_note(run.get("saved")) if case.reload_at is not None and t > case.reload_at else ""
            diff = (g.double() - e.double()).abs().max().item() if g.shape == e.shape else float("nan")
            raise CheckFailure(concept, f"with {where}{reload}: parameter {i} (shape {tuple(e.shape)}) "
                               f"first differs from torch.optim.{ref.__name__} after step {t + 1}: "
                               f"largest difference {diff:.3g}{note}", hidden)
    error = run.get("error")
    if isinstance(error, Raised):
        expect(error, name, case.concept + _hint(error), hidden=hidden)
    require(len(steps) == case.steps, f"{name} stopped before the end of the run ({where})",
            hidden=hidden)
    if case.closure:
        returned = run.get("returned")
        require(isinstance(returned, list) and len(returned) == len(exp_ret),
                f"the grader got no usable result for {name}", hidden=hidden)
        for t, (g, e) in enumerate(zip(returned, exp_ret, strict=True)):
            ok = (isinstance(g, torch.Tensor) and g.shape == e.shape
                  and _allclose(g.detach().cpu().to(e.dtype), e.detach(), **tol))
            require(ok, "step(closure) must return the loss the closure returned, as torch does",
                    f"with {where}: at step {t + 1} torch returned {e.item():.6g}, yours returned "
                    f"{g!r:.60}", hidden)


def _judge_zero_grad(name: str, zero: Any, hidden: bool) -> None:
    require(isinstance(zero, dict), f"the grader got no usable result for {name}", hidden=hidden)
    expect(zero.get("error"), name, "that the inherited zero_grad() clears every gradient",
           hidden=hidden)
    grads = zero.get("grads")
    require(isinstance(grads, list) and len(grads) == 2 and all(
        g is None or (isinstance(g, torch.Tensor) and not g.any()) for g in grads),
        f"{name}.zero_grad() must clear the gradient of every parameter in every group "
        "(the inherited torch.optim.Optimizer.zero_grad does; do not override it)", None, hidden)


def verdict_for(name: str, ref: type, cases: Any, state: bool) -> Any:
    def verdict(data: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
        require(isinstance(data, dict), f"the grader got no usable result for {name}", hidden=hidden)
        _judge_facts(data.get("facts"), name, ref, hidden)
        if state:
            _judge_zero_grad(name, data.get("zero_grad"), hidden)
        todo, runs = cases(thorough, seed), data.get("runs")
        require(isinstance(runs, list) and len(runs) == len(todo),
                f"the grader got no usable result for {name}", hidden=hidden)
        for case, run in zip(todo, runs, strict=True):
            _judge_run(name, ref, case, run, hidden)

    return verdict
