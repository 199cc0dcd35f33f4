"""Pictures for 09_schedulers: learning-rate curves."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ._mpl import pyplot

__all__ = ["plot_lr_curves"]


def plot_lr_curves(curves: Mapping[str, Sequence[float]], ncols: int = 4,
                   xlabel: str = "epoch") -> Any:
    """One small plot per scheduler: the learning rate used at each epoch (or batch)."""
    plt = pyplot()
    n = len(curves)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.7 * nrows), squeeze=False)
    for ax, (name, lrs) in zip(axes.flat, curves.items(), strict=False):
        ax.plot(range(len(lrs)), list(lrs), drawstyle="steps-post", lw=1.8)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("lr", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig
