"""Checks for 03_autograd: the gradients of a linear layer under MSE, derived by hand."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ._core import (
    Check,
    CheckFailure,
    Delegation,
    attempt,
    check_device,
    expect,
    require,
    type_name,
)
from ._guards import tripwire
from ._transcript import meta

__all__ = ["linear_mse_grads"]

_HINT = ("Derive the gradients on paper and compute them with tensor arithmetic (@, .T, sum, "
         "mean, *); backward(), torch.autograd and .grad are what your answer is checked against.")
_FORBIDDEN = frozenset({"backward", "autograd", "grad", "requires_grad", "requires_grad_",
                        "enable_grad", "jacobian", "jacrev", "jacfwd", "vjp", "grad_and_value",
                        "functional_call"})
_TRIP = [(torch.Tensor, "backward"), (torch.autograd, "grad"), (torch.autograd, "backward"),
         (torch.func, "grad"), (torch.func, "grad_and_value"), (torch.func, "vjp"),
         (torch.autograd.functional, "jacobian"), (torch.autograd.functional, "vjp")]


@dataclass(frozen=True)
class _Case:
    w: torch.Tensor  # built on the CPU; the scenario moves them to its device
    b: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor

    @property
    def shapes(self) -> str:
        layout = "" if self.x.is_contiguous() else " (x and y non-contiguous views)"
        return (f"w.shape={tuple(self.w.shape)}, b.shape={tuple(self.b.shape)}, "
                f"x.shape={tuple(self.x.shape)}, y.shape={tuple(self.y.shape)}, "
                f"dtype={str(self.w.dtype).removeprefix('torch.')}{layout}")


def _cases(thorough: bool, seed: int, float64: bool) -> list[_Case]:
    gen = torch.Generator().manual_seed(seed)
    shapes = [(2, 3, 5), (1, 4, 8), (3, 2, 1)]  # (out_features, in_features, batch N)
    dtypes = [torch.float32]
    if thorough:
        shapes += [(4, 4, 6), (5, 7, 16), (1, 1, 1), (3, 10, 2)]
        if float64:
            dtypes.append(torch.float64)
    cases = []
    for dtype in dtypes:
        for n_out, n_in, n in shapes:
            cases.append(_Case(torch.randn(n_out, n_in, generator=gen, dtype=dtype),
                               torch.randn(n_out, generator=gen, dtype=dtype),
                               torch.randn(n, n_in, generator=gen, dtype=dtype),
                               torch.randn(n, n_out, generator=gen, dtype=dtype)))
    if thorough:  # x and y as transposed views: strides that .view() cannot handle
        cases.append(_Case(torch.randn(3, 4, generator=gen), torch.randn(3, generator=gen),
                           torch.randn(4, 6, generator=gen).T, torch.randn(3, 6, generator=gen).T))
    return cases


def _scenario(fn: Any, *, thorough: bool = False, seed: int = 0) -> dict:
    """Per case: what ``fn(w, b, x, y)`` returned, and whether the inputs were left unchanged."""
    dev = check_device()
    device = str(torch.empty(0, device=dev).device)
    results = []
    for case in _cases(thorough, seed, float64=dev.type != "mps"):
        args = [t.to(dev, copy=True) for t in (case.w, case.b, case.x, case.y)]
        with tripwire(_TRIP):
            got = attempt(fn, *args, call=f"linear_mse_grads(<{case.shapes}>)")
        inputs = (case.w, case.b, case.x, case.y)
        unchanged = all(torch.equal(a.cpu(), t) for a, t in zip(args, inputs, strict=True))
        results.append({"result": got, "unchanged": unchanged})
    return {"device": device, "results": results}


def _reference(case: _Case) -> tuple[torch.Tensor, torch.Tensor]:
    w, b = case.w.clone().requires_grad_(), case.b.clone().requires_grad_()
    loss = ((case.x @ w.T + b - case.y) ** 2).mean()
    dw, db = torch.autograd.grad(loss, (w, b))
    return dw, db



def _close(a: torch.Tensor, e: torch.Tensor, tol: tuple[float, float]) -> bool:
    return (tuple(a.shape) == tuple(e.shape)
            and torch.allclose(a.detach().cpu().to(e.dtype), e, rtol=tol[0], atol=tol[1]))


def _verdict(data: dict, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """``fn(w, b, x, y)`` must return autograd's ``(dL/dw, dL/db)`` for
    ``L = ((x @ w.T + b - y) ** 2).mean()``, with the inputs' dtype and device."""
    require(isinstance(data, dict), "the check's record of linear_mse_grads is damaged",
            hidden=hidden)
    device = data.get("device")
    require(isinstance(device, str), "the check's record of linear_mse_grads is damaged",
            hidden=hidden)
    cases = _cases(thorough, seed, float64=not device.startswith("mps"))
    results = data.get("results")
    require(isinstance(results, list) and len(results) == len(cases),
            "the check's record of linear_mse_grads is incomplete", hidden=hidden)
    for case, record in zip(cases, results, strict=True):
        (n, n_in), n_out = tuple(case.x.shape), case.w.shape[0]
        where = case.shapes
        require(isinstance(record, dict), "the check's record of linear_mse_grads is incomplete",
                hidden=hidden)
        got = expect(record.get("result"), "linear_mse_grads",
                     f"gradients for {where}", hidden=hidden)
        require(record.get("unchanged") is True,
                "linear_mse_grads must not modify its inputs (no in-place operations such as -=, "
                "+= or .sub_() on w, b, x or y, nor on a name that refers to one of them)", where,
                hidden)
        require(isinstance(got, tuple | list) and len(got) == 2
                and all(isinstance(g, torch.Tensor) for g in got),
                "linear_mse_grads must return a pair of tensors (dw, db)",
                f"it returned {type_name(got)}", hidden)
        dw, db = got
        exp_dw, exp_db = _reference(case)
        require(not (tuple(dw.shape) == (n_in, n_out) and n_in != n_out),
                "dw is transposed: the gradient of w has w's shape (out, in), i.e. "
                "dL/dpred.T @ x, not x.T @ dL/dpred",
                f"{where}: expected dw.shape {tuple(exp_dw.shape)}, got {tuple(dw.shape)}", hidden)
        require(not (tuple(db.shape) == (n, n_out) and n != 1) and tuple(db.shape) != (1, n_out),
                "db was not summed over the batch: b is added to every sample's prediction, so "
                "its gradient is the SUM over samples of dL/dpred, shaped like b (out,)",
                f"{where}: expected db.shape {tuple(exp_db.shape)}, got {tuple(db.shape)}", hidden)
        require(tuple(dw.shape) == tuple(exp_dw.shape) and tuple(db.shape) == tuple(exp_db.shape),
                "every gradient has its parameter's shape: dw like w (out, in), db like b (out,)",
                f"{where}: got dw.shape {tuple(dw.shape)}, db.shape {tuple(db.shape)}", hidden)
        require(dw.dtype == case.w.dtype and db.dtype == case.b.dtype,
                "dw and db must have the inputs' dtype: compute them from w, b, x and y (a new "
                "tensor from torch.zeros(shape) is float32 on the CPU; torch.zeros_like(w) "
                "follows w)", f"{where}: got dw {dw.dtype}, db {db.dtype}", hidden)
        require(meta(dw)["device"] == device and meta(db)["device"] == device,
                "dw and db must be on the inputs' device: compute them from w, b, x and y, or "
                "create new tensors with torch.zeros_like(w) rather than torch.zeros(shape)",
                f"{where}: expected {device}, got dw on {meta(dw)['device']}, db on "
                f"{meta(db)['device']}", hidden)
        tol = (1e-4, 1e-5) if case.w.dtype == torch.float32 else (1e-9, 1e-11)
        if _close(dw, exp_dw, tol) and _close(db, exp_db, tol):
            continue
        both = [
            (0.5, "the factor 2 is missing: the derivative of (pred - y)**2 is 2 * (pred - y)"),
            (float(n_out), "the loss is the mean over ALL N * out elements: divide by "
                           "N * out_features, not only by the batch size N"),
            (-1.0, "the sign is flipped: the gradient of (pred - y)**2 is +2 * (pred - y) "
                   "times the derivative of pred"),
            (float(n * n_out), "the loss is a MEAN: divide the summed gradient by the number "
                               "of elements, N * out_features"),
        ]
        for factor, concept in both:
            scaled = _close(dw, exp_dw * factor, tol) and _close(db, exp_db * factor, tol)
            if factor != 1.0 and scaled:
                raise CheckFailure(concept, where, hidden)
        if n_in == n_out and _close(dw, exp_dw.T, tol):
            raise CheckFailure("dw is transposed: the gradient of w has w's shape (out, in), "
                               "i.e. dL/dpred.T @ x, not x.T @ dL/dpred", where, hidden)
        if _close(dw, exp_dw, tol) and n > 1 and _close(db, exp_db / n, tol):
            raise CheckFailure("db was averaged over the batch instead of summed: b is added to "
                               "every sample, so its gradient is the SUM of dL/dpred over the "
                               "samples", where, hidden)
        if not _close(dw, exp_dw, tol):
            raise CheckFailure("dw is wrong: with G = dL/dpred = 2 * (pred - y) / (N * out), "
                               "dL/dw = G.T @ x", f"{where}: {_diff(dw, exp_dw)}", hidden)
        raise CheckFailure("db is wrong: with G = dL/dpred = 2 * (pred - y) / (N * out), "
                           "dL/db = G summed over the batch", f"{where}: {_diff(db, exp_db)}",
                           hidden)


def _diff(got: torch.Tensor, want: torch.Tensor) -> str:
    d = (got.detach().cpu().double() - want.double()).abs().nan_to_num(float("inf"))
    return f"largest difference {d.max().item():.3g}"


linear_mse_grads = Check("autograd.linear_mse_grads", "linear_mse_grads", _scenario, _verdict,
                         Delegation(_HINT, names=_FORBIDDEN))
