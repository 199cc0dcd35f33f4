"""Checks for 04_nn_module: a hand-written ``Linear``, a module with a buffer (``RunningMean``) and
``count_parameters``. Every expected value comes from PyTorch at run time: ``nn.Linear`` for the
layer, torch arithmetic for the buffer's moving average (the update BatchNorm uses),
``model.parameters()`` for the count."""

from __future__ import annotations

import contextlib
import dis
import inspect
import math
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ._core import CheckFailure, call, forbid_delegation, require, same_tensor, tripwire

__all__ = ["Linear_forward", "Linear_parameters", "RunningMean", "count_parameters"]

# Captured at import, before student code runs: rebinding nn.Linear later changes nothing here.
_nnLinear = nn.Linear
_NormBase = nn.modules.batchnorm._NormBase
_F_linear = F.linear
_F_batch_norm = F.batch_norm
_batch_norm = torch.batch_norm
_Module = nn.Module
_Tensor = torch.Tensor
_fork_rng = torch.random.fork_rng
_manual_seed = torch.manual_seed
_MISSING = object()


def _accelerator() -> torch.device | None:
    """The course's accelerator (cuda or mps) when this machine has one, else None."""
    try:
        from ..device import choose_device

        dev = choose_device().device
    except Exception:  # a bad $COURSE_DEVICE: the CPU checks still run
        return None
    return None if dev.type == "cpu" else dev


def _seeded(make: Callable[[], Any], seed: int) -> Any:
    """Run ``make()`` right after ``torch.manual_seed(seed)``, leaving the global RNG untouched."""
    __tracebackhide__ = True
    with _fork_rng(devices=[]):
        _manual_seed(seed)
        return make()


# --- Linear -------------------------------------------------------------------------------------

_LINEAR_HINT = ("Store weight and bias as nn.Parameter, initialise them with torch.nn.init and "
                "compute x @ weight.T + bias yourself (@, torch.matmul and torch.addmm are "
                "allowed; nn.Linear, its subclasses and F.linear are not).")
_LINEAR_TRIP = [(F, "linear"), (torch._C._nn, "linear")]


def _student_functions(cls: type) -> Iterator[types.FunctionType]:
    for klass in cls.__mro__:
        if klass.__module__.startswith("torch") or klass is object:
            continue
        for value in vars(klass).values():
            fn = getattr(value, "__func__", value)
            if isinstance(fn, types.FunctionType):
                yield fn


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _bytecode_guard(cls: Any, exercise: str, hint: str, attrs: set[str],
                    functions: tuple[Any, ...], classes: tuple[type, ...]) -> None:
    """Refuse a class whose methods reach a forbidden attribute, function or class. A class's
    source is usually unavailable in a notebook kernel, so this reads the bytecode instead."""
    __tracebackhide__ = True
    if not inspect.isclass(cls):
        return
    msg = (f"{exercise} delegates to the PyTorch reference it is checked against; that earns no "
           f"credit. {hint}")
    for fn in _student_functions(cls):
        for code in _code_objects(fn.__code__):
            for ins in dis.get_instructions(code):
                if ins.opname in ("LOAD_ATTR", "LOAD_METHOD"):
                    bad = ins.argval in attrs  # nn.Linear, F.linear, torch.nn.BatchNorm1d ...
                elif ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                    obj = fn.__globals__.get(ins.argval, _MISSING)
                    bad = any(obj is f for f in functions) or (
                        inspect.isclass(obj) and issubclass(obj, classes))
                else:
                    bad = False
                require(not bad, msg, f"{fn.__qualname__} uses {ins.argval}")


class _Spy(TorchFunctionMode):
    """Records calls of the banned torch functions, however the student reached them."""

    def __init__(self, banned: tuple[Any, ...]) -> None:
        super().__init__()
        self.banned = banned
        self.hits: list[str] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if any(func is b for b in self.banned):
            self.hits.append(getattr(func, "__name__", "a banned function"))
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def _guarded(trip: list[tuple[Any, str]], banned: tuple[Any, ...], exercise: str,
             hint: str) -> Iterator[None]:
    """tripwire() on the named attributes plus a TorchFunctionMode that sees aliased calls."""
    __tracebackhide__ = True
    spy = _Spy(banned)
    with tripwire(trip, exercise, hint), spy:
        yield
    require(not spy.hits, f"{exercise} calls the PyTorch reference it is checked against; that "
                          f"earns no credit. {hint}", f"it called {', '.join(sorted(set(spy.hits)))}")


