"""What the activation (06) and loss (07) checks share: run a function on a case and record its
value and its gradient (scenario side), and compare such a record with PyTorch's reference
(verdict side), with tolerances that suit the dtype.

Scenario side, :func:`record_call`: the student's function runs twice on copies of the inputs,
placed on the check device: once as is (the value, and whether the inputs were modified), once with
autograd (the gradient with respect to the first input, for a cotangent drawn from the seed). The
record is plain data.

Verdict side: :func:`result_of` unwraps and type-checks a recorded value, :func:`mismatch` says
where it differs from the reference (NaN matches NaN, inf matches inf), :func:`reference_grad`
differentiates the reference on the CPU with the same cotangent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ._core import CheckFailure, Raised, attempt, expect, require, type_name
from ._transcript import meta

__all__ = ["LOW_PRECISION", "cotangent", "fail_values", "grad_mismatch", "mismatch", "place", "record_call",
           "reference_grad", "result_of", "show_inputs", "tolerance", "trip_targets", "unchanged"]

# Captured when the checks are imported, before any student code runs: rebinding torch's
# functions later changes neither the comparisons nor the references.
_isclose = torch.isclose
_isfinite = torch.isfinite
_isnan = torch.isnan
_equal = torch.equal
_grad = torch.autograd.grad
_randn = torch.randn
_Tensor = torch.Tensor

LOW_PRECISION = (torch.float16, torch.bfloat16)
# (rtol, atol): float32/float64 as the checks always were; half precision about 10 and 6 units in
# the last place, what a stable formula computed in that dtype stays within on inputs of size ~10.
_TOL = {torch.float16: (1e-2, 1e-2), torch.bfloat16: (5e-2, 5e-2)}
_INT_VIEW = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    return _TOL.get(dtype, (1e-4, 1e-5))


def trip_targets(names: Sequence[str]) -> list[tuple[Any, str]]:
    """(owner, name) for every ``name`` torch, F, Tensor or torch.special defines."""
    import torch.nn.functional as F

    return sorted({(owner, name) for owner in (torch, F, torch.Tensor, torch.special)
                   for name in names if hasattr(owner, name)}, key=lambda t: (id(t[0]), t[1]))


# --- scenario side -------------------------------------------------------------------------------

def place(tensors: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """The tensors on ``device``, or all of them on the CPU where the device lacks one's dtype
    (float64 or bfloat16 on some MPS machines): a case never mixes devices."""
    if device.type != "cpu":
        try:
            if not (device.type == "mps" and any(t.dtype == torch.float64 for t in tensors)):
                return [t.to(device) for t in tensors]
        except (TypeError, RuntimeError):
            pass
    return list(tensors)


def cotangent(shape: Sequence[int], dtype: torch.dtype, seed: int) -> torch.Tensor:
    """The upstream gradient both sides use for a result of this shape: drawn on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    return _randn(tuple(shape), generator=gen, dtype=torch.float32).to(dtype)


def unchanged(before: torch.Tensor, after: Any) -> bool:
    """Bit for bit (so NaN equals NaN): did the call leave this input as it was?"""
    if not isinstance(after, _Tensor) or after.shape != before.shape or after.dtype != before.dtype:
        return False
    a, b = before.detach(), after.detach()
    if a.is_floating_point():
        view = _INT_VIEW.get(a.element_size())
        if view is not None:
            return _equal(a.view(view), b.view(view))
    return _equal(a, b)


def record_call(fn: Callable[..., Any], inputs: Sequence[torch.Tensor], args: tuple = (),
                kwargs: dict | None = None, *, device: torch.device, call: str,
                grad_seed: int | None) -> dict[str, Any]:
    """Call ``fn(*inputs, *args, **kwargs)`` on copies on ``device``; record what happened.

    ``value``: the result (or a :class:`Raised`); ``unchanged``: the inputs are as they were;
    ``device``: where the first input lived; with ``grad_seed``: ``connected`` (the result is
    part of autograd's graph) and ``grad``, the gradient of ``(result * cotangent).sum()`` with
    respect to the first input, from a second call.
    """
    kwargs = kwargs or {}
    names = [k for k, v in kwargs.items() if isinstance(v, _Tensor)]
    moved = place([*inputs, *(kwargs[k] for k in names)], device)
    placed, kwargs = moved[:len(inputs)], {**kwargs, **dict(zip(names, moved[len(inputs):], strict=True))}
    copies = [t.clone() for t in moved]
    given = {**kwargs, **dict(zip(names, copies[len(inputs):], strict=True))}
    value = attempt(fn, *copies[:len(inputs)], *args, call=call, **given)
    rec: dict[str, Any] = {"value": value, "device": str(placed[0].device),
                           "unchanged": all(unchanged(t, c) for t, c in zip(moved, copies, strict=True))}
    if grad_seed is None:
        return rec
    first = placed[0].clone().requires_grad_(True)
    given = {k: v.clone() if isinstance(v, _Tensor) else v for k, v in kwargs.items()}
    out = attempt(fn, first, *[t.clone() for t in placed[1:]], *args, call=call, **given)
    rec["connected"], rec["grad"] = None, None
    if isinstance(out, Raised):
        rec["grad"] = out
    elif isinstance(out, _Tensor) and out.is_floating_point():
        rec["connected"] = bool(out.requires_grad)
        if out.requires_grad:
            w = cotangent(out.shape, out.dtype, grad_seed).to(out.device)
            rec["grad"] = attempt(lambda: _grad(out, first, grad_outputs=w, allow_unused=True)[0],
                                  call=f"autograd's backward through {call}")
    return rec


