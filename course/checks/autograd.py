"""Checks for 03_autograd: the gradients of a linear layer under MSE, derived by hand."""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import torch

from ._core import CheckFailure, call, forbid_delegation, require, same_tensor, tripwire

__all__ = ["linear_mse_grads"]

_HINT = ("Derive the gradients on paper and compute them with tensor arithmetic (@, .T, sum, "
         "mean, *); backward(), torch.autograd and .grad are what your answer is checked against.")
_FORBIDDEN = ["backward", "autograd", "requires_grad", "requires_grad_", "enable_grad", "jacobian",
              "jacrev", "jacfwd", "vjp", "grad_and_value", "functional_call"]
_TRIP = [(torch.Tensor, "backward"), (torch.autograd, "grad"), (torch.autograd, "backward"),
         (torch.func, "grad"), (torch.func, "grad_and_value"), (torch.func, "vjp"),
         (torch.autograd.functional, "jacobian"), (torch.autograd.functional, "vjp")]


def _reads_grad(fn: Any) -> bool:
    """True when the source reads an attribute ``.grad`` or imports a function named ``grad``."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "grad":
            return True
        if isinstance(node, ast.ImportFrom) and any(a.name == "grad" for a in node.names):
            return True
    return False


def _reference(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor,
               y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w_, b_ = w.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    loss = ((x @ w_.T + b_ - y) ** 2).mean()
    dw, db = torch.autograd.grad(loss, (w_, b_))
    return dw, db


def _close(a: torch.Tensor, e: torch.Tensor, tol: tuple[float, float]) -> bool:
    return (tuple(a.shape) == tuple(e.shape) and a.dtype == e.dtype
            and torch.allclose(a.detach().to(e.device), e, rtol=tol[0], atol=tol[1]))


def linear_mse_grads(fn: Callable[..., Any], *, thorough: bool = False, hidden: bool = False,
                     seed: int = 0, device: torch.device | str | None = None) -> None:
    """``fn(w, b, x, y)`` must return autograd's ``(dL/dw, dL/db)`` for
    ``L = ((x @ w.T + b - y) ** 2).mean()``, computed without autograd."""
    __tracebackhide__ = True
    forbid_delegation(fn, _FORBIDDEN, "linear_mse_grads", _HINT)
    require(not _reads_grad(fn),
            f"linear_mse_grads delegates to the PyTorch reference it is checked against; that "
            f"earns no credit. {_HINT}", "its code uses: .grad", hidden)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    gen = torch.Generator().manual_seed(seed)
    cases = [(2, 3, 5), (1, 4, 8), (3, 2, 1)]  # (out_features, in_features, batch N)
    dtypes = [torch.float32]
    if thorough:
        cases += [(4, 4, 6), (5, 7, 16), (1, 1, 1), (3, 10, 2)]
        if dev.type != "mps":
            dtypes.append(torch.float64)
    for dtype in dtypes:
        tol = (1e-4, 1e-5) if dtype == torch.float32 else (1e-9, 1e-11)
        for n_out, n_in, n in cases:
            w = torch.randn(n_out, n_in, generator=gen, dtype=dtype).to(dev)
            b = torch.randn(n_out, generator=gen, dtype=dtype).to(dev)
            x = torch.randn(n, n_in, generator=gen, dtype=dtype).to(dev)
            y = torch.randn(n, n_out, generator=gen, dtype=dtype).to(dev)
            exp_dw, exp_db = _reference(w, b, x, y)
            saved = [t.clone() for t in (w, b, x, y)]
            with tripwire(_TRIP, "linear_mse_grads", _HINT):
                got = call(fn, w, b, x, y, name="linear_mse_grads", hidden=hidden)
            where = (f"w.shape={tuple(w.shape)}, b.shape={tuple(b.shape)}, x.shape={tuple(x.shape)}, "
                     f"y.shape={tuple(y.shape)}, dtype={dtype}")
            require(all(torch.equal(s, t) for s, t in zip(saved, (w, b, x, y), strict=True)),
                    "linear_mse_grads must not modify its inputs (no in-place operations on them)",
                    where, hidden)
            require(isinstance(got, tuple | list) and len(got) == 2
                    and all(isinstance(g, torch.Tensor) for g in got),
                    "linear_mse_grads must return a pair of tensors (dw, db)",
                    f"it returned {type(got).__name__}", hidden)
            dw, db = got
            require(not (tuple(dw.shape) == (n_in, n_out) and n_in != n_out),
                    "dw is transposed: the gradient of w has w's shape (out, in), i.e. "
                    "dL/dpred.T @ x, not x.T @ dL/dpred",
                    f"{where}: expected dw.shape {tuple(exp_dw.shape)}, got {tuple(dw.shape)}", hidden)
            require(not (tuple(db.shape) == (n, n_out) and n != 1) and tuple(db.shape) != (1, n_out),
                    "db was not summed over the batch: b is added to every sample's prediction, so "
                    "its gradient is the SUM over samples of dL/dpred, shaped like b (out,)",
                    f"{where}: expected db.shape {tuple(exp_db.shape)}, got {tuple(db.shape)}", hidden)
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
                if factor != 1.0 and _close(dw, exp_dw * factor, tol) and _close(db, exp_db * factor, tol):
                    raise CheckFailure(concept, where, hidden)
            if n_in == n_out and _close(dw, exp_dw.T, tol):
                raise CheckFailure("dw is transposed: the gradient of w has w's shape (out, in), "
                                   "i.e. dL/dpred.T @ x, not x.T @ dL/dpred", where, hidden)
            if _close(dw, exp_dw, tol) and n > 1 and _close(db, exp_db / n, tol):
                raise CheckFailure("db was averaged over the batch instead of summed: b is added to "
                                   "every sample, so its gradient is the SUM of dL/dpred over the "
                                   "samples", where, hidden)
            same_tensor(dw, exp_dw, "dw", hidden=hidden, rtol=tol[0], atol=tol[1],
                        concept="dw is wrong: with G = dL/dpred = 2 * (pred - y) / (N * out), "
                                "dL/dw = G.T @ x")
            same_tensor(db, exp_db, "db", hidden=hidden, rtol=tol[0], atol=tol[1],
                        concept="db is wrong: with G = dL/dpred = 2 * (pred - y) / (N * out), "
                                "dL/db = G summed over the batch")
