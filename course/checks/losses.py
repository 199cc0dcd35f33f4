"""Checks for 07_losses: MSE, binary cross-entropy on logits and cross-entropy (weight, reduction,
ignore_index, label_smoothing), compared with ``torch.nn.functional`` in value and in the gradient
with respect to the predictions, on ordinary and extreme inputs, in float32 and float64.

Each scenario runs the answer on the check device and records the loss, the gradient with respect
to the predictions (for a cotangent drawn from the seed) and whether any input was modified; each
verdict computes torch's loss itself on the CPU and names the concept a difference points to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ._compare import (
    fail_values,
    grad_mismatch,
    mismatch,
    place,
    record_call,
    reference_grad,
    result_of,
    trip_targets,
)
from ._core import Check, Delegation, Raised, attempt, check_device, expect, require
from ._guards import tripwire

__all__ = ["binary_cross_entropy_with_logits", "cross_entropy", "mse_loss"]

_LOSSES = [
    "mse_loss", "MSELoss", "l1_loss", "huber_loss", "HuberLoss", "smooth_l1_loss", "SmoothL1Loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "BCELoss", "BCEWithLogitsLoss",
    "cross_entropy", "cross_entropy_loss", "CrossEntropyLoss", "nll_loss", "nll_loss_nd",
    "nll_loss2d", "NLLLoss", "log_softmax", "_log_softmax", "LogSoftmax", "softmax", "_softmax",
    "Softmax", "logsigmoid", "log_sigmoid", "LogSigmoid", "softplus", "Softplus",
]
_TRIP = trip_targets(_LOSSES)
_HINT = ("Allowed: tensor arithmetic, torch.exp/log/log1p/clamp/where/abs/maximum, amax/sum/mean, "
         "indexing and gather, torch.logsumexp, torch.logaddexp, torch.sigmoid and your own "
         "functions. Not allowed: torch's loss functions (F.mse_loss, F.binary_cross_entropy"
         "[_with_logits], F.cross_entropy, F.nll_loss, nn.*Loss), F.log_softmax, F.softmax, "
         "F.logsigmoid and F.softplus.")

# The references, captured at import (before any student code runs).
_REF: dict[str, Callable[..., torch.Tensor]] = {
    "mse_loss": F.mse_loss, "binary_cross_entropy_with_logits": F.binary_cross_entropy_with_logits,
    "cross_entropy": F.cross_entropy}


@dataclass
class _Case:
    """One call ``fn(x, target, **kwargs)``; ``concept`` is what a failure here most likely means."""

    x: torch.Tensor
    target: torch.Tensor
    kwargs: dict = field(default_factory=dict)
    concept: str = ""
    grad_concept: str | None = None
    check_grad: bool = True


def _grad_seed(seed: int, i: int) -> int:
    return 1000 * seed + 5 + i


def _scenario(name: str, cases: Callable[..., list[_Case]]):
    def scenario(fn: Any, *, thorough: bool = False, seed: int = 0, **options: Any) -> dict:
        device, records = check_device(), []
        with tripwire(_TRIP):
            for i, case in enumerate(cases(thorough, seed, **options)):
                kw = ", ".join(f"{k}={'<tensor>' if isinstance(v, torch.Tensor) else repr(v)}"
                               for k, v in case.kwargs.items())
                call = (f"{name}(<input of shape {tuple(case.x.shape)}, {case.x.dtype}>, <target "
                        f"of shape {tuple(case.target.shape)}>" + (f", {kw})" if kw else ")"))
                records.append(record_call(fn, [case.x, case.target], (), case.kwargs,
                                           device=device, call=call,
                                           grad_seed=_grad_seed(seed, i) if case.check_grad else None))
            bad_reduction = None
            if thorough and options.get("part", "all") != "options":
                first = cases(False, seed, **options)[0]
                x, t = place([first.x[:3], first.target[:3]], device)
                bad_reduction = attempt(fn, x, t, reduction="average",
                                        call=f"{name}(input, target, reduction='average')")
        return {"cases": records, "bad_reduction": bad_reduction}

    return scenario


def _reduction_concept(name: str, got: torch.Tensor, case: _Case) -> str | None:
    """Name a wrong reduction when the student's value equals another reduction's."""
    red = case.kwargs.get("reduction", "mean")
    ref = _REF[name]
    others = {r: ref(case.x, case.target, **{**case.kwargs, "reduction": r})
              for r in ("none", "mean", "sum")}
    if not bool(torch.isfinite(others[red]).all()):
        return None  # e.g. the mean of no targets at all: 0/0
    for r, val in others.items():
        if r != red and val.shape == got.shape and not bool(mismatch(got, val, val.dtype).any()):
            return (f"reduction={red!r} was not applied ({name} returned what reduction={r!r} "
                    "gives): 'none' returns one loss per element, 'sum' adds them up, 'mean' "
                    "averages them")
    if name != "cross_entropy" and red == "mean" and got.dim() == 0 and case.x.dim() > 1:
        by_batch = others["sum"] / case.x.shape[0]
        if not bool(mismatch(got, by_batch, by_batch.dtype).any()):
            return ("reduction='mean' averages over ALL elements (every dimension), not over the "
                    "batch dimension only")
    return None


def _judge_case(name: str, case: _Case, rec: Any, *, hidden: bool, seed: int, overflow: str) -> None:
    kw = case.kwargs
    shown = (f"input of shape {tuple(case.x.shape)} ({case.x.dtype}), target of shape "
             f"{tuple(case.target.shape)}" + (f", {kw}" if kw else ""))
    expected, gexp = reference_grad(_REF[name], case.x, (case.target,), kw, seed)
    value = rec.get("value") if isinstance(rec, dict) else None
    shape_concept = case.concept
    if (isinstance(value, torch.Tensor) and value.is_floating_point()
            and tuple(value.shape) != tuple(expected.shape)):
        shape_concept = _reduction_concept(name, value.detach().cpu().to(expected.dtype),
                                           case) or case.concept
    got = result_of(rec, expected, exercise=name, concept=case.concept, shown=shown, hidden=hidden,
                    inplace_concept=f"{name} must not modify its inputs (no in-place operations)",
                    shape_concept=shape_concept)
    bad = mismatch(got, expected, case.x.dtype)
    if bool(bad.any()):
        if bool((~torch.isfinite(got) & torch.isfinite(expected)).any()):
            concept = overflow
        else:
            concept = _reduction_concept(name, got, case) or case.concept
        fail_values(got, expected, bad, concept, shown, hidden)
    if not case.check_grad:
        return
    wrong = grad_mismatch(rec, gexp, case.x, seed, exercise=name, concept=case.concept,
                          shown=shown, hidden=hidden)
    if wrong is not None:
        grad, bad = wrong
        concept = case.grad_concept or (
            f"the gradient of {name} with respect to its input does not match torch's, although "
            "the value does" + ("" if bool(torch.isfinite(grad).all()) else
                                ": it contains NaN or inf, so some intermediate overflowed"))
        fail_values(grad, gexp, bad, concept, f"the gradient, {shown}", hidden)


def _verdict(name: str, cases: Callable[..., list[_Case]], overflow: str):
    def verdict(data: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0,
                **options: Any) -> None:
        todo = cases(thorough, seed, **options)
        records = data.get("cases") if isinstance(data, dict) else None
        require(isinstance(records, list) and len(records) == len(todo),
                f"the grader got an incomplete record of {name}'s results", None, hidden)
        for i, (case, rec) in enumerate(zip(todo, records, strict=True)):
            _judge_case(name, case, rec, hidden=hidden, seed=_grad_seed(seed, i), overflow=overflow)
        if thorough and options.get("part", "all") != "options":
            raised = data.get("bad_reduction")
            if isinstance(raised, Raised) and raised.type == "NotImplementedError":
                expect(raised, name, hidden=hidden)
            require(isinstance(raised, Raised) and raised.type == "ValueError",
                    f"{name} must raise ValueError for an unknown reduction (e.g. 'average'), as "
                    "torch does; accept only 'none', 'mean' and 'sum'",
                    f"it {'raised ' + raised.type if isinstance(raised, Raised) else 'returned'}",
                    hidden)

    return verdict


def _check(name: str, cases: Callable[..., list[_Case]], overflow: str, own: list[str],
           doc: str) -> Check:
    check = Check(f"losses.{name}", name, _scenario(name, cases), _verdict(name, cases, overflow),
                  Delegation(_HINT, names=frozenset(own), attrs=frozenset(_LOSSES)))
    check.__doc__ = doc
    return check


_RED = ("reduction: 'none' returns one loss per element (the input's shape), 'sum' adds them up, "
        "'mean' averages them (the default)")


# --- MSE -----------------------------------------------------------------------------------------

_SQ = "MSE is the mean of (pred - target) ** 2 over every element"


def _mse_cases(thorough: bool, seed: int) -> list[_Case]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    cases = [_Case(r(6), r(6), {}, _SQ), _Case(r(4, 5), r(4, 5), {}, _SQ + " (all elements, not rows)"),
             _Case(r(4, 5), r(4, 5), {"reduction": "sum"}, _RED),
             _Case(r(4, 5), r(4, 5), {"reduction": "none"}, _RED)]
    if thorough:
        f64 = torch.float64
        cases += [_Case(r(2, 3, 4, dtype=f64), r(2, 3, 4, dtype=f64), {}, _SQ),
                  _Case(r(3, 2) * 1e4, r(3, 2), {"reduction": "sum"}, _RED),
                  _Case(r(3, 1, 2, dtype=f64), r(3, 1, 2, dtype=f64), {"reduction": "none"}, _RED),
                  _Case(torch.tensor(2.0), torch.tensor(-1.0), {}, _SQ)]
    return cases


mse_loss = _check("mse_loss", _mse_cases, "mse_loss gives inf or NaN where torch's is finite",
                  ["mse_loss", "MSELoss"],
                  "``fn(pred, target, reduction='mean')`` must equal ``F.mse_loss``.")


# --- BCE with logits -----------------------------------------------------------------------------

_BCE = ("binary cross-entropy on logits is -[t·log σ(x) + (1 - t)·log(1 - σ(x))] "
        "= (1 - t)·x + log(1 + exp(-x)), averaged with reduction='mean'; targets may be any "
        "probability in [0, 1]")
_BCE_OVERFLOW = (
    "binary_cross_entropy_with_logits gives inf or NaN on large logits (±1e4) where torch's is "
    "finite: exp(-x) overflows at x = -1e4, and computing sigmoid first, then log(sigmoid) or "
    "log(1 - sigmoid), takes log(0) once sigmoid rounds to 0 or 1. Work with the logits directly: "
    "loss = (1 - t)·x + log(1 + exp(-x)), with log(1 + exp(-x)) = m + log(exp(-m) + exp(-x - m)) "
    "for m = max(-x, 0) (or torch.logaddexp(0, -x)), so exp never overflows")
_BCE_GRAD = (
    "the gradient of binary_cross_entropy_with_logits must be sigmoid(x) - target everywhere, "
    "also at logit exactly 0 (0.5 - target) and at ±1e4: x.abs() and max(x, 0) have a kink at 0 "
    "where autograd takes a one-sided slope, so log(1 + exp(-|x|)) gets the gradient at 0 wrong; "
    "use m + log(exp(-m) + exp(-x - m)) with m = max(-x, 0), whose value does not depend on m")


def _bce_cases(thorough: bool, seed: int) -> list[_Case]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    def probs(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.rand(*shape, generator=g, dtype=dtype)

    def hard(*shape: int) -> torch.Tensor:
        return torch.randint(0, 2, shape, generator=g).float()

    extreme = torch.tensor([1e4, -1e4, 1e4, -1e4, 1000.0, -1000.0, 30.0, -30.0])
    extreme_t = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.3, 0.7, 1.0, 0.0])
    cases = [
        _Case(2 * r(8), hard(8), {}, _BCE), _Case(2 * r(4, 3), probs(4, 3), {}, _BCE),
        _Case(2 * r(4, 3), hard(4, 3), {"reduction": "none"}, _RED),
        _Case(2 * r(4, 3), probs(4, 3), {"reduction": "sum"}, _RED),
        _Case(extreme, extreme_t, {"reduction": "none"}, _BCE_OVERFLOW, _BCE_GRAD),
        _Case(torch.zeros(4), torch.tensor([0.0, 1.0, 0.25, 1.0]), {}, _BCE, _BCE_GRAD),
    ]
    if thorough:
        f64 = torch.float64
        cases += [
            _Case(3 * r(2, 3, 4, dtype=f64), probs(2, 3, 4, dtype=f64), {}, _BCE),
            _Case(extreme.double() * 10, extreme_t.double(), {"reduction": "sum"}, _BCE_OVERFLOW,
                  _BCE_GRAD),
            _Case(extreme, extreme_t, {}, _BCE_OVERFLOW, _BCE_GRAD),
            _Case(torch.zeros(2, 3, dtype=f64), probs(2, 3, dtype=f64), {"reduction": "none"},
                  _BCE, _BCE_GRAD),
            _Case(torch.tensor(-3.0), torch.tensor(1.0), {}, _BCE),
        ]
    return cases


binary_cross_entropy_with_logits = _check(
    "binary_cross_entropy_with_logits", _bce_cases, _BCE_OVERFLOW,
    ["binary_cross_entropy_with_logits", "BCEWithLogitsLoss", "binary_cross_entropy", "BCELoss"],
    "``fn(logits, target, reduction='mean')`` must equal ``F.binary_cross_entropy_with_logits``.")


# --- cross-entropy -------------------------------------------------------------------------------

_CE = ("cross-entropy on logits is -log_softmax(logits, dim=1)[target] per sample (classes are "
       "along dim 1, for (N, C) and (N, C, d1, ...) logits alike), averaged with reduction='mean'")
_CE_SHAPE = ("for (N, C, d1, ...) logits the classes are along dim 1 and target has shape "
             "(N, d1, ...): compute log-softmax over dim=1 and pick the target class at every "
             "position")
_CE_OVERFLOW = ("cross_entropy gives inf or NaN on extreme logits (±1e4) where torch's is finite: "
                "compute log-softmax with the log-sum-exp trick (subtract the max along dim 1), "
                "never log(softmax) or exp of raw logits")
_CE_WEIGHT = ("class weights: each sample's loss is multiplied by weight[target]; with "
              "reduction='mean' the sum is divided by the SUM of the weights of the (non-ignored) "
              "targets, not by N")
_CE_IGNORE = ("ignore_index: targets equal to ignore_index (default -100, which is not a valid "
              "class, so mask it out before indexing or gather; any other value, negative ones "
              "such as -1 included, is honoured the same way) get loss 0 ('none' keeps a 0 "
              "there) and are left out of the mean's denominator (with weights: out of the sum of "
              "weights); if every target is ignored, 'mean' is 0/0 = nan, as in torch")
_CE_SMOOTH = ("label_smoothing ε: the target distribution becomes (1 - ε)·one_hot + ε/C on EVERY "
              "one of the C classes (the true class included), so loss = (1 - ε)·nll + "
              "(ε/C)·Σ_c -log p_c; with class weights each -log p_c in the sum is multiplied by "
              "weight[c], and 'mean' divides by the same denominator as the nll part")


def _ce_cases(thorough: bool, seed: int, part: str = "all") -> list[_Case]:
    """``part``: 'basic' (plain loss, reductions, extreme logits, (N, C, d1, ...) shapes),
    'options' (weight, ignore_index, label_smoothing) or 'all'."""
    g = torch.Generator().manual_seed(seed)

    def logits(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return 2 * torch.randn(*shape, generator=g, dtype=dtype)

    def labels(c: int, *shape: int) -> torch.Tensor:
        return torch.randint(0, c, shape, generator=g)

    def weight(c: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.rand(c, generator=g, dtype=dtype) * 2 + 0.1

    ign = labels(4, 6)
    ign[[1, 4]] = -100
    minus_one = labels(3, 7)
    minus_one[[0, 5]] = -1  # a negative ignore_index is a valid Python index: mask it anyway
    extreme = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0], [1000.0, 0.0, -1000.0]])
    basic = [
        _Case(logits(6, 4), labels(4, 6), {}, _CE),
        _Case(logits(6, 4), labels(4, 6), {"reduction": "none"}, _RED),
        _Case(logits(6, 4), labels(4, 6), {"reduction": "sum"}, _RED),
        _Case(extreme, torch.tensor([1, 0, 2]), {"reduction": "none"}, _CE_OVERFLOW),
        _Case(logits(2, 3, 4), labels(3, 2, 4), {}, _CE_SHAPE),
    ]
    options = [
        _Case(logits(6, 4), labels(4, 6), {"weight": weight(4)}, _CE_WEIGHT),
        _Case(logits(6, 4), ign, {}, _CE_IGNORE),
        _Case(logits(6, 4), ign, {"reduction": "none"}, _CE_IGNORE),
        _Case(logits(7, 3), minus_one, {"ignore_index": -1, "weight": weight(3)}, _CE_IGNORE),
        _Case(logits(6, 4), labels(4, 6), {"label_smoothing": 0.1}, _CE_SMOOTH),
        _Case(logits(6, 4), labels(4, 6), {"weight": weight(4), "label_smoothing": 0.2},
              _CE_SMOOTH),
    ]
    if thorough:
        ign2 = labels(5, 3, 2, 2)
        ign2[0, 0, 0] = ign2[2, 1, 1] = 7
        f64 = torch.float64
        basic += [
            _Case(logits(5, 7, dtype=f64), labels(7, 5), {}, _CE),
            _Case(logits(2, 4, 3, 2, dtype=f64), labels(4, 2, 3, 2), {"reduction": "none"},
                  _CE_SHAPE),
            _Case(extreme.double() * 3, torch.tensor([0, 0, 1]), {}, _CE_OVERFLOW),
            _Case(logits(1, 6), labels(6, 1), {"reduction": "sum"}, _CE),
        ]
        options += [
            _Case(logits(6, 4, dtype=f64), labels(4, 6),
                  {"weight": weight(4, f64), "reduction": "none"}, _CE_WEIGHT),
            _Case(logits(6, 4), ign, {"weight": weight(4)}, _CE_IGNORE),
            _Case(logits(8, 3), labels(3, 8), {"ignore_index": 1}, _CE_IGNORE),
            _Case(logits(6, 4), torch.full((6,), -100), {}, _CE_IGNORE, check_grad=False),
            _Case(logits(6, 4), torch.full((6,), -100), {"reduction": "sum"}, _CE_IGNORE),
            _Case(logits(7, 3), minus_one, {"ignore_index": -1, "label_smoothing": 0.2,
                                            "reduction": "none"}, _CE_SMOOTH),
            _Case(logits(2, 3, 4), torch.tensor([[-100, 0, 2, 1], [1, -100, -100, 2]]),
                  {"reduction": "none"}, _CE_IGNORE),
            _Case(logits(3, 5, 2, 2, dtype=f64), ign2,
                  {"weight": weight(5, f64), "ignore_index": 7, "label_smoothing": 0.15},
                  _CE_SMOOTH),
            _Case(logits(6, 4), ign, {"weight": weight(4), "label_smoothing": 0.3,
                                      "reduction": "none"}, _CE_SMOOTH),
            _Case(logits(6, 4), ign, {"label_smoothing": 0.05, "reduction": "sum"}, _CE_SMOOTH),
            _Case(extreme.double() * 3, torch.tensor([0, 0, 1]), {"label_smoothing": 0.1},
                  _CE_OVERFLOW),
        ]
    return {"basic": basic, "options": options}.get(part, basic + options)


cross_entropy = _check(
    "cross_entropy", _ce_cases, _CE_OVERFLOW, ["cross_entropy", "CrossEntropyLoss",
                                               "cross_entropy_loss"],
    "``fn(logits, target, weight=None, reduction='mean', ignore_index=-100, label_smoothing=0.0)`` "
    "must equal ``F.cross_entropy`` with class-index targets; ``part`` selects 'basic', 'options' "
    "or 'all' of the cases.")
