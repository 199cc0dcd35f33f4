"""Checks for 00_setup: the warm-up exercise that shows how grading works."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._core import call, forbid_delegation, same_tensor

__all__ = ["mean_square"]


def mean_square(fn: Callable[..., Any], *, thorough: bool = False, hidden: bool = False) -> None:
    """``fn(x)`` must equal ``(x ** 2).mean()``: a 0-d tensor of x's dtype."""
    __tracebackhide__ = True
    forbid_delegation(fn, ["mse_loss"], "mean_square", "Square, then average, with tensor ops.")
    gen = torch.Generator().manual_seed(1)
    inputs = [torch.tensor([1.0, 2.0, 3.0]), torch.randn(4, 5, generator=gen)]
    if thorough:
        inputs += [torch.tensor(-3.0), torch.randn(2, 3, 4, generator=gen, dtype=torch.float64),
                   torch.full((10,), 1e3)]
    for x in inputs:
        got = call(fn, x, name="mean_square", hidden=hidden)
        same_tensor(got, (x**2).mean(), "mean_square(x)", hidden=hidden,
                    concept="mean_square(x) must be the MEAN of the squared elements, a 0-d "
                            "tensor (square every element, then average over all of them)")
