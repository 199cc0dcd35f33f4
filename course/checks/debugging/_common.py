"""What the debugging checks share: seeded data and models, built the same way by a scenario
(on the check device) and by a verdict (on the CPU), and tolerant comparisons."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .._core import CheckFailure, Opaque, Raised, require

__all__ = ["close", "cpu", "init_", "is_float", "params_vector", "problem", "type_name"]


def problem(seed: int, n: int, d: int = 8, c: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x float32 (n, d), y int64 (n,))``: labels from a random teacher MLP, so a small MLP can
    learn them but a linear model cannot learn them all."""
    g = torch.Generator().manual_seed(10_000 + seed)
    x = torch.randn(n, d, generator=g)
    w1, w2 = torch.randn(d, 16, generator=g), torch.randn(16, c, generator=g)
    return x, (torch.relu(x @ w1) @ w2).argmax(dim=1)


def init_(model: nn.Module, seed: int) -> nn.Module:
    """Overwrite every Linear and BatchNorm with values drawn from ``seed`` (CPU, in place):
    the same numbers wherever the model is built, whatever the global RNG did."""
    g = torch.Generator().manual_seed(20_000 + seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                bound = 1 / math.sqrt(m.in_features)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 2 * bound - bound)
                if m.bias is not None:
                    m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 2 * bound - bound)
            elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.3 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return model


def cpu(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu")


def params_vector(model: nn.Module) -> torch.Tensor:
    """All parameters, flattened and concatenated, on the CPU (a model's position in weight space)."""
    return torch.cat([cpu(p).reshape(-1) for p in model.parameters()])


def is_float(x: Any) -> bool:
    return type(x) is float


def type_name(x: Any) -> str:
    if isinstance(x, Opaque):
        return x.type
    if isinstance(x, Raised):
        return "an exception"
    return type(x).__name__


def close(a: Any, b: torch.Tensor, rtol: float = 1e-3, atol: float = 1e-4) -> bool:
    """``a`` is a tensor of ``b``'s shape with close values (the scenario's device vs the CPU)."""
    return (isinstance(a, torch.Tensor) and tuple(a.shape) == tuple(b.shape)
            and a.is_floating_point() and bool(torch.allclose(a.float().cpu(), b.float(), rtol=rtol,
                                                               atol=atol)))


def require_floats(values: Any, n: int, what: str, hidden: bool) -> list[float]:
    """``values`` as a list of ``n`` Python floats, or a failure saying what was wrong."""
    require(isinstance(values, list | tuple) and len(values) == n
            and all(is_float(v) for v in values),
            f"{what} must be a list of {n} Python floats (one per epoch; use loss.item())",
            f"got {type_name(values)}: {values!r:.120}", hidden)
    return list(values)


def fail(concept: str, detail: str | None, hidden: bool) -> None:
    raise CheckFailure(concept, detail, hidden)
