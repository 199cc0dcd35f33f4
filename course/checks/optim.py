"""Checks for 08_optimizers: hand-written ``SGD`` and ``Adam`` against ``torch.optim``.

Both optimizers are run side by side with PyTorch's on the same parameters and the same
deterministic loss, step after step, for each option on its own and then together (several param
groups, parameters without gradients, a ``state_dict`` round trip through a fresh instance, a
closure). The first step where the trajectories part names the option that was got wrong.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import io
import math
import textwrap
from collections.abc import Iterator
from typing import Any

import torch

from ._core import CheckFailure, forbid_delegation, require, tripwire

__all__ = ["adam", "adam_state", "sgd", "sgd_state"]

_allclose = torch.allclose
_equal = torch.equal

Config = tuple[dict[str, Any], list[tuple[list[int], dict[str, Any]]] | None, str]

# --- delegation -------------------------------------------------------------------------------

_MODS = [importlib.import_module(f"torch.optim.{m}") for m in ("sgd", "adam", "adamw")]
_FUNCTIONAL = ["sgd", "adam", "adamw", "_single_tensor_sgd", "_multi_tensor_sgd", "_fused_sgd",
               "_single_tensor_adam", "_multi_tensor_adam", "_fused_adam", "_single_tensor_adamw",
               "_multi_tensor_adamw", "_fused_adamw", "_fused_sgd_", "_fused_adam_", "_fused_adamw_",
               "_functional"]
_CLASSES = ["SGD", "Adam", "AdamW"]
_HINT = ("Subclass torch.optim.Optimizer and write the update yourself with tensor arithmetic "
         "(add_, mul_, addcdiv_, sqrt, maximum ...); torch.optim.SGD/Adam/AdamW and the functional "
         "torch.optim sgd/adam helpers are what your class is checked against.")


def _trip_targets() -> list[tuple[Any, str]]:
    targets: list[tuple[Any, str]] = []
    for cls in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW):
        targets += [(cls, n) for n in ("step", "__init__") if n in vars(cls)]
    for owner in [*_MODS, torch.optim._functional, torch]:
        targets += [(owner, n) for n in _FUNCTIONAL if n in vars(owner) and callable(vars(owner)[n])]
    return targets


def _own_sources(cls: type) -> Iterator[str]:
    """Source of every function the student's class (and its non-torch bases) defines."""
    for klass in cls.__mro__:
        if klass is object or klass.__module__.split(".")[0] == "torch":
            continue
        for value in vars(klass).values():
            fn = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            fn = fn.fget if isinstance(fn, property) else fn
            if inspect.isfunction(fn):
                with contextlib.suppress(OSError, TypeError):
                    yield inspect.getsource(inspect.unwrap(fn))


