"""ReLU as a custom ``torch.autograd.Function``, judged from what its forward and backward return."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .._compare import cotangent, fail_values, mismatch, place, result_of, show_inputs, unchanged
from .._core import Check, Delegation, attempt, check_device, expect, require, swapped_globals
from .._guards import tripwire
from .._transcript import meta
from ._common import _ACTIVATIONS, _HINT, _SPECIAL, _SWAP, _TRIP, _grad_seed

__all__ = ["relu_function"]


def _relu_fn_inputs(thorough: bool, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    xs = [torch.tensor(_SPECIAL), 3 * torch.randn(4, 5, generator=gen)]
    if thorough:
        xs += [torch.randn(2, 3, 4, generator=gen, dtype=torch.float64), torch.tensor(0.0),
               (3 * torch.randn(3, 4, generator=gen)).half()]
    return xs


def _relu_fn_scenario(cls: Any, *, thorough: bool = False, seed: int = 0) -> dict:
    """Facts about the class, then per input: the result of ``apply``, whether it modified its
    input, whether autograd recorded the class's own backward, and the gradient it returns."""
    is_class = isinstance(cls, type)
    facts: dict[str, Any] = {
        "is_function": is_class and issubclass(cls, torch.autograd.Function),
        "static": [is_class and isinstance(vars(cls).get(m), staticmethod)
                   for m in ("forward", "backward")],
        "cases": []}
    if not facts["is_function"] or not all(facts["static"]):
        return facts
    device, own = check_device(), getattr(cls, "_backward_cls", None)
    with swapped_globals(cls, {"relu": _SWAP["relu"]}), tripwire(_TRIP):
        for i, x in enumerate(_relu_fn_inputs(thorough, seed)):
            (xd,) = place([x], device)
            x_in = xd.clone().requires_grad_(True)
            y = attempt(cls.apply, x_in, call="ReLUFunction.apply(x)")
            rec = {"value": y, "device": str(xd.device), "unchanged": unchanged(xd, x_in),
                   "own_backward": isinstance(y, torch.Tensor) and own is not None
                   and isinstance(y.grad_fn, own), "grad": None}
            if isinstance(y, torch.Tensor) and y.requires_grad and y.is_floating_point():
                w = 3 * cotangent(y.shape, y.dtype, _grad_seed(seed, i)).to(y.device)
                rec["grad"] = attempt(lambda y=y, x_in=x_in, w=w: torch.autograd.grad(
                    y, x_in, grad_outputs=w, allow_unused=True)[0],
                    call="ReLUFunction.backward (autograd calling it with a grad_output)")
            facts["cases"].append(rec)
    return facts


def _relu_fn_verdict(facts: Any, *, thorough: bool = False, hidden: bool = False,
                     seed: int = 0) -> None:
    """``cls`` must be an ``autograd.Function`` whose own forward/backward reproduce ``F.relu``."""
    name = "ReLUFunction"
    require(isinstance(facts, dict) and facts.get("is_function") is True,
            "ReLUFunction must be a class that subclasses torch.autograd.Function", None, hidden)
    for meth, ok in zip(("forward", "backward"), facts.get("static") or [False, False], strict=False):
        require(ok is True, f"ReLUFunction must define its own `{meth}` as a @staticmethod taking "
                "ctx first", f"{meth} is missing or not a staticmethod", hidden)
    xs = _relu_fn_inputs(thorough, seed)
    records = facts.get("cases")
    require(isinstance(records, list) and len(records) == len(xs),
            "the grader got an incomplete record of ReLUFunction's results", None, hidden)
    for i, (x, rec) in enumerate(zip(xs, records, strict=True)):
        shown = show_inputs(x)
        y = result_of(rec, x, exercise=name, concept="ReLUFunction.forward", shown=shown,
                      hidden=hidden, inplace_concept=(
                          "ReLUFunction.forward must not modify its input (return a new tensor, "
                          "not x.clamp_(...) or x[x < 0] = 0)"))
        require(rec.get("own_backward") is True,
                "ReLUFunction.apply(x) must be differentiated by YOUR backward: return a tensor "
                "computed in forward (autograd records the Function's own backward node)",
                f"grad_fn is {meta(rec['value']).get('grad_fn')}", hidden)
        bad = mismatch(y, F.relu(x), x.dtype)
        if bool(bad.any()):
            fail_values(y, F.relu(x), bad, "ReLUFunction.forward must return x where x > 0 and 0 "
                        "elsewhere, with x's shape, dtype and device", shown, hidden)
        w = 3 * cotangent(x.shape, x.dtype, _grad_seed(seed, i))
        g = expect(rec.get("grad"), name, "ReLUFunction.backward(ctx, grad_output): it must return "
                   "one gradient per forward input; keep what you need with "
                   "ctx.save_for_backward(...)", hidden=hidden)
        require(g is not None, "ReLUFunction.backward returned None for x: return the gradient",
                shown, hidden)
        require(isinstance(g, torch.Tensor) and tuple(g.shape) == tuple(x.shape),
                "ReLUFunction.backward must return a gradient with x's shape", shown, hidden)
        g = g.detach().cpu()
        expected = w * (x > 0)
        bad = mismatch(g, expected, x.dtype)
        if not bool(bad.any()):
            continue
        def same(other: torch.Tensor, g: torch.Tensor = g, x: torch.Tensor = x) -> bool:
            return not bool(mismatch(g, other.to(g.dtype), x.dtype).any())

        if same(w):
            concept = ("ReLUFunction.backward passes grad_output through unmasked: zero it "
                       "where the input was <= 0")
        elif same((x > 0).to(x.dtype)) or same((x >= 0).to(x.dtype)):
            concept = ("ReLUFunction.backward must MULTIPLY grad_output by the mask (chain "
                       "rule), not return the mask alone")
        elif same(w * (x >= 0)):
            concept = ("ReLUFunction.backward at exactly 0 must give 0, as torch does: mask "
                       "with x > 0, not x >= 0")
        else:
            concept = "ReLUFunction.backward must return grad_output * (x > 0)"
        fail_values(g, expected, bad, concept, f"the gradient, {shown}", hidden)


relu_function = Check("activations.relu_function", "ReLUFunction", _relu_fn_scenario,
                      _relu_fn_verdict, Delegation(_HINT, names=frozenset(
                          ["relu", "relu_", "ReLU", "threshold", "Threshold"]),
                          attrs=frozenset(_ACTIVATIONS)))
relu_function.__doc__ = _relu_fn_verdict.__doc__
