"""Checks for 00_setup: the warm-up exercise that shows how grading works."""

from __future__ import annotations

from typing import Any

import torch

from ._core import Check, Delegation, attempt, expect, same_tensor

__all__ = ["mean_square"]


def _inputs(thorough: bool) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    inputs = [torch.tensor([1.0, 2.0, 3.0]), torch.randn(4, 5, generator=gen)]
    if thorough:
        inputs += [torch.tensor(-3.0), torch.randn(2, 3, 4, generator=gen, dtype=torch.float64),
                   torch.full((10,), 1e3)]
    return inputs


def _scenario(fn: Any, *, thorough: bool = False) -> list[Any]:
    return [attempt(fn, x.clone(), call=f"mean_square(<tensor of shape {tuple(x.shape)}>)")
            for x in _inputs(thorough)]


def _verdict(got: list[Any], *, thorough: bool = False, hidden: bool = False) -> None:
    for x, value in zip(_inputs(thorough), got, strict=True):
        same_tensor(expect(value, "mean_square", hidden=hidden), (x**2).mean(), "mean_square(x)",
                    hidden=hidden,
                    concept="mean_square(x) must be the MEAN of the squared elements, a 0-d "
                            "tensor (square every element, then average over all of them)")


mean_square = Check("setup.mean_square", "mean_square", _scenario, _verdict,
                    Delegation("Square, then average, with tensor ops.",
                               names=frozenset({"mse_loss"})))
mean_square.__doc__ = "``fn(x)`` must equal ``(x ** 2).mean()``: a 0-d tensor of x's dtype."
