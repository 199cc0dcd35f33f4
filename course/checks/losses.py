"""Checks for 07_losses: MSE, binary cross-entropy on logits and cross-entropy (weight, reduction,
ignore_index, label_smoothing), compared with ``torch.nn.functional`` in value and in the gradient
with respect to the predictions, on ordinary and extreme inputs, in float32 and float64."""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ._core import CheckFailure, call, forbid_delegation, require, same_tensor, tripwire

__all__ = ["binary_cross_entropy_with_logits", "cross_entropy", "mse_loss"]

_LOSSES = [
    "mse_loss", "MSELoss", "l1_loss", "huber_loss", "HuberLoss", "smooth_l1_loss", "SmoothL1Loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "BCELoss", "BCEWithLogitsLoss",
    "cross_entropy", "cross_entropy_loss", "CrossEntropyLoss", "nll_loss", "nll_loss_nd",
    "nll_loss2d", "NLLLoss", "log_softmax", "_log_softmax", "LogSoftmax", "softmax", "_softmax",
    "Softmax", "logsigmoid", "log_sigmoid", "LogSigmoid", "softplus", "Softplus",
]
_TRIP = sorted({(owner, name) for owner in (torch, F, torch.Tensor, torch.special)
                for name in _LOSSES if hasattr(owner, name)}, key=lambda t: (id(t[0]), t[1]))
_HINT = ("Allowed: tensor arithmetic, torch.exp/log/log1p/clamp/where/abs/maximum, amax/sum/mean, "
         "indexing and gather, torch.logsumexp, torch.logaddexp, torch.sigmoid and your own "
         "functions. Not allowed: torch's loss functions (F.mse_loss, F.binary_cross_entropy"
         "[_with_logits], F.cross_entropy, F.nll_loss, nn.*Loss), F.log_softmax, F.softmax, "
         "F.logsigmoid and F.softplus.")

# Captured when the checks are imported, before student code runs: rebinding torch's functions
# later changes neither the references nor the comparisons.
_allclose = torch.allclose
_isclose = torch.isclose
_equal = torch.equal
_isfinite = torch.isfinite
_gradcheck = torch.autograd.gradcheck
_grad = torch.autograd.grad
_mse_loss = F.mse_loss
_bce_logits = F.binary_cross_entropy_with_logits
_cross_entropy = F.cross_entropy

Fn = Callable[..., Any]


