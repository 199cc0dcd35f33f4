"""Checks for 06_activations: element-wise activations, softmax/log-softmax and a custom
``autograd.Function``, compared with ``torch.nn.functional`` in value AND gradient, on ordinary,
zero and extreme inputs, in float32 and float64."""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ._core import CheckFailure, call, forbid_delegation, require, same_tensor, tripwire

__all__ = ["leaky_relu", "log_softmax", "relu", "relu_function", "sigmoid", "softmax", "tanh"]

# Built-in activations (and their internals): none of them may be used in any exercise here.
_ACTIVATIONS = [
    "relu", "relu_", "relu6", "ReLU", "ReLU6", "leaky_relu", "leaky_relu_", "LeakyReLU", "prelu",
    "PReLU", "rrelu", "rrelu_", "RReLU", "threshold", "threshold_", "Threshold", "hardtanh",
    "hardtanh_", "Hardtanh", "sigmoid", "sigmoid_", "Sigmoid", "expit", "logsigmoid",
    "LogSigmoid", "tanh", "tanh_", "Tanh", "softmax", "Softmax", "_softmax", "log_softmax",
    "LogSoftmax", "_log_softmax", "softmin", "Softmin", "gumbel_softmax", "logsumexp",
    "softplus", "Softplus", "silu", "SiLU", "gelu", "GELU", "elu", "ELU", "selu", "celu", "mish",
    "hardsigmoid", "hardswish", "tanhshrink", "threshold_backward", "sigmoid_backward",
    "tanh_backward", "_softmax_backward_data", "_log_softmax_backward_data",
]
_TRIP = sorted({(owner, name) for owner in (torch, F, torch.Tensor, torch.special)
                for name in _ACTIVATIONS if hasattr(owner, name)}, key=lambda t: (id(t[0]), t[1]))
_HINT = ("Build it from tensor arithmetic and comparisons, torch.where, torch.exp, torch.log, "
         "torch.log1p, max/amax, sum, clamp (and your own functions from this notebook); "
         "torch's own activations, softmax and logsumexp are not allowed.")

# Captured when the checks are imported, before student code runs: rebinding torch's functions
# later changes neither the references nor the comparisons.
_allclose = torch.allclose
_isclose = torch.isclose
_equal = torch.equal
_isfinite = torch.isfinite
_gradcheck = torch.autograd.gradcheck
_grad = torch.autograd.grad
_relu = F.relu
_leaky_relu = F.leaky_relu
_sigmoid = torch.sigmoid
_tanh = torch.tanh
_softmax = F.softmax
_log_softmax = F.log_softmax

Fn = Callable[..., Any]


# --- guards --------------------------------------------------------------------------------------

def _attrs_used(obj: Any) -> set[str]:
    """Attribute names (``torch.sigmoid``, ``x.softmax``) and strings in ``obj``'s source."""
    try:
        import inspect
        import textwrap

        tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
    except (OSError, TypeError, SyntaxError):
        return set()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)
    return found


def _guard(fn: Any, exercise: str, own: list[str]) -> None:
    """Refuse torch's activations: ``own`` names anywhere, the others as attributes."""
    __tracebackhide__ = True
    forbid_delegation(fn, own, exercise, _HINT)
    used = _attrs_used(fn) & set(_ACTIVATIONS)
    require(not used, f"{exercise} delegates to a PyTorch built-in it may not use (an activation, "
            f"softmax or logsumexp); that earns no credit. {_HINT}", f"its code uses: {', '.join(sorted(used))}")


# --- inputs --------------------------------------------------------------------------------------

_SPECIAL = [0.0, -0.0, 1e4, -1e4, 1000.0, -1000.0, 90.0, -90.0, 1e-8, -1e-8, 0.5, -2.5]


