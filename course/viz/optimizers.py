"""Pictures for 08_optimizers and 09_schedulers: optimizer paths on a 2-D loss surface and
learning-rate curves. matplotlib is imported only when a picture is drawn."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

__all__ = ["optimizer_paths", "plot_paths"]


def optimizer_paths(f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                    makers: Mapping[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]],
                    start: Sequence[float], steps: int = 150) -> dict[str, torch.Tensor]:
    """Run each optimizer from ``start`` on ``f(x, y)``; return ``{name: (steps + 1, 2) path}``."""
    paths = {}
    for name, make in makers.items():
        xy = torch.tensor([float(v) for v in start], requires_grad=True)
        opt = make([xy])
        points = [xy.detach().clone()]
        for _ in range(steps):
            opt.zero_grad()
            f(xy[0], xy[1]).backward()
            opt.step()
            points.append(xy.detach().clone())
        paths[name] = torch.stack(points)
    return paths


def plot_paths(f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               paths: Mapping[str, torch.Tensor], xlim: tuple[float, float] = (-3.0, 3.0),
               ylim: tuple[float, float] = (-3.0, 3.0),
               marks: Mapping[str, Sequence[float]] | None = None, title: str | None = None) -> Any:
    """Contour plot of ``f`` with one line per optimizer path and labelled points in ``marks``."""
    import matplotlib.pyplot as plt

    xs = torch.linspace(*xlim, 200)
    ys = torch.linspace(*ylim, 200)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    with torch.no_grad():
        z = f(gx, gy)
    fig, ax = plt.subplots(figsize=(7, 6))
    filled = ax.contourf(gx.numpy(), gy.numpy(), z.numpy(), levels=30, cmap="viridis")
    ax.contour(gx.numpy(), gy.numpy(), z.numpy(), levels=30, colors="k", linewidths=0.3, alpha=0.4)
    fig.colorbar(filled, ax=ax, label="loss")
    for (name, path), color in zip(paths.items(), plt.get_cmap("tab10").colors, strict=False):
        p = path.numpy()
        ax.plot(p[:, 0], p[:, 1], "-", color=color, lw=1.8, label=name)
        ax.plot(p[-1, 0], p[-1, 1], "o", color=color, ms=7, mec="w")
    for label, (x, y) in (marks or {}).items():
        ax.plot(x, y, "*", color="w", ms=14, mec="k")
        ax.annotate(label, (x, y), xytext=(6, 6), textcoords="offset points", color="w",
                    fontsize=10, fontweight="bold")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(loc="upper left", fontsize=9)
    ax.set_title(title or "optimizer paths on a loss surface")
    fig.tight_layout()
    return fig