def _guard(fn: Any, exercise: str, own: list[str]) -> None:
    """Refuse torch's losses: ``own`` names anywhere in the source, the others as attributes."""
    __tracebackhide__ = True
    forbid_delegation(fn, own, exercise, _HINT)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} | {
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    used &= set(_LOSSES)
    require(not used, f"{exercise} uses a PyTorch loss or log-softmax it may not use; that earns "
            f"no credit. {_HINT}", f"its code uses: {', '.join(sorted(used))}")


def _accelerator() -> torch.device | None:
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return None


@dataclass
class _Case:
    """One call ``fn(x, target, **kwargs)``; ``concept`` is what a failure here most likely means."""

    x: torch.Tensor
    target: torch.Tensor
    kwargs: dict = field(default_factory=dict)
    concept: str = ""
    grad_concept: str | None = None
    check_grad: bool = True


def _reduction_concept(name: str, got: torch.Tensor, expected: torch.Tensor,
                       case: _Case, ref: Fn, elementwise: bool) -> str | None:
    """Name a wrong reduction when the student's value equals another reduction's."""
    red = case.kwargs.get("reduction", "mean")
    others = {r: ref(case.x, case.target, **{**case.kwargs, "reduction": r})
              for r in ("none", "mean", "sum")}
    for r, val in others.items():
        if r != red and val.shape == got.shape and _allclose(got.double(), val.double(),
                                                                  rtol=1e-4, atol=1e-5):
            return (f"reduction={red!r} was not applied ({name} returned what reduction={r!r} "
                    "gives): 'none' returns one loss per element, 'sum' adds them up, 'mean' "
                    "averages them")
    if elementwise and red == "mean" and got.shape == expected.shape and case.x.dim() > 1:
        by_batch = others["sum"] / case.x.shape[0]
        if _allclose(got.double(), by_batch.double(), rtol=1e-4, atol=1e-5):
            return ("reduction='mean' averages over ALL elements (every dimension), not over the "
                    "batch dimension only")
    return None


def _compare(fn: Fn, ref: Fn, case: _Case, *, name: str, hidden: bool, seed: int,
             overflow: str) -> None:
    __tracebackhide__ = True
    kw = case.kwargs
    shown = (f"input of shape {tuple(case.x.shape)} ({case.x.dtype}), target of shape "
             f"{tuple(case.target.shape)}" + (f", {kw}" if kw else ""))
    expected = ref(case.x, case.target, **kw)
    x_in, t_in = case.x.clone(), case.target.clone()
    with tripwire(_TRIP, name, _HINT):
        try:
            got = call(fn, x_in, t_in, name=name, hidden=hidden, **kw)
        except CheckFailure as exc:
            if "not implemented yet" in exc.concept:
                raise
            raise CheckFailure(case.concept, f"{exc}", hidden) from None
    require(_equal(x_in, case.x) and _equal(t_in, case.target),
            f"{name} must not modify its inputs (no in-place operations)", shown, hidden)
    require(isinstance(got, torch.Tensor), f"{name} must return a tensor",
            f"it returned {type(got).__name__}", hidden)
    if tuple(got.shape) != tuple(expected.shape) or not _allclose(
            got.detach().double(), expected.double(), rtol=1e-4, atol=1e-5, equal_nan=True):
        concept = case.concept
        if got.shape == expected.shape and bool((~_isfinite(got) & _isfinite(expected)).any()):
            concept = overflow
        else:
            concept = _reduction_concept(name, got.detach(), expected, case, ref,
                                         name != "cross_entropy") or concept
        require(tuple(got.shape) == tuple(expected.shape), concept,
                f"{shown}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}", hidden)
        same_tensor(got, expected, f"{name}(...)", hidden=hidden, rtol=1e-4, atol=1e-5,
                    concept=concept)
    require(got.dtype == expected.dtype, f"{name} must keep the input's dtype (float64 in, float64 "
            "out)", f"{shown}: got {got.dtype}", hidden)
    require(got.device == expected.device, f"{name} must return its result on the input's device",
            f"{shown}: got {got.device}", hidden)
    if not case.check_grad:
        return
    gen = torch.Generator().manual_seed(seed + 5)
    w = torch.randn(expected.shape, generator=gen, dtype=expected.dtype).to(expected.device)
    xs = case.x.clone().requires_grad_(True)
    with tripwire(_TRIP, name, _HINT):
        out = call(fn, xs, case.target.clone(), name=name, hidden=hidden, **kw)
    require(out.requires_grad, f"{name}'s result is cut off from autograd: compute it with torch "
            "operations on the input (no .detach(), .item(), .numpy(), .data or torch.no_grad())",
            shown, hidden)
    (gs,) = _grad((out * w).sum(), xs, allow_unused=True)
    gs = torch.zeros_like(xs) if gs is None else gs
    xr = case.x.clone().requires_grad_(True)
    (gr,) = _grad((ref(xr, case.target, **kw) * w).sum(), xr)
    if not _allclose(gs.double(), gr.double(), rtol=1e-4, atol=1e-5, equal_nan=True):
        concept = case.grad_concept or (
            f"the gradient of {name} with respect to its input does not match torch's, although "
            "the value does" + ("" if _isfinite(gs).all() else
                                ": it contains NaN or inf, so some intermediate overflowed"))
        same_tensor(gs, gr, f"the gradient of {name}", hidden=hidden, rtol=1e-4, atol=1e-5,
                    concept=concept)


def _bad_reduction(fn: Fn, x: torch.Tensor, t: torch.Tensor, name: str, hidden: bool) -> None:
    __tracebackhide__ = True
    raised = False
    try:
        with tripwire(_TRIP, name, _HINT):
            fn(x, t, reduction="average")
    except ValueError:
        raised = True
    except CheckFailure:
        raise
    except Exception:  # noqa: BLE001 - any other error is the wrong kind
        raised = False
    require(raised, f"{name} must raise ValueError for an unknown reduction (e.g. 'average'), as "
            "torch does; accept only 'none', 'mean' and 'sum'", None, hidden)


_RED = ("reduction: 'none' returns one loss per element (the input's shape), 'sum' adds them up, "
        "'mean' averages them (the default)")


# --- MSE -----------------------------------------------------------------------------------------

def mse_loss(fn: Fn, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """``fn(pred, target, reduction='mean')`` must equal ``F.mse_loss``."""
    __tracebackhide__ = True
    _guard(fn, "mse_loss", ["mse_loss", "MSELoss"])
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    sq = "MSE is the mean of (pred - target) ** 2 over every element"
    cases = [
        _Case(r(6), r(6), {}, sq),
        _Case(r(4, 5), r(4, 5), {}, sq + " (all elements, not rows)"),
        _Case(r(4, 5), r(4, 5), {"reduction": "sum"}, _RED),
        _Case(r(4, 5), r(4, 5), {"reduction": "none"}, _RED),
    ]
    if thorough:
        cases += [
            _Case(r(2, 3, 4, dtype=torch.float64), r(2, 3, 4, dtype=torch.float64), {}, sq),
            _Case(r(3, 2) * 1e4, r(3, 2), {"reduction": "sum"}, _RED),
            _Case(r(3, 1, 2, dtype=torch.float64), r(3, 1, 2, dtype=torch.float64),
                  {"reduction": "none"}, _RED),
            _Case(torch.tensor(2.0), torch.tensor(-1.0), {}, sq),
        ]
        dev = _accelerator()
        if dev is not None:
            cases.append(_Case(r(4, 5).to(dev), r(4, 5).to(dev), {}, sq))
    for case in cases:
        _compare(fn, _mse_loss, case, name="mse_loss", hidden=hidden, seed=seed,
                 overflow="mse_loss gives inf or NaN where torch's is finite")
    if thorough:
        _bad_reduction(fn, r(3), r(3), "mse_loss", hidden)


# --- BCE with logits -----------------------------------------------------------------------------

_BCE = ("binary cross-entropy on logits is -[t·log σ(x) + (1 - t)·log(1 - σ(x))] "
        "= (1 - t)·x + log(1 + exp(-x)), averaged with reduction='mean'; targets may be any "
        "probability in [0, 1]")
_BCE_OVERFLOW = (
    "binary_cross_entropy_with_logits gives inf or NaN on large logits (±1e4) where torch's is "
    "finite: exp(-x) overflows at x = -1e4, and computing sigmoid first, then log(sigmoid) or "
    "log(1 - sigmoid), takes log(0) once sigmoid rounds to 0 or 1. Work with the logits directly: loss = (1 - t)·x + log(1 + exp(-x)), "
    "with log(1 + exp(-x)) = m + log(exp(-m) + exp(-x - m)) for m = max(-x, 0) (or "
    "torch.logaddexp(0, -x)), so exp never overflows")
_BCE_GRAD = (
    "the gradient of binary_cross_entropy_with_logits must be sigmoid(x) - target everywhere, "
    "also at logit exactly 0 (0.5 - target) and at ±1e4: x.abs() and max(x, 0) have a kink at 0 "
    "where autograd takes a one-sided slope, so log(1 + exp(-|x|)) gets the gradient at 0 wrong; "
    "use m + log(exp(-m) + exp(-x - m)) with m = max(-x, 0), whose value does not depend on m")


def binary_cross_entropy_with_logits(fn: Fn, *, thorough: bool = False, hidden: bool = False,
                                     seed: int = 0) -> None:
    """``fn(logits, target, reduction='mean')`` must equal ``F.binary_cross_entropy_with_logits``."""
    __tracebackhide__ = True
    name = "binary_cross_entropy_with_logits"
    _guard(fn, name, ["binary_cross_entropy_with_logits", "BCEWithLogitsLoss",
                      "binary_cross_entropy", "BCELoss"])
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    def probs(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.rand(*shape, generator=g, dtype=dtype)

    def hard(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.randint(0, 2, shape, generator=g).to(dtype)

    extreme = torch.tensor([1e4, -1e4, 1e4, -1e4, 1000.0, -1000.0, 30.0, -30.0])
    extreme_t = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.3, 0.7, 1.0, 0.0])
    cases = [
        _Case(2 * r(8), hard(8), {}, _BCE),
        _Case(2 * r(4, 3), probs(4, 3), {}, _BCE),
        _Case(2 * r(4, 3), hard(4, 3), {"reduction": "none"}, _RED),
        _Case(2 * r(4, 3), probs(4, 3), {"reduction": "sum"}, _RED),
        _Case(extreme, extreme_t, {"reduction": "none"}, _BCE_OVERFLOW, _BCE_GRAD),
        _Case(torch.zeros(4), torch.tensor([0.0, 1.0, 0.25, 1.0]), {}, _BCE, _BCE_GRAD),
    ]
    if thorough:
        cases += [
            _Case(3 * r(2, 3, 4, dtype=torch.float64), probs(2, 3, 4, dtype=torch.float64), {},
                  _BCE),
            _Case(extreme.double() * 10, extreme_t.double(), {"reduction": "sum"},
                  _BCE_OVERFLOW, _BCE_GRAD),
            _Case(extreme, extreme_t, {}, _BCE_OVERFLOW, _BCE_GRAD),
            _Case(torch.zeros(2, 3, dtype=torch.float64), probs(2, 3, dtype=torch.float64),
                  {"reduction": "none"}, _BCE, _BCE_GRAD),
            _Case(torch.tensor(-3.0), torch.tensor(1.0), {}, _BCE),
        ]
        dev = _accelerator()
        if dev is not None:
            cases.append(_Case(extreme.to(dev), extreme_t.to(dev), {}, _BCE_OVERFLOW, _BCE_GRAD))
    for case in cases:
        _compare(fn, _bce_logits, case, name=name, hidden=hidden,
                 seed=seed, overflow=_BCE_OVERFLOW)
    if thorough:
        _bad_reduction(fn, r(3), probs(3), name, hidden)


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
              "class, so mask it out before indexing or gather) get loss 0 ('none' keeps a 0 "
              "there) and are left out of the mean's denominator (with weights: out of the sum of "
              "weights); if every target is ignored, 'mean' is 0/0 = nan, as in torch")
_CE_SMOOTH = ("label_smoothing ε: the target distribution becomes (1 - ε)·one_hot + ε/C on EVERY "
              "one of the C classes (the true class included), so loss = (1 - ε)·nll + "
              "(ε/C)·Σ_c -log p_c; with class weights each -log p_c in the sum is multiplied by "
              "weight[c], and 'mean' divides by the same denominator as the nll part")


def _ce_cases(thorough: bool, seed: int) -> tuple[list[_Case], list[_Case]]:
    """(basic cases, cases for weight / ignore_index / label_smoothing)."""
    g = torch.Generator().manual_seed(seed)

    def logits(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return 2 * torch.randn(*shape, generator=g, dtype=dtype)

    def labels(c: int, *shape: int) -> torch.Tensor:
        return torch.randint(0, c, shape, generator=g)

    def weight(c: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.rand(c, generator=g, dtype=dtype) * 2 + 0.1

    ign = labels(4, 6)
    ign[[1, 4]] = -100
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
        _Case(logits(6, 4), labels(4, 6), {"label_smoothing": 0.1}, _CE_SMOOTH),
        _Case(logits(6, 4), labels(4, 6), {"weight": weight(4), "label_smoothing": 0.2},
              _CE_SMOOTH),
    ]
    if thorough:
        ign2 = labels(5, 3, 2, 2)
        ign2[0, 0, 0] = ign2[2, 1, 1] = 7
        ign3 = labels(3, 8)
        basic += [
            _Case(logits(5, 7, dtype=torch.float64), labels(7, 5), {}, _CE),
            _Case(logits(2, 4, 3, 2, dtype=torch.float64), labels(4, 2, 3, 2),
                  {"reduction": "none"}, _CE_SHAPE),
            _Case(extreme.double() * 3, torch.tensor([0, 0, 1]), {}, _CE_OVERFLOW),
            _Case(logits(1, 6), labels(6, 1), {"reduction": "sum"}, _CE),
        ]
        options += [
            _Case(logits(6, 4, dtype=torch.float64), labels(4, 6),
                  {"weight": weight(4, torch.float64), "reduction": "none"}, _CE_WEIGHT),
            _Case(logits(6, 4), ign, {"reduction": "none"}, _CE_IGNORE),
            _Case(logits(6, 4), ign, {"weight": weight(4)}, _CE_IGNORE),
            _Case(logits(8, 3), ign3, {"ignore_index": 1}, _CE_IGNORE),
            _Case(logits(6, 4), torch.full((6,), -100), {}, _CE_IGNORE, check_grad=False),
            _Case(logits(6, 4), torch.full((6,), -100), {"reduction": "sum"}, _CE_IGNORE),
            _Case(logits(3, 5, 2, 2, dtype=torch.float64), ign2,
                  {"weight": weight(5, torch.float64), "ignore_index": 7,
                   "label_smoothing": 0.15}, _CE_SMOOTH),
            _Case(logits(6, 4), ign, {"weight": weight(4), "label_smoothing": 0.3,
                                      "reduction": "none"}, _CE_SMOOTH),
            _Case(logits(6, 4), ign, {"label_smoothing": 0.05, "reduction": "sum"}, _CE_SMOOTH),
            _Case(extreme.double() * 3, torch.tensor([0, 0, 1]), {"label_smoothing": 0.1},
                  _CE_OVERFLOW),
        ]
        dev = _accelerator()
        if dev is not None:
            basic.append(_Case(extreme.to(dev), torch.tensor([1, 0, 2], device=dev), {},
                               _CE_OVERFLOW))
            options.append(_Case(logits(6, 4).to(dev), ign.to(dev),
                                 {"weight": weight(4).to(dev), "label_smoothing": 0.1},
                                 _CE_SMOOTH))
    return basic, options


def cross_entropy(fn: Fn, *, part: str = "all", thorough: bool = False, hidden: bool = False,
                  seed: int = 0) -> None:
    """``fn(logits, target, weight=None, reduction='mean', ignore_index=-100,
    label_smoothing=0.0)`` must equal ``F.cross_entropy`` with class-index targets.

    ``part``: 'basic' (plain loss, reductions, extreme logits, (N, C, d1, ...) shapes),
    'options' (weight, ignore_index, label_smoothing) or 'all'.
    """
    __tracebackhide__ = True
    _guard(fn, "cross_entropy", ["cross_entropy", "CrossEntropyLoss", "cross_entropy_loss"])
    basic, options = _ce_cases(thorough, seed)
    cases = {"basic": basic, "options": options}.get(part, basic + options)
    for case in cases:
        _compare(fn, _cross_entropy, case, name="cross_entropy", hidden=hidden, seed=seed,
                 overflow=_CE_OVERFLOW)
    if thorough and part != "options":
        _bad_reduction(fn, torch.randn(3, 2), torch.tensor([0, 1, 1]), "cross_entropy", hidden)
