"""Pictures for 06_activations: activation curves with their derivatives, and how gradient
size changes with depth. matplotlib is imported only when a picture is made."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ._mpl import pyplot as _plt

__all__ = ["plot_activations", "plot_gradient_depth", "plot_piecewise_linear"]


def plot_activations(fns: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
                     lo: float = -5.0, hi: float = 5.0, n: int = 801) -> Any:
    """Left: each activation f(x). Right: its derivative f'(x), computed by autograd."""
    plt = _plt()
    x = torch.linspace(lo, hi, n, requires_grad=True)
    fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, fn in fns.items():
        y = fn(x)
        (dy,) = torch.autograd.grad(y.sum(), x)
        ax_f.plot(x.detach(), y.detach(), label=name)
        ax_d.plot(x.detach(), dy, label=name)
    for ax, title in [(ax_f, "activation f(x)"), (ax_d, "derivative f'(x)")]:
        ax.axhline(0, color="0.7", lw=0.8)
        ax.axvline(0, color="0.7", lw=0.8)
        ax.set_title(title)
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
    ax_f.set_ylim(-1.5, 3)
    ax_d.set_ylim(-0.25, 1.2)
    ax_d.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def plot_gradient_depth(norms: Mapping[str, Sequence[float]]) -> Any:
    """Gradient norm of each layer's weight (layer 1 = nearest the input), log scale."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name, values in norms.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("layer (1 = first, nearest the input)")
    ax.set_ylabel("gradient norm of the layer's weight")
    ax.set_title("How much gradient reaches each layer")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_piecewise_linear(x: torch.Tensor, curves: Mapping[str, torch.Tensor]) -> Any:
    """1-d input against the outputs of a few small networks."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for name, y in curves.items():
        ax.plot(x.detach().cpu(), y.detach().cpu(), label=name)
    ax.set_xlabel("input x")
    ax.set_ylabel("network output")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