def _no_linear_delegation(cls: Any) -> None:
    """Refuse nn.Linear itself, a subclass, or code that reaches nn.Linear / F.linear."""
    __tracebackhide__ = True
    msg = ("Linear delegates to the PyTorch reference it is checked against; that earns no "
           f"credit. {_LINEAR_HINT}")
    require(cls is not _nnLinear, msg, "your Linear is torch.nn.Linear itself")
    require(not (inspect.isclass(cls) and issubclass(cls, _nnLinear)), msg,
            "your Linear subclasses torch.nn.Linear; subclass nn.Module instead")
    forbid_delegation(cls, ["linear", "LazyLinear"], "Linear", _LINEAR_HINT, references=(_nnLinear,))
    _bytecode_guard(cls, "Linear", _LINEAR_HINT, {"linear", "Linear", "LazyLinear"}, (_F_linear,),
                    (_nnLinear,))


def _make_linear(cls: Any, fin: int, fout: int, bias: bool, style: int, seed: int,
                 hidden: bool) -> Any:
    __tracebackhide__ = True
    if style == 0:
        args, kwargs = ((fin, fout), {}) if bias else ((fin, fout, False), {})
    else:
        args, kwargs = (), {"in_features": fin, "out_features": fout, "bias": bias}
    module = _seeded(lambda: call(cls, *args, name="Linear", hidden=hidden, **kwargs), seed)
    require(isinstance(module, _Module),
            "Linear must be a subclass of nn.Module: write `class Linear(nn.Module):` (capital M: "
            "nn.Module is the class; torch.nn.modules is a package)",
            f"Linear(...) returned {type(module).__name__}", hidden)
    return module


def _linear_structure(m: nn.Module, fin: int, fout: int, bias: bool, hidden: bool) -> None:
    """weight (out, in) and bias (out,) registered as Parameters; no bias when bias=False."""
    __tracebackhide__ = True
    where = f"Linear({fin}, {fout}, bias={bias})"
    params = dict(m.named_parameters())
    weight = getattr(m, "weight", None)
    require(isinstance(weight, _Tensor), "Linear needs an attribute named `weight` (as nn.Linear)",
            f"{where} has parameters {sorted(params)}", hidden)
    require("weight" in params,
            "weight is a plain tensor attribute, so nn.Module does not register it: it is missing "
            "from parameters() and state_dict(), and an optimizer would never update it. Wrap it: "
            "self.weight = nn.Parameter(...)", f"{where}: parameters() holds {sorted(params)}", hidden)
    shape = tuple(weight.shape)
    require(shape != (fin, fout) or fin == fout,
            "weight is transposed: nn.Linear stores it as (out_features, in_features) and computes "
            "x @ weight.T + bias", f"{where}: expected weight shape {(fout, fin)}, got {shape}", hidden)
    require(shape == (fout, fin), "weight must have shape (out_features, in_features)",
            f"{where}: expected {(fout, fin)}, got {shape}", hidden)
    if bias:
        b = getattr(m, "bias", None)
        require(isinstance(b, _Tensor),
                "with bias=True (the default) Linear needs a bias Parameter of shape "
                "(out_features,), as nn.Linear has", f"{where}: parameters() holds {sorted(params)}",
                hidden)
        require("bias" in params,
                "bias is a plain tensor attribute, so nn.Module does not register it (not in "
                "parameters() or state_dict()); wrap it: self.bias = nn.Parameter(...)",
                f"{where}: parameters() holds {sorted(params)}", hidden)
        require(tuple(b.shape) == (fout,), "bias must have shape (out_features,)",
                f"{where}: expected {(fout,)}, got {tuple(b.shape)}", hidden)
    else:
        require("bias" not in params,
                "with bias=False there must be no bias parameter: register it as None, "
                "self.register_parameter('bias', None), as nn.Linear does",
                f"{where}: parameters() holds {sorted(params)}", hidden)
        require(getattr(m, "bias", _MISSING) is None,
                "with bias=False, self.bias must be None (register_parameter('bias', None)) so "
                "that code can test `layer.bias is None`, as with nn.Linear",
                f"{where}: bias is {type(getattr(m, 'bias', None)).__name__}", hidden)
    expected = {"weight", "bias"} if bias else {"weight"}
    require(set(params) == expected,
            f"Linear must have exactly the parameters {sorted(expected)} (nn.Linear's names)",
            f"{where}: parameters() holds {sorted(params)}", hidden)
    require(weight.dtype == torch.float32, "parameters must be float32, torch's default dtype",
            f"{where}: weight is {weight.dtype}", hidden)