# --- verdict side --------------------------------------------------------------------------------

def show_inputs(x: torch.Tensor, extra: str = "") -> str:
    return f"x of shape {tuple(x.shape)}, dtype {x.dtype}" + (f", {extra}" if extra else "")


def result_of(rec: Any, expected: torch.Tensor, *, exercise: str, concept: str, shown: str,
              hidden: bool, dtype_concept: str | None = None, shape_concept: str | None = None,
              inplace_concept: str | None = None) -> torch.Tensor:
    """The recorded result, checked for being a tensor of the expected shape, dtype and device,
    computed without modifying the inputs. Values are compared by the caller."""
    require(isinstance(rec, dict) and "value" in rec, f"{exercise}: the check's record is incomplete",
            None, hidden)
    got = expect(rec["value"], exercise, concept, hidden=hidden)
    require(rec.get("unchanged") is True, inplace_concept or
            f"{exercise} must not modify its input (no in-place operations)", shown, hidden)
    require(isinstance(got, _Tensor), f"{exercise} must return a tensor",
            f"it returned {type_name(got)}", hidden)
    require(tuple(got.shape) == tuple(expected.shape),
            shape_concept or f"{exercise} must keep the input's shape",
            f"{shown}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}", hidden)
    require(got.dtype == expected.dtype, dtype_concept or (
        f"{exercise} must keep the input's dtype ({expected.dtype} in, {expected.dtype} out)"),
        f"{shown}: got {got.dtype}", hidden)
    require(str(meta(got).get("device")) == str(rec.get("device")),
            f"{exercise} must return its result on the input's device",
            f"{shown}: the input was on {rec.get('device')}, the result on {meta(got).get('device')}",
            hidden)
    return got.detach().cpu()


def mismatch(got: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Where ``got`` is not close to ``expected`` (NaN matches NaN; ±inf match themselves)."""
    rtol, atol = tolerance(dtype)
    return ~_isclose(got.double(), expected.double(), rtol=rtol, atol=atol, equal_nan=True)


def reference_grad(ref: Callable[..., torch.Tensor], x: torch.Tensor, rest: Sequence[Any],
                   kwargs: dict, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(reference value, its gradient) for the cotangent the scenario drew; half precision is
    differentiated in float32 (the reference is then more exact than any half computation)."""
    work = x.float() if x.dtype in LOW_PRECISION else x
    xr = work.clone().requires_grad_(True)
    out = ref(xr, *rest, **kwargs)
    w = cotangent(out.shape, x.dtype, seed).to(out.dtype)
    (g,) = _grad(out, xr, grad_outputs=w)
    return out.detach(), g


def grad_mismatch(rec: dict, expected: torch.Tensor, x: torch.Tensor, seed: int, *,
                  exercise: str, concept: str, shown: str, hidden: bool,
                  skip: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(student's gradient, mask of the positions where it is wrong), or None when all is right.

    Positions where the reference gradient is not finite, or in ``skip``, are not compared (what a
    NaN input's gradient is, is a matter of implementation)."""
    require(rec.get("connected") is not False, f"{exercise}'s result is cut off from autograd: "
            "compute it with torch operations on the input (no .detach(), .item(), .numpy(), "
            ".data or torch.no_grad())", shown, hidden)
    got = expect(rec.get("grad"), exercise, concept, hidden=hidden)
    got = torch.zeros_like(expected) if got is None else got
    require(isinstance(got, _Tensor) and tuple(got.shape) == tuple(expected.shape),
            f"the gradient of {exercise} with respect to its input has the wrong shape",
            f"{shown}: got {getattr(got, 'shape', type_name(got))}", hidden)
    got = got.detach().cpu()
    rtol, atol = tolerance(x.dtype)
    scale = 1.0 if x.dtype not in LOW_PRECISION else 1.0 + float(expected.abs().nan_to_num(0, 0, 0).max())
    bad = ~_isclose(got.double(), expected.double(), rtol=rtol, atol=atol * scale, equal_nan=True)
    bad &= _isfinite(expected)
    if skip is not None:
        bad &= ~skip
    return (got, bad) if bool(bad.any()) else None


def fail_values(got: torch.Tensor, expected: torch.Tensor, bad: torch.Tensor, concept: str,
                shown: str, hidden: bool) -> None:
    """Raise the failure for values that differ at ``bad``, showing up to three of them."""
    pairs = []
    for row in bad.nonzero()[:3].tolist():
        at = tuple(row)
        pairs.append(f"at index {at if len(at) != 1 else at[0]}: expected "
                     f"{expected[at].item():.6g}, got {got[at].item():.6g}")
    raise CheckFailure(concept, f"{shown}: " + "; ".join(pairs), hidden)
