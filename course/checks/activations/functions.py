"""Element-wise activations (relu, leaky_relu, sigmoid, tanh) and softmax / log_softmax."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .._compare import (
    LOW_PRECISION,
    fail_values,
    grad_mismatch,
    mismatch,
    record_call,
    reference_grad,
    result_of,
    show_inputs,
)
from .._core import Check, Delegation, check_device, require, swapped_globals
from .._guards import tripwire
from ._common import (
    _ACTIVATIONS,
    _HINT,
    _REF,
    _SWAP,
    _TRIP,
    _Case,
    _elementwise_cases,
    _grad_seed,
    _leaky_cases,
    _softmax_cases,
)

__all__ = ["leaky_relu", "log_softmax", "relu", "sigmoid", "softmax", "tanh"]


# --- scenario ------------------------------------------------------------------------------------

def _scenario(name: str, cases: Callable[[bool, int], list[_Case]], swaps: tuple[str, ...]):
    def scenario(fn: Any, *, thorough: bool = False, seed: int = 0) -> list[dict]:
        device, out = check_device(), []
        with swapped_globals(fn, {k: _SWAP[k] for k in swaps}), tripwire(_TRIP):
            for i, case in enumerate(cases(thorough, seed)):
                extra = ", ".join([repr(a) for a in case.args] +
                                  [f"{k}={v!r}" for k, v in case.kwargs.items()])
                call = f"{name}(<tensor of shape {tuple(case.x.shape)}, {case.x.dtype}>" + (
                    f", {extra})" if extra else ")")
                out.append(record_call(fn, [case.x], case.args, case.kwargs, device=device,
                                       call=call, grad_seed=_grad_seed(seed, i)))
        return out

    return scenario


# --- verdict -------------------------------------------------------------------------------------

def _where(x: torch.Tensor, bad: torch.Tensor) -> str:
    """Classify the inputs at which a result differs: 'nonfinite', 'zero', 'extreme' or 'ordinary'."""
    xb = x[bad].double()
    if not xb.numel():
        return "ordinary"
    if bool((~torch.isfinite(xb)).all()):
        return "nonfinite"
    if bool((xb == 0).all()):
        return "zero"
    if bool((xb.abs() >= 50).all()):
        return "extreme"
    return "ordinary"


def _is_shift(got: torch.Tensor, expected: torch.Tensor, case: _Case) -> bool:
    """For softmax-like results: off by a constant in each slice along dim."""
    dim = case.args[0] if case.args else case.kwargs.get("dim", -1)
    diff = got.double() - expected.double()
    diff = torch.where(torch.isfinite(diff), diff, torch.zeros_like(diff))
    spread = diff.amax(dim=dim) - diff.amin(dim=dim)
    return bool((spread.abs() < 1e-4).all()) and bool((diff.abs() > 1e-4).any())


_LOWP_NOTE = (" In float16, exp overflows already above 11.09 (its largest number is 65504); "
              "compute in the input's dtype with the same stable formula")


def _dtype_concept(n: str, dtype: torch.dtype) -> str:
    text = f"{n} must keep the input's dtype ({dtype} in, {dtype} out)"
    if dtype in LOW_PRECISION:
        text += (": do not convert with .float(), and make constants with torch.zeros_like or "
                 "plain Python numbers (torch.zeros(shape) and torch.tensor(0.0) are float32, and "
                 "mixing them in turns a half-precision result into float32)")
    return text


def _judge_case(name: str, case: _Case, rec: Any, concepts: dict[str, str], *, hidden: bool,
                seed: int, elementwise: bool) -> None:
    x = case.x
    extra = ", ".join([f"dim={a}" for a in case.args] + [f"{k}={v}" for k, v in case.kwargs.items()])
    shown = show_inputs(x, extra)
    expected, gexp = reference_grad(_REF[name], x, case.args, case.kwargs, seed)
    got = result_of(rec, torch.empty(expected.shape, dtype=x.dtype), exercise=name, shown=shown,
                    concept=concepts.get(f"raised_{case.kind}", concepts["value"]), hidden=hidden,
                    dtype_concept=_dtype_concept(name, x.dtype))
    bad = mismatch(got, expected, x.dtype)
    if bool(bad.any()):
        overflow = bool((~torch.isfinite(got) & torch.isfinite(expected) & torch.isfinite(x)).any())
        if case.kind == "nonfinite" and (not elementwise or _where(x, bad) == "nonfinite"):
            concept = concepts["nonfinite"]
        elif overflow:
            concept = concepts["overflow"] + (_LOWP_NOTE if x.dtype in LOW_PRECISION else "")
        elif case.kind == "lowp":
            concept = concepts["lowp"]
        elif elementwise:
            concept = concepts.get(f"value_{_where(x, bad)}", concepts["value"])
        else:
            concept = concepts["value_shift"] if _is_shift(got, expected, case) else concepts["value"]
        fail_values(got, expected, bad, concept, shown, hidden)
    wrong = grad_mismatch(rec, gexp, x, seed, exercise=name, concept=concepts["value"],
                          shown=shown, hidden=hidden, skip=torch.isnan(x) if elementwise else None)
    if wrong is None:
        return
    grad, bad = wrong
    if not bool(torch.isfinite(grad[bad]).all()):
        concept = concepts["grad_nan"] + (_LOWP_NOTE if x.dtype in LOW_PRECISION else "")
    elif elementwise:
        kind = _where(x, bad)
        concept = concepts.get(f"grad_{kind}", concepts["grad"])
    else:
        concept = concepts["grad"]
    fail_values(grad, gexp, bad, concept, f"the gradient, {shown}", hidden)


def _verdict(name: str, cases: Callable[[bool, int], list[_Case]], concepts: dict[str, str],
             elementwise: bool = True):
    def verdict(data: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
        todo = cases(thorough, seed)
        require(isinstance(data, list) and len(data) == len(todo),
                f"the grader got an incomplete record of {name}'s results", None, hidden)
        for i, (case, rec) in enumerate(zip(todo, data, strict=True)):
            _judge_case(name, case, rec, concepts, hidden=hidden, seed=_grad_seed(seed, i),
                        elementwise=elementwise)

    return verdict


def _check(name: str, cases: Callable[[bool, int], list[_Case]], concepts: dict[str, str], *,
           own: list[str], swaps: tuple[str, ...] = (), elementwise: bool = True, doc: str) -> Check:
    concepts.setdefault("lowp", (
        f"{name} in float16/bfloat16 is further from torch's result than rounding in that dtype "
        "explains: use the same stable formula as in float32, in the input's dtype"))
    check = Check(f"activations.{name}", name, _scenario(name, cases, swaps),
                  _verdict(name, cases, concepts, elementwise),
                  Delegation(_HINT, names=frozenset(own), attrs=frozenset(_ACTIVATIONS)))
    check.__doc__ = doc
    return check


# --- element-wise activations ----------------------------------------------------------------------

_OVERFLOW = ("{n} returns inf or NaN where torch gives a finite number: exp of a large "
             "argument overflows (exp(1000) = inf, and inf/inf = NaN). Arrange the formula so "
             "exp only ever sees arguments <= 0")
_GRAD_NAN = ("the gradient of {n} is NaN or inf at extreme inputs such as ±1e4, although its "
             "value looks fine: autograd differentiates every operation you wrote, and one of them "
             "overflowed (e.g. exp(1e4) = inf, then 0 * inf = NaN). Keep every intermediate "
             "finite; with torch.where, make BOTH branches safe")
_NONFINITE_TEXT = ("{n} must follow torch on ±inf and NaN: {rule}. inf - inf and 0 * inf are NaN, "
                   "and NaN fails every comparison (NaN > 0 and NaN <= 0 are both False)")

relu = _check("relu", _elementwise_cases, {
    "value": "relu(x) is x where x > 0 and 0 everywhere else",
    "nonfinite": _NONFINITE_TEXT.format(n="relu", rule=(
        "relu(-inf) = 0, relu(inf) = inf, relu(NaN) = NaN. torch.where(x > 0, x, 0) turns NaN "
        "into 0 (test x <= 0 instead, so NaN keeps x), and x * (x > 0) gives -inf * 0 = NaN")),
    "overflow": _OVERFLOW.format(n="relu"),
    "grad": "the gradient of relu is 1 where x > 0 and 0 where x < 0",
    "grad_zero": ("the gradient of relu at exactly 0 must be 0, as in torch (relu'(0) = 0): "
                  "let the tie x == 0 take the zero branch (torch.maximum(x, 0) splits the "
                  "gradient 0.5/0.5 at the tie, and clamp or an x >= 0 test gives 1)"),
    "grad_nan": _GRAD_NAN.format(n="relu"),
}, own=["relu", "relu_", "ReLU", "threshold", "Threshold"],
    doc="``fn(x)`` must equal ``F.relu(x)`` in value and gradient (0 at exactly 0, NaN stays NaN).")

leaky_relu = _check("leaky_relu", _leaky_cases, {
    "value": ("leaky_relu(x) is x where x > 0 and negative_slope * x elsewhere, for ANY "
              "negative_slope (also 0, negative ones and ones above 1, where max(x, slope*x) "
              "is wrong); its default is 0.01"),
    "nonfinite": _NONFINITE_TEXT.format(n="leaky_relu", rule=(
        "inf stays inf, -inf becomes negative_slope * -inf, NaN stays NaN")),
    "overflow": _OVERFLOW.format(n="leaky_relu"),
    "grad": "the gradient of leaky_relu is 1 where x > 0 and negative_slope where x < 0",
    "grad_zero": ("the gradient of leaky_relu at exactly 0 must be negative_slope, as in torch: "
                  "use a strict x > 0 test for the positive branch (max(x, slope*x) splits the "
                  "gradient at the tie, and is wrong for slopes above 1)"),
    "grad_nan": _GRAD_NAN.format(n="leaky_relu"),
}, own=["leaky_relu", "leaky_relu_", "LeakyReLU", "relu", "ReLU"], swaps=("relu",),
    doc="``fn(x, negative_slope=0.01)`` must equal ``F.leaky_relu``, for any slope.")

sigmoid = _check("sigmoid", _elementwise_cases, {
    "value": "sigmoid(x) = 1 / (1 + exp(-x))",
    "nonfinite": _NONFINITE_TEXT.format(n="sigmoid", rule=(
        "sigmoid(-inf) = 0, sigmoid(inf) = 1, sigmoid(NaN) = NaN. If you split x into a positive "
        "and a negative part, select each with torch.where rather than computing one as x minus "
        "the other (inf - inf = NaN)")),
    "overflow": _OVERFLOW.format(n="sigmoid") + (
        ": for x >= 0 use 1 / (1 + exp(-x)), for x < 0 use exp(x) / (1 + exp(x))"),
    "grad": "the gradient of sigmoid is sigmoid(x) * (1 - sigmoid(x))",
    "grad_zero": ("the gradient of sigmoid at exactly 0 must be 0.25: abs() and sign() have "
                  "gradient 0 at 0, so do not build the stable formula on x.abs(); split x with "
                  "torch.where instead"),
    "grad_nan": _GRAD_NAN.format(n="sigmoid") + (
        ". The textbook 1 / (1 + exp(-x)) is fine in value but its gradient at x = -1e4 "
        "is 0 * inf = NaN"),
}, own=["sigmoid", "sigmoid_", "Sigmoid", "expit"],
    doc="``fn(x)`` must equal ``torch.sigmoid(x)``, stable in value and gradient at ±1e4 and ±inf.")

tanh = _check("tanh", _elementwise_cases, {
    "value": "tanh(x) = (1 - exp(-2x)) / (1 + exp(-2x)) = 2 * sigmoid(2x) - 1, in (-1, 1)",
    "nonfinite": _NONFINITE_TEXT.format(n="tanh", rule="tanh(±inf) = ±1, tanh(NaN) = NaN"),
    "overflow": _OVERFLOW.format(n="tanh") + (
        "; (exp(x) - exp(-x)) / (exp(x) + exp(-x)) is inf/inf at large |x|. Hint: "
        "tanh(x) = 2 * sigmoid(2x) - 1"),
    "grad": "the gradient of tanh is 1 - tanh(x)**2",
    "grad_zero": "the gradient of tanh at exactly 0 must be 1 (beware abs() and sign() at 0)",
    "grad_nan": _GRAD_NAN.format(n="tanh"),
}, own=["tanh", "tanh_", "Tanh"], swaps=("sigmoid",),
    doc="``fn(x)`` must equal ``torch.tanh(x)``; a tanh built on ``sigmoid`` is run with a correct "
        "sigmoid, so a wrong sigmoid is charged to sigmoid only.")


# --- softmax and log-softmax ---------------------------------------------------------------------

def _softmax_concepts(n: str) -> dict[str, str]:
    return {
        "value": (f"{n} must normalise along the given dim only (each slice along `dim` sums "
                  "to 1); negative dims count from the end, and `dim` may be passed by keyword"),
        "nonfinite": (f"{n} must follow torch on -inf and NaN: a -inf logit (a masked position) "
                      "gets probability 0 (log-probability -inf) and the others share all of it, "
                      "a slice holding NaN is NaN throughout, and so is a slice that is all -inf. "
                      "Shift by the maximum along dim (amax propagates NaN) and do not replace "
                      "NaN or inf by other numbers"),
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


softmax = _check("softmax", _softmax_cases, _softmax_concepts("softmax"),
                 own=["softmax", "Softmax", "_softmax"], swaps=("log_softmax",), elementwise=False,
                 doc="``fn(x, dim)`` must equal ``F.softmax(x, dim)``, stable on large logits.")

_LSM = _softmax_concepts("log_softmax")
_LSM["overflow"] = (
    "log_softmax gives -inf or NaN on extreme logits where torch's is finite: log(softmax(x)) "
    "takes log(0) once a probability underflows. Use the log-sum-exp trick: "
    "x - m - log(sum(exp(x - m))) with m the max along dim (keepdim=True)")
log_softmax = _check("log_softmax", _softmax_cases, _LSM,
                     own=["log_softmax", "LogSoftmax", "_log_softmax"], swaps=("softmax",),
                     elementwise=False,
                     doc="``fn(x, dim)`` must equal ``F.log_softmax(x, dim)``, finite where torch's is.")