def _elementwise_inputs(thorough: bool, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    xs = [torch.tensor(_SPECIAL), 3 * torch.randn(4, 5, generator=gen)]
    if thorough:
        xs += [(5 * torch.randn(2, 3, 4, generator=gen, dtype=torch.float64)),
               torch.tensor(_SPECIAL, dtype=torch.float64),
               torch.tensor(0.0), torch.tensor(-7.0, dtype=torch.float64),
               torch.zeros(3, 0)]
    return xs


def _accelerator() -> torch.device | None:
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return None


def _with_device(xs: list[torch.Tensor], thorough: bool) -> list[torch.Tensor]:
    dev = _accelerator() if thorough else None
    return xs + ([xs[1].to(dev)] if dev is not None else [])


# --- the comparison ------------------------------------------------------------------------------

def _where(x: torch.Tensor, bad: torch.Tensor) -> str:
    """Classify the inputs at which a result differs: 'zero', 'extreme' or 'ordinary'."""
    xb = x.detach()[bad].abs()
    if xb.numel() and bool((xb == 0).all()):
        return "zero"
    if xb.numel() and bool((xb >= 50).all()):
        return "extreme"
    return "ordinary"


def _slice_error(got: torch.Tensor, expected: torch.Tensor, args: tuple, kwargs: dict) -> str:
    """For softmax-like results: 'shift' when off by a constant per slice along dim."""
    dim = args[0] if args else kwargs.get("dim", -1)
    diff = (got.detach().double() - expected.detach().double())
    diff = torch.where(_isfinite(diff), diff, torch.zeros_like(diff))
    spread = diff.amax(dim=dim) - diff.amin(dim=dim)
    return "shift" if bool((spread.abs() < 1e-4).all()) else "ordinary"


def _mismatch(a: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    a, e = a.detach().double(), e.detach().double()
    close = _isclose(a, e, rtol=1e-4, atol=1e-5, equal_nan=True)
    return ~close


def _compare(fn: Fn, ref: Fn, x: torch.Tensor, args: tuple, kwargs: dict, *, name: str,
             concepts: dict[str, str], hidden: bool, seed: int, elementwise: bool = True) -> None:
    """Compare ``fn(x, *args, **kwargs)`` with ``ref`` in value, then in gradient."""
    __tracebackhide__ = True
    shown = f"x of shape {tuple(x.shape)}, dtype {x.dtype}" + (f", args {args}" if args else "") + (
        f", {kwargs}" if kwargs else "")
    expected = ref(x, *args, **kwargs)
    # 1. values, without autograd; the input must not change
    x_in = x.clone()
    with tripwire(_TRIP, name, _HINT):
        got = call(fn, x_in, *args, name=name, hidden=hidden, **kwargs)
    require(_equal(x_in, x), f"{name} must not modify its input (no in-place operations)",
            shown, hidden)
    require(isinstance(got, torch.Tensor), f"{name} must return a tensor",
            f"it returned {type(got).__name__}", hidden)
    require(tuple(got.shape) == tuple(expected.shape), f"{name} must keep the input's shape",
            f"{shown}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}", hidden)
    require(got.dtype == x.dtype, f"{name} must keep the input's dtype (float64 in, float64 out)",
            f"{shown}: got {got.dtype}", hidden)
    require(got.device == x.device, f"{name} must return its result on the input's device",
            f"{shown}: got {got.device}", hidden)
    bad = _mismatch(got, expected)
    if bool(bad.any()):
        nonfinite = bool((~_isfinite(got) & _isfinite(expected)).any())
        if nonfinite:
            concept = concepts["overflow"]
        else:
            kind = _where(x, bad) if elementwise else _slice_error(got, expected, args, kwargs)
            concept = concepts.get(f"value_{kind}", concepts["value"])
        same_tensor(got, expected, f"{name}'s result", hidden=hidden, rtol=1e-4, atol=1e-5,
                    concept=concept)
    # 2. gradients: autograd through the student's function vs through torch's
    gen = torch.Generator().manual_seed(seed + 11)
    w = torch.randn(expected.shape, generator=gen, dtype=x.dtype).to(x.device)
    xs = x.clone().requires_grad_(True)
    with tripwire(_TRIP, name, _HINT):
        out = call(fn, xs, *args, name=name, hidden=hidden, **kwargs)
    require(out.requires_grad, f"{name}'s result is cut off from autograd: compute it with torch "
            "operations on x (no .detach(), .item(), .numpy(), .data or torch.no_grad())", shown,
            hidden)
    (gs,) = _grad((out * w).sum(), xs, allow_unused=True)
    gs = torch.zeros_like(x) if gs is None else gs
    xr = x.clone().requires_grad_(True)
    (gr,) = _grad((ref(xr, *args, **kwargs) * w).sum(), xr)
    bad = _mismatch(gs, gr)
    if bool(bad.any()):
        if bool((~_isfinite(gs)).any()):
            concept = concepts["grad_nan"]
        else:
            kind = _where(x, bad) if elementwise else "ordinary"
            concept = concepts.get(f"grad_{kind}", concepts["grad"])
        same_tensor(gs, gr, f"the gradient of {name}", hidden=hidden, rtol=1e-4, atol=1e-5,
                    concept=concept)


def _run(fn: Fn, ref: Fn, cases: list[tuple[torch.Tensor, tuple, dict]], **kw: Any) -> None:
    __tracebackhide__ = True
    for x, args, kwargs in cases:
        _compare(fn, ref, x, args, kwargs, **kw)


# --- element-wise activations ----------------------------------------------------------------------

_OVERFLOW = ("{n} returns inf or NaN where torch gives a finite number: exp of a large "
             "argument overflows (exp(1000) = inf, and inf/inf = NaN). Arrange the formula so "
             "exp only ever sees arguments <= 0")
_GRAD_NAN = ("the gradient of {n} is NaN or inf at extreme inputs such as ±1e4, although its "
             "value looks fine: autograd differentiates every operation you wrote, and one of them "
             "overflowed (e.g. exp(1e4) = inf, then 0 * inf = NaN). Keep every intermediate "
             "finite; with torch.where, make BOTH branches safe")


def relu(fn: Fn, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """``fn(x)`` must equal ``F.relu(x)`` in value and gradient (0 at exactly 0)."""
    __tracebackhide__ = True
    _guard(fn, "relu", ["relu", "relu_", "ReLU", "threshold", "Threshold"])
    cases = [(x, (), {}) for x in _with_device(_elementwise_inputs(thorough, seed), thorough)]
    _run(fn, _relu, cases, name="relu", hidden=hidden, seed=seed, concepts={
        "value": "relu(x) is x where x > 0 and 0 everywhere else",
        "overflow": _OVERFLOW.format(n="relu"),
        "grad": "the gradient of relu is 1 where x > 0 and 0 where x < 0",
        "grad_zero": ("the gradient of relu at exactly 0 must be 0, as in torch (relu'(0) = 0): "
                      "use a strict x > 0 test (torch.maximum(x, 0) splits the gradient 0.5/0.5 "
                      "at the tie, and x >= 0 gives 1)"),
        "grad_nan": _GRAD_NAN.format(n="relu"),
    })


def leaky_relu(fn: Fn, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """``fn(x, negative_slope=0.01)`` must equal ``F.leaky_relu``, for any slope."""
    __tracebackhide__ = True
    _guard(fn, "leaky_relu", ["leaky_relu", "leaky_relu_", "LeakyReLU", "relu", "ReLU"])
    xs = _with_device(_elementwise_inputs(thorough, seed), thorough)
    cases = [(xs[0], (), {}), (xs[1], (), {"negative_slope": 0.2}), (xs[0], (0.1,), {})]
    if thorough:
        slopes = [0.0, 2.0, 0.3, -0.5, 0.05, 0.2]
        cases += [(x, (), {"negative_slope": s}) for x, s in zip(xs[2:], slopes, strict=False)]
    concepts = {
        "value": ("leaky_relu(x) is x where x > 0 and negative_slope * x elsewhere, for ANY "
                  "negative_slope (also 0, negative ones and ones above 1, where max(x, slope*x) "
                  "is wrong); its default is 0.01"),
        "overflow": _OVERFLOW.format(n="leaky_relu"),
        "grad": "the gradient of leaky_relu is 1 where x > 0 and negative_slope where x < 0",
        "grad_zero": ("the gradient of leaky_relu at exactly 0 must be negative_slope, as in torch: "
                      "use a strict x > 0 test for the positive branch (max(x, slope*x) splits the "
                      "gradient at the tie, and is wrong for slopes above 1)"),
        "grad_nan": _GRAD_NAN.format(n="leaky_relu"),
    }
    _run(fn, _leaky_relu, cases, name="leaky_relu", hidden=hidden, seed=seed, concepts=concepts)


def sigmoid(fn: Fn, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """``fn(x)`` must equal ``torch.sigmoid(x)``, stable in value and gradient at ±1e4."""
    __tracebackhide__ = True
    _guard(fn, "sigmoid", ["sigmoid", "sigmoid_", "Sigmoid", "expit"])
    cases = [(x, (), {}) for x in _with_device(_elementwise_inputs(thorough, seed), thorough)]
    _run(fn, _sigmoid, cases, name="sigmoid", hidden=hidden, seed=seed, concepts={
        "value": "sigmoid(x) = 1 / (1 + exp(-x))",
        "overflow": _OVERFLOW.format(n="sigmoid") + (
            ": for x >= 0 use 1 / (1 + exp(-x)), for x < 0 use exp(x) / (1 + exp(x))"),
        "grad": "the gradient of sigmoid is sigmoid(x) * (1 - sigmoid(x))",
        "grad_zero": ("the gradient of sigmoid at exactly 0 must be 0.25: abs() and sign() have "
                      "gradient 0 at 0, so do not build the stable formula on x.abs(); split x with "
                      "torch.where instead"),
        "grad_nan": _GRAD_NAN.format(n="sigmoid") + (
            ". The textbook 1 / (1 + exp(-x)) is fine in value but its gradient at x = -1e4 "
            "is 0 * inf = NaN"),
    })


def tanh(fn: Fn, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """``fn(x)`` must equal ``torch.tanh(x)``, stable in value and gradient at ±1e4."""
    __tracebackhide__ = True
    _guard(fn, "tanh", ["tanh", "tanh_", "Tanh"])
    cases = [(x, (), {}) for x in _with_device(_elementwise_inputs(thorough, seed), thorough)]
    _run(fn, _tanh, cases, name="tanh", hidden=hidden, seed=seed, concepts={
        "value": "tanh(x) = (1 - exp(-2x)) / (1 + exp(-2x)) = 2 * sigmoid(2x) - 1, in (-1, 1)",
        "overflow": _OVERFLOW.format(n="tanh") + (
            "; (exp(x) - exp(-x)) / (exp(x) + exp(-x)) is inf/inf at large |x|. Hint: "
            "tanh(x) = 2 * sigmoid(2x) - 1"),
        "grad": "the gradient of tanh is 1 - tanh(x)**2",
        "grad_zero": "the gradient of tanh at exactly 0 must be 1 (beware abs() and sign() at 0)",
        "grad_nan": _GRAD_NAN.format(n="tanh"),
    })


# --- softmax and log-softmax ---------------------------------------------------------------------

def _softmax_cases(thorough: bool, seed: int) -> list[tuple[torch.Tensor, tuple, dict]]:
    gen = torch.Generator().manual_seed(seed)
    big = torch.tensor([[1000.0, 999.0, 0.0], [-1e4, 1e4, 0.0], [0.0, 0.0, 0.0], [3.0, -2.0, 1.0]])
    cases: list[tuple[torch.Tensor, tuple, dict]] = [
        (torch.randn(4, 5, generator=gen), (1,), {}),
        (torch.randn(4, 5, generator=gen), (0,), {}),
        (big, (-1,), {}),
        (torch.randn(2, 3, 4, generator=gen), (1,), {}),
    ]
    if thorough:
        cases += [
            (big.T.contiguous(), (0,), {}),
            (10 * torch.randn(3, 4, 5, generator=gen, dtype=torch.float64), (-2,), {}),
            (big.double() * 10, (1,), {}),
            (torch.randn(7, generator=gen), (0,), {}),
            (torch.tensor([[float("-inf"), 0.0, 1.0], [2.0, float("-inf"), 2.0]]), (1,), {}),
            (torch.randn(2, 3, 4, generator=gen) + 500, (0,), {}),
            (torch.randn(3, 5, generator=gen), (), {"dim": -1}),
        ]
        dev = _accelerator()
        if dev is not None:
            cases.append((big.to(dev), (1,), {}))
    return cases


def _softmax_concepts(n: str) -> dict[str, str]:
    return {
        "value": (f"{n} must normalise along the given dim only (each slice along `dim` sums "
                  "to 1); negative dims count from the end, and `dim` may be passed by keyword"),
        "overflow": (f"{n} gives NaN or inf on extreme logits: exp(1000) overflows to inf "
                     "(inf/inf = NaN), and a slice whose exps all underflow to 0 gives 0/0 = NaN. "
                     "Subtract the maximum along dim (keepdim=True; not the max of the whole "
                     "tensor) before exp; the result does not change because softmax ignores a "
                     "constant shift"),
        "value_shift": (f"{n} is off by a constant in each slice along dim: after shifting by "
                        "the max m, log_softmax(x) = (x - m) - log(sum(exp(x - m))); subtract the "
                        "shift from x once, not twice, and do not drop it"),
        "grad": f"the gradient of {n} is wrong although its values are right",
        "grad_nan": (f"the gradient of {n} is NaN or inf on extreme logits: every intermediate "
                     "must stay finite (subtract the max before exp, never take log of 0)"),
    }


def softmax(fn: Fn, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """``fn(x, dim)`` must equal ``F.softmax(x, dim)``, stable on large logits."""
    __tracebackhide__ = True
    _guard(fn, "softmax", ["softmax", "Softmax", "_softmax"])
    _run(fn, _softmax, _softmax_cases(thorough, seed), name="softmax", hidden=hidden, seed=seed,
         concepts=_softmax_concepts("softmax"), elementwise=False)


def log_softmax(fn: Fn, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """``fn(x, dim)`` must equal ``F.log_softmax(x, dim)``, finite where torch's is."""
    __tracebackhide__ = True
    _guard(fn, "log_softmax", ["log_softmax", "LogSoftmax", "_log_softmax"])
    concepts = _softmax_concepts("log_softmax")
    concepts["overflow"] = (
        "log_softmax gives -inf or NaN on extreme logits where torch's is finite: log(softmax(x)) "
        "takes log(0) once a probability underflows. Use the log-sum-exp trick: "
        "x - m - log(sum(exp(x - m))) with m the max along dim (keepdim=True)")
    _run(fn, _log_softmax, _softmax_cases(thorough, seed), name="log_softmax", hidden=hidden,
         seed=seed, concepts=concepts, elementwise=False)


# --- a custom autograd.Function ------------------------------------------------------------------

def relu_function(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """``cls`` must be an ``autograd.Function`` whose own forward/backward reproduce ``F.relu``."""
    __tracebackhide__ = True
    name = "ReLUFunction"
    require(isinstance(cls, type) and issubclass(cls, torch.autograd.Function),
            "ReLUFunction must be a class that subclasses torch.autograd.Function",
            f"got {cls!r}", hidden)
    for meth in ("forward", "backward"):
        require(isinstance(vars(cls).get(meth), staticmethod),
                f"ReLUFunction must define its own `{meth}` as a @staticmethod taking ctx first",
                f"{meth} is missing or not a staticmethod", hidden)
    for meth in ("forward", "backward"):
        _guard(vars(cls)[meth].__func__, name, ["relu", "relu_", "ReLU", "threshold", "Threshold"])
    gen = torch.Generator().manual_seed(seed)
    xs = [torch.tensor(_SPECIAL), 3 * torch.randn(4, 5, generator=gen)]
    if thorough:
        xs += [torch.randn(2, 3, 4, generator=gen, dtype=torch.float64), torch.tensor(0.0)]
        dev = _accelerator()
        xs += [xs[1].to(dev)] if dev is not None else []
    for x in xs:
        shown = f"x of shape {tuple(x.shape)}, dtype {x.dtype}"
        x_in = x.clone().requires_grad_(True)
        with tripwire(_TRIP, name, _HINT):
            y = call(cls.apply, x_in, name="ReLUFunction.apply", hidden=hidden)
        require(_equal(x_in.detach(), x), "ReLUFunction.forward must not modify its input "
                "(return a new tensor, not x.clamp_(...) or x[x < 0] = 0)", shown, hidden)
        require(isinstance(y, torch.Tensor), "ReLUFunction.forward must return a tensor",
                f"it returned {type(y).__name__}", hidden)
        require(y.grad_fn is not None and isinstance(y.grad_fn, cls._backward_cls),
                "ReLUFunction.apply(x) must be differentiated by YOUR backward: return a tensor "
                "computed in forward (autograd records the Function's own backward node)",
                f"grad_fn is {type(y.grad_fn).__name__}", hidden)
        same_tensor(y, _relu(x), "ReLUFunction.apply(x)", hidden=hidden,
                    concept="ReLUFunction.forward must return x where x > 0 and 0 elsewhere, with "
                            "x's shape, dtype and device")
        w = torch.randn(y.shape, generator=gen, dtype=x.dtype).to(x.device) * 3
        with tripwire(_TRIP, name, _HINT):
            try:
                (g,) = _grad((y * w).sum(), x_in, allow_unused=True)
            except NotImplementedError:
                raise CheckFailure("ReLUFunction.backward is not implemented yet") from None
            except CheckFailure:
                raise
            except Exception as exc:
                raise CheckFailure(f"ReLUFunction.backward raised {type(exc).__name__}: {exc}",
                                   "backward(ctx, grad_output) must return one gradient per "
                                   "forward input; keep what you need with "
                                   "ctx.save_for_backward(...)", hidden) from None
        require(g is not None, "ReLUFunction.backward returned None for x: return the gradient",
                shown, hidden)
        expected = w * (x > 0)
        if not _allclose(g, expected, rtol=1e-5, atol=1e-6):
            if _allclose(g, w):
                concept = ("ReLUFunction.backward passes grad_output through unmasked: zero it "
                           "where the input was <= 0")
            elif _allclose(g, (x > 0).to(g.dtype)) or _allclose(g, (x >= 0).to(g.dtype)):
                concept = ("ReLUFunction.backward must MULTIPLY grad_output by the mask (chain "
                           "rule), not return the mask alone")
            elif _allclose(g, w * (x >= 0)):
                concept = ("ReLUFunction.backward at exactly 0 must give 0, as torch does: mask "
                           "with x > 0, not x >= 0")
            else:
                concept = "ReLUFunction.backward must return grad_output * (x > 0)"
            same_tensor(g, expected, "the gradient from ReLUFunction.backward", hidden=hidden,
                        concept=concept)
    # gradcheck compares backward with finite differences (in float64, away from the kink at 0)
    x = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    x = (x + 0.2 * x.sign()).requires_grad_(True)
    with tripwire(_TRIP, name, _HINT):
        ok = _gradcheck(cls.apply, (x,), eps=1e-6, atol=1e-5, raise_exception=False)
    require(ok, "_gradcheck fails: ReLUFunction.backward does not match the finite-"
            "difference slope of forward (in float64)", None, hidden)