def _scan(cls: type, exercise: str) -> None:
    """Refuse code that names torch's optimizers (as attributes) or their functional helpers."""
    __tracebackhide__ = True
    used: set[str] = set()
    for source in _own_sources(cls):
        try:
            tree = ast.parse(textwrap.dedent(source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in _CLASSES + _FUNCTIONAL:
                used.add(node.attr)
            elif isinstance(node, ast.Name) and node.id in _FUNCTIONAL:
                used.add(node.id)
            elif isinstance(node, ast.Constant) and node.value in _CLASSES + _FUNCTIONAL:
                used.add(node.value)
    require(not used, f"{exercise} delegates to the PyTorch reference it is checked against; that "
            f"earns no credit. {_HINT}", f"its code uses: {', '.join(sorted(used))}")


def _guard_class(cls: Any, exercise: str, ref: type) -> None:
    __tracebackhide__ = True
    require(inspect.isclass(cls), f"{exercise} must be a class (class {exercise}(torch.optim.Optimizer))",
            f"got {type(cls).__name__}")
    forbid_delegation(cls, [], exercise, _HINT,
                      references=(torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW))
    require(issubclass(cls, torch.optim.Optimizer),
            f"{exercise} must subclass torch.optim.Optimizer (it provides param_groups, state, "
            "zero_grad, state_dict and load_state_dict)", f"its bases are {cls.__bases__}")
    _scan(cls, exercise)
    want = [(p.name, p.default) for p in inspect.signature(ref).parameters.values()
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    got = [(p.name, p.default) for p in inspect.signature(cls).parameters.values()
           if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    require(got[:len(want)] == want,
            f"{exercise}'s constructor must take torch.optim.{ref.__name__}'s arguments, in the "
            "same order and with the same defaults",
            f"expected {', '.join(f'{n}={d!r}' if d is not inspect.Parameter.empty else n for n, d in want)}")


# --- the problem the optimizers minimise --------------------------------------------------------

_SHAPES = [(3,), (2, 3), (4,)]


def _problem(seed: int, dtype: torch.dtype, device: torch.device) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    inits, slopes = [], []
    for shape in _SHAPES:
        inits.append((0.5 * torch.randn(shape, generator=gen, dtype=torch.float64)).to(device, dtype))
        size = 2.0 + torch.rand(shape, generator=gen, dtype=torch.float64)
        sign = torch.where(torch.rand(shape, generator=gen) < 0.5, -1.0, 1.0).double()
        slopes.append((size * sign).to(device, dtype))
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
    """Which parameters get ``.grad = None`` at step ``t`` in the 'skip' scenario."""
    return ([1] if t < 5 else []) + ([2] if t % 3 == 1 else [])


def _make(cls: Any, params: list[torch.Tensor], kw: dict[str, Any],
          groups: list[tuple[list[int], dict[str, Any]]] | None) -> Any:
    if groups is None:
        return cls(params, **kw)
    return cls([{"params": [params[i] for i in idx], **opts} for idx, opts in groups], **kw)


def _run(cls: Any, kw: dict[str, Any], groups: Any, inits: list[torch.Tensor],
         slopes: list[torch.Tensor], steps: int, *, skip: bool = False, closure: bool = False,
         reload_at: int | None = None) -> tuple[list[list[torch.Tensor]], list[Any]]:
    params = [x.clone().requires_grad_(True) for x in inits]
    opt = _make(cls, params, kw, groups)
    history, returned = [], []
    for t in range(steps):
        def compute(t: int = t, opt: Any = opt) -> torch.Tensor:
            opt.zero_grad()
            loss, grads = _loss_and_grads(params, slopes, t)
            off = _no_grad_on(t) if skip else []
            for i, (p, g) in enumerate(zip(params, grads, strict=True)):
                if i not in off:
                    p.grad = g
            return loss

        if closure:
            returned.append(opt.step(compute))
        else:
            compute()
            opt.step()
        history.append([p.detach().clone() for p in params])
        if reload_at == t:
            buffer = io.BytesIO()
            torch.save(opt.state_dict(), buffer)
            buffer.seek(0)
            saved = torch.load(buffer, weights_only=True)
            opt = _make(cls, params, kw, groups)  # a fresh instance, as after a restart
            opt.load_state_dict(saved)
    return history, returned


@contextlib.contextmanager
def _student(exercise: str, hidden: bool) -> Iterator[None]:
    """Turn a stub or a crash inside the student's optimizer into a readable failure."""
    __tracebackhide__ = True
    try:
        yield
    except NotImplementedError:
        raise CheckFailure(f"{exercise} is not implemented yet: replace `raise NotImplementedError()` "
                           "in its answer cell with your code, run that cell, then run this test "
                           "again") from None
    except CheckFailure:
        raise
    except Exception as exc:
        hint = ""
        if "NoneType" in str(exc):
            hint = " (a parameter's .grad can be None: skip such parameters)"
        elif "leaf Variable" in str(exc) or "in-place" in str(exc):
            hint = " (update parameters in place inside `with torch.no_grad():` or under @torch.no_grad())"
        raise CheckFailure(f"{exercise} raised {type(exc).__name__}: {exc}{hint}") from None


def _describe(name: str, kw: dict[str, Any], groups: Any) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
    if groups is None:
        return f"{name}(params, {args})"
    shown = ", ".join("{" + ", ".join(f"{k}: {v!r}" for k, v in opts.items()) + "}" for _, opts in groups)
    return f"{name}([{shown}], {args})"


def _compare(exercise: str, ref: type, cls: type, kw: dict[str, Any], groups: Any, concept: str,
             *, seed: int, steps: int, hidden: bool, dtype: torch.dtype = torch.float64,
             device: torch.device | str = "cpu", skip: bool = False, closure: bool = False,
             reload_at: int | None = None,
             first_step_concept: str | None = None) -> None:
    __tracebackhide__ = True
    device = torch.device(device)
    inits, slopes = _problem(seed, dtype, device)
    expected, exp_ret = _run(ref, kw, groups, inits, slopes, steps, skip=skip, closure=closure)
    with _student(exercise, hidden), tripwire(_trip_targets(), exercise, _HINT):
        got, got_ret = _run(cls, kw, groups, inits, slopes, steps, skip=skip, closure=closure,
                            reload_at=reload_at)
    tol = {"rtol": 1e-7, "atol": 1e-9} if dtype == torch.float64 else {"rtol": 2e-4, "atol": 2e-5}
    where = _describe(exercise, kw, groups) + (f" on {device}, {dtype}" if device.type != "cpu"
                                               or dtype != torch.float64 else "")
    for t, (g_step, e_step) in enumerate(zip(got, expected, strict=True)):
        for i, (g, e) in enumerate(zip(g_step, e_step, strict=True)):
            if g.dtype == e.dtype and g.shape == e.shape and _allclose(g, e, **tol):
                continue
            if t == 0 and _equal(g, inits[i]):
                concept = (f"{exercise}.step() did not change the parameters: update each parameter "
                           "in place (p.add_(...)) under torch.no_grad(); rebinding a local name "
                           "changes nothing")
            elif t == 0 and first_step_concept:
                concept = first_step_concept
            diff = (g.double() - e.double()).abs().max().item() if g.shape == e.shape else float("nan")
            reload = "" if reload_at is None else f" (saved and reloaded after step {reload_at + 1})"
            raise CheckFailure(concept, f"with {where}{reload}: parameter {i} (shape {tuple(e.shape)}) "
                               f"first differs from torch.optim.{ref.__name__} after step {t + 1}: "
                               f"largest difference {diff:.3g}", hidden)
    if closure:
        for t, (g, e) in enumerate(zip(got_ret, exp_ret, strict=True)):
            ok = isinstance(g, torch.Tensor) and _allclose(g.detach(), e.detach(), **tol)
            require(ok, "step(closure) must return the loss the closure returned, as torch does",
                    f"with {where}: at step {t + 1} torch returned {e.item():.6g}, yours returned "
                    f"{g!r:.60}", hidden)


# --- SGD -----------------------------------------------------------------------------------------

_SGD_MOMENTUM = ("momentum keeps one buffer per parameter: on the first step buf = grad, afterwards "
                 "buf = momentum·buf + (1 − dampening)·grad, and the step is p ← p − lr·buf")
_SGD_CONFIGS: list[Config] = [
    ({"lr": 0.05}, None, "plain SGD moves each parameter against its gradient: p ← p − lr·grad"),
    ({"lr": 0.05, "weight_decay": 0.1}, None,
     "weight decay adds weight_decay·p to the gradient before the step (an L2 penalty): "
     "g ← grad + weight_decay·p"),
    ({"lr": 0.02, "momentum": 0.9}, None, _SGD_MOMENTUM),
    ({"lr": 0.02, "momentum": 0.9, "dampening": 0.5}, None,
     "dampening scales only the NEW gradient added to the momentum buffer: "
     "buf = momentum·buf + (1 − dampening)·grad"),
    ({"lr": 0.02, "momentum": 0.9, "nesterov": True}, None,
     "Nesterov momentum steps along grad + momentum·buf (a look-ahead) instead of along buf"),
    ({"lr": 0.02, "momentum": 0.8, "weight_decay": 0.05}, None,
     "weight decay is added to the gradient BEFORE the gradient enters the momentum buffer "
     "(g = grad + weight_decay·p; buf = momentum·buf + (1 − dampening)·g)"),
]
_SGD_FIRST_DAMPENING = ("on the first step torch initialises the momentum buffer to the gradient "
                        "itself (buf = grad, no dampening); dampening applies from the second step on")
_SGD_GROUPS: list[tuple[list[int], dict[str, Any]]] = [
    ([0], {"lr": 0.05}),
    ([1], {"lr": 0.01, "momentum": 0.9, "nesterov": True}),
    ([2], {"momentum": 0.5, "dampening": 0.2, "weight_decay": 0.1}),
]
_GROUPS_CONCEPT = ("every param group uses its own settings (group['lr'], group['momentum'], ...), "
                   "with the constructor's arguments only as defaults for keys a group leaves out")
_SKIP_CONCEPT = ("a parameter whose .grad is None is skipped: neither it nor its state changes that "
                 "step, and each parameter keeps its own state (its own step count) in self.state[p]")
_STATE_CONCEPT = ("saving state_dict() and loading it into a FRESH optimizer must not change the "
                  "trajectory: keep every per-parameter quantity in self.state[p] (the optimizer's "
                  "state), not in attributes of your own")
_CLOSURE_CONCEPT = ("step(closure) must call the closure (with gradients enabled: torch.enable_grad()),"
                    " use the gradients it computes and return its loss")


def _other_device() -> torch.device | None:
    from ..device import choose_device

    device = choose_device().device
    return device if device.type != "cpu" else None


def _zero_grad(exercise: str, cls: type, hidden: bool) -> None:
    """The inherited zero_grad() must still clear every gradient (set_to_none by default)."""
    __tracebackhide__ = True
    params = [torch.ones(3, requires_grad=True), torch.ones(2, 2, requires_grad=True)]
    with _student(exercise, hidden):
        opt = cls([{"params": params[:1]}, {"params": params[1:]}], lr=0.1)
        for p in params:
            p.grad = torch.ones_like(p)
        opt.zero_grad()
    require(all(p.grad is None or not p.grad.any() for p in params),
            f"{exercise}.zero_grad() must clear the gradient of every parameter in every group "
            "(the inherited torch.optim.Optimizer.zero_grad does; do not override it)", None, hidden)


def _update_rule_first(exercise: str, ref: type, cls: type, kw: dict[str, Any],
                       groups: list[tuple[list[int], dict[str, Any]]], *, seed: int,
                       hidden: bool) -> None:
    """Before blaming groups or state, make sure each group's settings work on their own."""
    __tracebackhide__ = True
    for _, opts in groups:
        _compare(exercise, ref, cls, {**kw, **opts}, None,
                 f"fix {exercise}'s update rule first (see the test above): it already differs from "
                 f"torch.optim.{ref.__name__} with a single param group", seed=seed, steps=12,
                 hidden=hidden)


def sgd(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """``cls`` follows ``torch.optim.SGD``'s trajectory for each option (lr, weight decay, momentum,
    dampening, Nesterov, and momentum with weight decay)."""
    __tracebackhide__ = True
    _guard_class(cls, "SGD", torch.optim.SGD)
    steps = 80 if thorough else 40
    for kw, groups, concept in _SGD_CONFIGS:
        first = _SGD_FIRST_DAMPENING if kw.get("dampening") else None
        _compare("SGD", torch.optim.SGD, cls, kw, groups, concept, seed=seed, steps=steps,
                 hidden=hidden, first_step_concept=first)
    if thorough:
        kw = {"lr": 0.03, "momentum": 0.7, "dampening": 0.1, "weight_decay": 0.02}
        _compare("SGD", torch.optim.SGD, cls, kw, None, _SGD_MOMENTUM, seed=seed + 1, steps=60,
                 hidden=hidden, dtype=torch.float32)
        other = _other_device()
        if other is not None:
            _compare("SGD", torch.optim.SGD, cls, kw, None, "SGD must work on any device: create "
                     "state with torch.zeros_like(p) / p.clone(), never on the CPU by default",
                     seed=seed, steps=30, hidden=hidden, dtype=torch.float32, device=other)


def sgd_state(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """Param groups, parameters without gradients, ``state_dict`` round trip, closure."""
    __tracebackhide__ = True
    _guard_class(cls, "SGD", torch.optim.SGD)
    steps = 60 if thorough else 30
    ref = torch.optim.SGD
    _zero_grad("SGD", cls, hidden)
    _update_rule_first("SGD", ref, cls, {"lr": 0.03}, _SGD_GROUPS, seed=seed, hidden=hidden)
    _compare("SGD", ref, cls, {"lr": 0.03}, _SGD_GROUPS, _GROUPS_CONCEPT, seed=seed, steps=steps,
             hidden=hidden)
    _compare("SGD", ref, cls, {"lr": 0.02, "momentum": 0.9, "dampening": 0.3}, None, _SKIP_CONCEPT,
             seed=seed, steps=steps, hidden=hidden, skip=True)
    _compare("SGD", ref, cls, {"lr": 0.02, "momentum": 0.9, "weight_decay": 0.01}, None,
             _STATE_CONCEPT, seed=seed, steps=steps, hidden=hidden, reload_at=steps // 2)
    _compare("SGD", ref, cls, {"lr": 0.02, "momentum": 0.9}, None, _CLOSURE_CONCEPT, seed=seed,
             steps=10, hidden=hidden, closure=True)
    if thorough:
        _compare("SGD", ref, cls, {"lr": 0.03, "momentum": 0.2}, _SGD_GROUPS, _STATE_CONCEPT,
                 seed=seed + 1, steps=steps, hidden=hidden, skip=True, reload_at=7)


# --- Adam ----------------------------------------------------------------------------------------

_ADAM_BIAS = ("Adam needs bias correction: m̂ = m / (1 − β1^t) and v̂ = v / (1 − β2^t), with t the "
              "parameter's own step count (1 on its first step); then p ← p − lr·m̂ / (√v̂ + eps). "
              "Its first step moves each parameter by about lr")
_ADAM_CONFIGS: list[Config] = [
    ({"lr": 0.01}, None, _ADAM_BIAS),
    ({"lr": 0.01, "betas": (0.7, 0.95)}, None,
     "betas = (β1, β2): m = β1·m + (1 − β1)·grad and v = β2·v + (1 − β2)·grad², both bias-corrected "
     "with their own beta; use the group's betas"),
    ({"lr": 0.01, "eps": 0.1}, None,
     "eps is added AFTER the square root: the denominator is √v̂ + eps, not √(v̂ + eps)"),
    ({"lr": 0.01, "weight_decay": 0.1}, None,
     "Adam's weight_decay is an L2 term added to the gradient (g = grad + weight_decay·p) BEFORE the "
     "moments are updated; shrinking p directly (decoupled decay) is AdamW, a different optimizer"),
    ({"lr": 0.01, "betas": (0.9, 0.8), "amsgrad": True}, None,
     "AMSGrad keeps the running maximum of the second moment v (not of m): "
     "v_max = max(v_max, v), denominator √v_max / √(1 − β2^t) + eps"),
]
_ADAM_GROUPS: list[tuple[list[int], dict[str, Any]]] = [
    ([0], {"lr": 0.02, "betas": (0.8, 0.9)}),
    ([1], {"amsgrad": True, "eps": 0.01}),
    ([2], {"lr": 0.005, "weight_decay": 0.1}),
]


def adam(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """``cls`` follows ``torch.optim.Adam``'s trajectory for each option (bias correction, betas,
    eps, weight decay, AMSGrad)."""
    __tracebackhide__ = True
    _guard_class(cls, "Adam", torch.optim.Adam)
    steps = 80 if thorough else 50
    for kw, groups, concept in _ADAM_CONFIGS:
        _compare("Adam", torch.optim.Adam, cls, kw, groups, concept, seed=seed, steps=steps,
                 hidden=hidden)
    if thorough:
        kw = {"lr": 0.02, "betas": (0.85, 0.9), "weight_decay": 0.01, "amsgrad": True}
        _compare("Adam", torch.optim.Adam, cls, kw, None, _ADAM_BIAS, seed=seed + 1, steps=60,
                 hidden=hidden, dtype=torch.float32)
        other = _other_device()
        if other is not None:
            _compare("Adam", torch.optim.Adam, cls, kw, None, "Adam must work on any device: create "
                     "state with torch.zeros_like(p), never on the CPU by default", seed=seed,
                     steps=30, hidden=hidden, dtype=torch.float32, device=other)


def adam_state(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """Per-parameter step counts, param groups, ``state_dict`` round trip, closure."""
    __tracebackhide__ = True
    _guard_class(cls, "Adam", torch.optim.Adam)
    steps = 60 if thorough else 30
    ref = torch.optim.Adam
    _zero_grad("Adam", cls, hidden)
    _update_rule_first("Adam", ref, cls, {"lr": 0.01}, _ADAM_GROUPS, seed=seed, hidden=hidden)
    _compare("Adam", ref, cls, {"lr": 0.01}, None, _SKIP_CONCEPT, seed=seed, steps=steps,
             hidden=hidden, skip=True)
    _compare("Adam", ref, cls, {"lr": 0.01}, _ADAM_GROUPS, _GROUPS_CONCEPT, seed=seed, steps=steps,
             hidden=hidden)
    _compare("Adam", ref, cls, {"lr": 0.01, "amsgrad": True, "betas": (0.9, 0.8)}, None,
             _STATE_CONCEPT, seed=seed, steps=steps, hidden=hidden, reload_at=steps // 2)
    _compare("Adam", ref, cls, {"lr": 0.01}, None, _CLOSURE_CONCEPT, seed=seed, steps=10,
             hidden=hidden, closure=True)
    if thorough:
        _compare("Adam", ref, cls, {"lr": 0.01}, _ADAM_GROUPS, _STATE_CONCEPT, seed=seed + 1,
                 steps=steps, hidden=hidden, skip=True, reload_at=8)