def _linear_cases(thorough: bool) -> list[tuple[int, int, bool]]:
    cases = [(5, 3, True), (4, 2, False)]
    if thorough:
        cases += [(1, 1, True), (17, 9, True), (8, 1, False), (3, 12, True), (64, 10, True)]
    return cases


def Linear_parameters(cls: Any, *, thorough: bool = False, hidden: bool = False,
                      seed: int = 0) -> None:
    """Parameters like nn.Linear's: names, shapes, initial values under the same seed, and
    state_dicts that load both ways with ``strict=True``."""
    __tracebackhide__ = True
    _no_linear_delegation(cls)
    for i, (fin, fout, bias) in enumerate(_linear_cases(thorough)):
        s = 1000 * seed + i
        where = f"Linear({fin}, {fout}, bias={bias}) after torch.manual_seed({s})"
        ref = _seeded(lambda fin=fin, fout=fout, bias=bias: _nnLinear(fin, fout, bias=bias), s)
        mine = _make_linear(cls, fin, fout, bias, i % 2, s, hidden)
        _linear_structure(mine, fin, fout, bias, hidden)
        bound = 1 / math.sqrt(fin)
        w = mine.weight.detach()
        if not torch.allclose(w, ref.weight.detach(), rtol=1e-5, atol=1e-6):
            outside = bool((w.abs() > bound * (1 + 1e-5)).any())
            raise CheckFailure(
                "initialise weight like nn.Linear: create it with torch.empty (no random draw), "
                "then nn.init.kaiming_uniform_(weight, a=math.sqrt(5)) BEFORE drawing the bias; "
                "with the same torch.manual_seed your weight must equal nn.Linear's",
                f"{where}: expected weight[0, :3] = {ref.weight[0, :3].tolist()}, got "
                f"{w[0, :3].tolist()}" + (f"; some values lie outside ±1/sqrt(in_features) = "
                                          f"±{bound:.3g}" if outside else ""), hidden)
        if bias:
            same_tensor(mine.bias, ref.bias, f"{where}: the initial bias", hidden=hidden,
                        concept="initialise bias like nn.Linear: after the weight, "
                                "nn.init.uniform_(bias, -1/sqrt(in_features), 1/sqrt(in_features))")
        require(mine.weight.requires_grad, "weight must require grad (nn.Parameter does this)",
                where, hidden)
        # state_dicts interchange both ways, strict
        keys = list(mine.state_dict())
        require(keys == list(ref.state_dict()),
                f"the state_dict keys must be exactly nn.Linear's, {list(ref.state_dict())}, so "
                "that checkpoints interchange", f"{where}: got {keys}", hidden)
        other = _seeded(lambda fin=fin, fout=fout, bias=bias: _nnLinear(fin, fout, bias=bias), s + 500)
        try:
            mine.load_state_dict(other.state_dict(), strict=True)
        except Exception as exc:
            raise CheckFailure("nn.Linear's state_dict must load into your Linear with strict=True",
                               f"{where}: {type(exc).__name__}: {exc}", hidden) from None
        same_tensor(mine.weight, other.weight, "weight after load_state_dict", hidden=hidden,
                    concept="load_state_dict must set your weight Parameter (do not override it)")
        back = _nnLinear(fin, fout, bias=bias)
        try:
            back.load_state_dict(mine.state_dict(), strict=True)
        except Exception as exc:
            raise CheckFailure("your Linear's state_dict must load into nn.Linear with strict=True",
                               f"{where}: {type(exc).__name__}: {exc}", hidden) from None
        for name, p in other.named_parameters():
            same_tensor(dict(back.named_parameters())[name], p.detach(), f"{where}: {name}",
                        hidden=hidden, concept="a state_dict round trip nn.Linear → Linear → "
                                               "nn.Linear must give back the same values")
        if thorough:  # Parameters follow .to(dtype); plain tensors would stay behind
            mine.to(torch.float64)
            require(mine.weight.dtype == torch.float64,
                    "module.to(torch.float64) must convert weight: keep it an nn.Parameter",
                    where, hidden)


def _linear_forward_cases(thorough: bool) -> list[tuple[int, int, bool, tuple[int, ...]]]:
    cases = [(5, 3, True, (4, 5)), (4, 2, False, (3, 4)), (6, 2, True, (2, 3, 6))]
    if thorough:
        cases += [(1, 1, True, (7, 1)), (8, 5, True, (2, 3, 4, 8)), (3, 4, False, (5, 2, 3)),
                  (16, 9, True, (32, 16)), (7, 3, True, (1, 7))]
    return cases


_ND_CONCEPT = ("Linear must accept inputs of shape (N, *, in_features), with any number of leading "
               "dimensions, and return (N, *, out_features): torch.addmm takes 2-d inputs only, so "
               "flatten the leading dimensions (x.reshape(-1, in_features)) and restore them "
               "afterwards, or use x @ self.weight.T")


def _run_linear(mine: nn.Module, ref: nn.Module, x: torch.Tensor, where: str, hidden: bool) -> None:
    __tracebackhide__ = True
    x_mine = x.clone().requires_grad_(True)
    x_ref = x.clone().requires_grad_(True)
    expected = ref(x_ref)
    with _guarded(_LINEAR_TRIP, (_F_linear,), "Linear", _LINEAR_HINT):
        try:
            out = call(mine, x_mine, name="your Linear", hidden=hidden)
        except CheckFailure as exc:
            if x.dim() > 2 and "not implemented" not in exc.concept:
                raise CheckFailure(f"{_ND_CONCEPT} (it raised: {exc.concept})", where,
                                   hidden) from None
            raise
    require(isinstance(out, _Tensor), "Linear's forward must return a tensor",
            f"{where}: got {type(out).__name__}", hidden)
    if x.dim() > 2 and tuple(out.shape) != tuple(expected.shape):
        raise CheckFailure(_ND_CONCEPT, f"{where}: expected shape {tuple(expected.shape)}, got "
                                        f"{tuple(out.shape)}", hidden)
    bias = ref.bias
    if (bias is not None and tuple(out.shape) == tuple(expected.shape)
            and torch.allclose(out.detach(), (expected - bias).detach(), rtol=1e-5, atol=1e-6)):
        raise CheckFailure("the bias was not added: Linear computes x @ weight.T + bias", where,
                           hidden)
    same_tensor(out, expected, f"{where}: the output", hidden=hidden,
                concept="Linear's output must be x @ weight.T + bias, exactly as nn.Linear computes")
    require(out.requires_grad,
            "Linear's output must be differentiable: do not use torch.no_grad() or .detach() in "
            "forward", where, hidden)
    g = torch.randn(expected.shape, generator=torch.Generator().manual_seed(7), dtype=x.dtype)
    # (out * g).sum().backward() gives the same gradients as out.backward(g), faster
    (expected * g.to(x.device)).sum().backward()
    call(lambda: (out * g.to(x.device)).sum().backward(), name="backward through Linear's output",
         hidden=hidden)
    grads = [("the gradient w.r.t. the input", x_mine.grad, x_ref.grad)]
    grads += [(f"the gradient of {n}", getattr(mine, n).grad, p.grad)
              for n, p in ref.named_parameters()]
    for what, got, exp in grads:
        require(got is not None, f"{what} is missing: keep forward differentiable",
                where, hidden)
        same_tensor(got, exp, f"{where}: {what}", hidden=hidden,
                    concept=f"{what} must match nn.Linear's (use weight and bias in forward "
                            "exactly as x @ weight.T + bias)")


def Linear_forward(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """Outputs and gradients equal nn.Linear's (same state_dict) for (N, in) and (N, *, in)."""
    __tracebackhide__ = True
    _no_linear_delegation(cls)
    gen = torch.Generator().manual_seed(seed)
    runs: list[tuple[int, int, bool, tuple[int, ...], torch.dtype, torch.device]] = [
        (*case, torch.float32, torch.device("cpu")) for case in _linear_forward_cases(thorough)]
    accel = _accelerator()
    if thorough:
        runs.append((6, 4, True, (5, 6), torch.float64, torch.device("cpu")))
    if accel is not None:
        runs.append((6, 4, True, (3, 2, 6), torch.float32, accel))
    for i, (fin, fout, bias, xshape, dtype, dev) in enumerate(runs):
        where = f"Linear({fin}, {fout}, bias={bias}) on x of shape {xshape} ({dtype}, {dev.type})"
        mine = _make_linear(cls, fin, fout, bias, i % 2, seed + i, hidden)
        _linear_structure(mine, fin, fout, bias, hidden)
        ref = _seeded(lambda fin=fin, fout=fout, bias=bias: _nnLinear(fin, fout, bias=bias),
                      seed + 77 + i)
        try:
            mine.load_state_dict(ref.state_dict(), strict=True)
        except Exception as exc:
            raise CheckFailure("nn.Linear's state_dict must load into your Linear with strict=True",
                               f"{where}: {type(exc).__name__}: {exc}", hidden) from None
        mine.to(device=dev, dtype=dtype)
        ref.to(device=dev, dtype=dtype)
        x = (torch.randn(xshape, generator=gen, dtype=dtype) * 2).to(dev)
        _run_linear(mine, ref, x, where, hidden)


# --- RunningMean --------------------------------------------------------------------------------

_RM_HINT = ("Keep the running mean yourself in a buffer and update it with tensor arithmetic "
            "(BatchNorm layers and F.batch_norm are not allowed).")
_RM_TRIP = [(F, "batch_norm"), (torch, "batch_norm")]
_UPDATE = "running_mean ← (1 − momentum)·running_mean + momentum·batch_mean"


def _rm_structure(m: Any, nf: int, hidden: bool) -> None:
    __tracebackhide__ = True
    where = f"RunningMean({nf})"
    require(isinstance(m, _Module), "RunningMean must be a subclass of nn.Module",
            f"got {type(m).__name__}", hidden)
    params = dict(m.named_parameters())
    require("running_mean" not in params,
            "running_mean must be a buffer (self.register_buffer('running_mean', ...)), not an "
            "nn.Parameter: parameters() would list it, an optimizer would change it and "
            "count_parameters would count it", f"{where}: parameters() holds {sorted(params)}",
            hidden)
    buffers = dict(m.named_buffers())
    if "running_mean" not in buffers:
        plain = isinstance(getattr(m, "running_mean", None), _Tensor)
        raise CheckFailure(
            "running_mean is a plain tensor attribute: it is not in state_dict() (so it is not "
            "saved) and .to(device) does not move it; register it with "
            "self.register_buffer('running_mean', torch.zeros(num_features))" if plain else
            "RunningMean needs a buffer named running_mean "
            "(self.register_buffer('running_mean', torch.zeros(num_features)))",
            f"{where}: buffers are {sorted(buffers)}", hidden)
    require(not params, "RunningMean has no learnable parameters: parameters() must be empty",
            f"{where}: parameters() holds {sorted(params)}", hidden)
    require("running_mean" in m.state_dict(),
            "running_mean was registered with persistent=False, so state_dict() leaves it out and "
            "it would not be saved with the model; use the default persistent=True",
            f"{where}: state_dict keys {list(m.state_dict())}", hidden)
    same_tensor(buffers["running_mean"], torch.zeros(nf), f"{where}: the initial running_mean",
                hidden=hidden,
                concept="running_mean must start as zeros of shape (num_features,), float32")
    require(m.training, "a new module is in training mode: call super().__init__() and do not call "
                        "eval() in __init__", where, hidden)


def _rm_train_step(m: nn.Module, ref: torch.Tensor, x: torch.Tensor, momentum: float, where: str,
                   hidden: bool, grads: bool) -> None:
    __tracebackhide__ = True
    prev = m.get_buffer("running_mean").detach().clone()
    x_mine = x.clone().requires_grad_(True)
    x_ref = x.clone().requires_grad_(True)
    with _guarded(_RM_TRIP, (_F_batch_norm, _batch_norm), "RunningMean", _RM_HINT):
        out = call(m, x_mine, name="your RunningMean", hidden=hidden)
    expected = x_ref - x_ref.mean(dim=0)
    with torch.no_grad():  # the reference moving average, updated in place
        ref.mul_(1 - momentum).add_(momentum * x.mean(dim=0))
    same_tensor(out, expected, f"{where}: the output in train mode", hidden=hidden,
                concept="in train mode RunningMean returns x − batch_mean, where batch_mean = "
                        "x.mean(dim=0) is the mean of THIS batch over its rows")
    rm = m.get_buffer("running_mean") if "running_mean" in dict(m.named_buffers()) else None
    require(rm is not None, "running_mean must stay a registered buffer after an update "
                            "(assign a tensor to self.running_mean, or update it in place)",
            where, hidden)
    require(not rm.requires_grad and rm.grad_fn is None,
            "update running_mean without tracking gradients (inside `with torch.no_grad():`, or "
            "from x.detach()): otherwise the buffer drags an autograd graph from batch to batch",
            f"{where}: running_mean.requires_grad is True", hidden)
    batch_mean = x.mean(dim=0)
    swapped = momentum * prev + (1 - momentum) * batch_mean
    if momentum != 0.5 and tuple(rm.shape) == tuple(swapped.shape) and torch.allclose(
            rm.detach().to(swapped.dtype), swapped, rtol=1e-5, atol=1e-6):
        raise CheckFailure(f"momentum is applied the wrong way round: momentum weighs the NEW "
                           f"batch mean, {_UPDATE}", where, hidden)
    same_tensor(rm, ref, f"{where}: running_mean after a training batch",
                hidden=hidden, concept=f"in train mode update the buffer after every batch: "
                                       f"{_UPDATE}")
    if grads:
        require(out.requires_grad,
                "the output x − batch_mean must stay differentiable w.r.t. x: use no_grad only "
                "for the running_mean update", where, hidden)
        g = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=x.dtype)
        (expected * g.to(x.device)).sum().backward()
        call(lambda: (out * g.to(x.device)).sum().backward(),
             name="backward through RunningMean's output", hidden=hidden)
        same_tensor(x_mine.grad, x_ref.grad, f"{where}: the gradient w.r.t. x", hidden=hidden,
                    concept="the gradient of x − batch_mean must flow through batch_mean too "
                            "(do not detach batch_mean in the output)")


def _rm_eval_step(m: nn.Module, x: torch.Tensor, where: str, hidden: bool) -> None:
    __tracebackhide__ = True
    before = m.get_buffer("running_mean").detach().clone()
    with _guarded(_RM_TRIP, (_F_batch_norm, _batch_norm), "RunningMean", _RM_HINT):
        out = call(m, x, name="your RunningMean", hidden=hidden)
    same_tensor(m.get_buffer("running_mean"), before, f"{where}: running_mean in eval mode",
                hidden=hidden, concept="in eval mode running_mean must not change: update it "
                                       "only when self.training is True")
    same_tensor(out, x - before, f"{where}: the output in eval mode", hidden=hidden,
                concept="in eval mode RunningMean returns x − running_mean (the stored estimate, "
                        "not this batch's mean)")


def RunningMean(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """A persistent buffer updated as an exponential moving average in train mode only."""
    __tracebackhide__ = True
    forbid_delegation(cls, ["batch_norm", "BatchNorm1d", "BatchNorm2d", "InstanceNorm1d"],
                      "RunningMean", _RM_HINT, references=(_NormBase,))
    _bytecode_guard(cls, "RunningMean", _RM_HINT, {"batch_norm", "BatchNorm1d", "BatchNorm2d",
                    "BatchNorm3d", "InstanceNorm1d"}, (_F_batch_norm, _batch_norm), (_NormBase,))
    gen = torch.Generator().manual_seed(seed)
    cases: list[tuple[int, float | None, int, torch.device]] = [(3, None, 4, torch.device("cpu")),
                                                                (5, 0.3, 3, torch.device("cpu"))]
    if thorough:
        cases += [(1, 0.05, 6, torch.device("cpu")), (7, 0.9, 5, torch.device("cpu"))]
    accel = _accelerator()
    if accel is not None:
        cases.append((4, 0.2, 3, accel))
    for nf, momentum, steps, dev in cases:
        mom = 0.1 if momentum is None else momentum
        where = f"RunningMean({nf}" + ("" if momentum is None else f", momentum={momentum}") + ")"
        args = {} if momentum is None else {"momentum": momentum}
        m = call(cls, nf, name="RunningMean", hidden=hidden, **args)
        _rm_structure(m, nf, hidden)
        ref = torch.zeros(nf, device=dev)
        m.to(dev)
        require(m.get_buffer("running_mean").device.type == dev.type,
                "module.to(device) must move running_mean: register it as a buffer", where, hidden)
        offset = torch.randn(nf, generator=gen) * 3

        def batch(n: int, nf: int = nf, offset: torch.Tensor = offset,
                  dev: torch.device = dev) -> torch.Tensor:
            return (torch.randn(n, nf, generator=gen) + offset).to(dev)

        for step in range(steps):
            n = 2 if (thorough and step == 1) else 4 + step
            _rm_train_step(m, ref, batch(n), mom, f"{where}, training batch {step + 1}", hidden,
                           grads=step == 0)
        m.eval()
        _rm_eval_step(m, batch(6), f"{where} after eval()", hidden)
        if thorough:  # back to training: updates resume
            m.train()
            _rm_train_step(m, ref, batch(5), mom, f"{where} after eval() then train()", hidden,
                           grads=False)
        # the buffer is saved and restored by state_dict
        state = m.state_dict()
        require("running_mean" in state and "running_mean" not in dict(m.named_parameters()),
                "running_mean must be in state_dict() and not in parameters()", where, hidden)
        fresh = call(cls, nf, name="RunningMean", hidden=hidden, **args)
        try:
            fresh.load_state_dict(state, strict=True)
        except Exception as exc:
            raise CheckFailure("load_state_dict must restore RunningMean from its state_dict",
                               f"{where}: {type(exc).__name__}: {exc}", hidden) from None
        same_tensor(fresh.get_buffer("running_mean"), ref.cpu(),
                    f"{where}: running_mean restored by load_state_dict", hidden=hidden,
                    concept="load_state_dict must restore running_mean (keep it a persistent buffer)")
        if thorough and dev.type == "cpu":
            m.to(torch.float64)
            require(m.get_buffer("running_mean").dtype == torch.float64,
                    "module.to(torch.float64) must convert running_mean: register it as a buffer",
                    where, hidden)
            x = torch.randn(3, nf, generator=gen, dtype=torch.float64)
            m.eval()
            _rm_eval_step(m, x, f"{where} in float64", hidden)


# --- count_parameters ---------------------------------------------------------------------------

class _Scaled(nn.Module):
    """A module with a Parameter of its own next to a child module."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))
        self.body = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * self.scale


def _tied() -> nn.Module:
    emb, head = nn.Embedding(10, 4), nn.Linear(4, 10, bias=False)
    head.weight = emb.weight  # weight tying: one Parameter, two modules
    return nn.ModuleDict({"embed": emb, "head": head})


def _frozen_first() -> nn.Module:
    model = nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3))
    model[0].requires_grad_(False)
    return model


def _count_models(thorough: bool) -> list[tuple[str, Callable[[], nn.Module]]]:
    models: list[tuple[str, Callable[[], nn.Module]]] = [
        ("nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 2))",
         lambda: nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 2))),
        ("a Sequential whose first Linear is frozen (requires_grad_(False))", _frozen_first),
        ("an Embedding(10, 4) whose weight is shared with a Linear(4, 10, bias=False)", _tied),
    ]
    if thorough:
        def same_twice() -> nn.Module:
            lin = nn.Linear(4, 4)
            return nn.Sequential(lin, nn.ReLU(), lin)

        def frozen_bias() -> nn.Module:
            model = nn.Sequential(nn.Linear(3, 8), nn.Linear(8, 2))
            model[1].bias.requires_grad_(False)
            return model

        models += [
            ("nn.Linear(3, 4)", lambda: nn.Linear(3, 4)),
            ("nn.ReLU() (no parameters)", nn.ReLU),
            ("the same Linear used twice in a Sequential", same_twice),
            ("Linear followed by BatchNorm1d (which has buffers)",
             lambda: nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))),
            ("a module with its own Parameter and a child Linear", _Scaled),
            ("a model whose last bias alone is frozen", frozen_bias),
        ]
    return models


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def count_parameters(fn: Callable[..., Any], *, thorough: bool = False, hidden: bool = False,
                     seed: int = 0) -> None:
    """``fn(model, trainable_only=True)`` counts elements of ``model.parameters()``: each shared
    Parameter once, frozen ones (``requires_grad=False``) only when ``trainable_only=False``."""
    __tracebackhide__ = True
    for label, make in _count_models(thorough):
        model = _seeded(make, seed)
        flags = [p.requires_grad for p in model.parameters()]
        for mode in ("default", True, False):
            trainable_only = mode is not False
            params = [p for p in model.parameters() if p.requires_grad or not trainable_only]
            expected = sum(p.numel() for p in params)
            shown = "count_parameters(model)" if mode == "default" else \
                f"count_parameters(model, trainable_only={mode})"
            got = (call(fn, model, name="count_parameters", hidden=hidden) if mode == "default"
                   else call(fn, model, trainable_only=mode, name="count_parameters", hidden=hidden))
            where = f"model = {label}: {shown}"
            require(_is_int(got), "count_parameters must return a Python int (p.numel() is one)",
                    f"{where} returned {got!r} ({type(got).__name__})", hidden)
            require([p.requires_grad for p in model.parameters()] == flags,
                    "count_parameters must not change the model (leave requires_grad alone)",
                    where, hidden)
            if got == expected:
                continue
            everything = sum(p.numel() for p in model.parameters())
            twice = sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False)
                        if p.requires_grad or not trainable_only)
            buffers = sum(b.numel() for b in model.buffers())
            detail = f"{where}: expected {expected}, got {got}"
            if got == len(params) or got == len(list(model.parameters())):
                concept = ("count ELEMENTS, not tensors: add up p.numel() over the parameters "
                           "(a (5, 10) weight is 50 parameters, not 1)")
            elif trainable_only and got == everything:
                concept = ("with trainable_only=True (the default) leave out frozen parameters, "
                           "those with requires_grad == False")
            elif not trainable_only and got == sum(p.numel() for p in model.parameters()
                                                   if p.requires_grad):
                concept = "with trainable_only=False count every parameter, frozen ones too"
            elif got == twice or got > expected and got - expected != buffers:
                concept = ("a shared parameter must be counted once: model.parameters() yields "
                           "each Parameter once even when several modules use it (state_dict() "
                           "and per-module loops repeat it)")
            elif got - expected == buffers:
                concept = ("buffers (such as BatchNorm's running_mean) are not parameters: count "
                           "only model.parameters(), not state_dict()")
            else:
                concept = ("count_parameters is the sum of p.numel() over model.parameters() "
                           "(keeping only requires_grad ones when trainable_only)")
            raise CheckFailure(concept, detail, hidden)
