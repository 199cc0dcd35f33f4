"""Pictures for 01_neural_networks (and the autograd graph of 03_autograd). matplotlib is imported
only when drawing."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ._mpl import arrow as _arrow
from ._mpl import box as _box
from ._mpl import pyplot as _plt

__all__ = ["autograd_graph", "decision_boundaries", "descent_1d", "families", "network"]


def network(sizes: Sequence[int], names: Sequence[str] | None = None,
            title: str | None = None) -> Any:
    """Draw a fully connected network: one column of neurons per layer, every pair linked."""
    plt = _plt()
    names = list(names) if names else (
        ["input"] + [f"hidden {i}" for i in range(1, len(sizes) - 1)] + ["output"])
    colors = ["#c6dbef"] + ["#c7e9c0"] * (len(sizes) - 2) + ["#f6d7a7"]
    gap = 1.6  # horizontal distance between layers
    fig, ax = plt.subplots(figsize=(max(4.5, 0.62 * (gap * (len(sizes) - 1) + 1.6) + 1.2), 3.8))
    top = max(sizes)
    pos = [[(gap * i, (top - 1) / 2 + (n - 1) / 2 - j) for j in range(n)]
           for i, n in enumerate(sizes)]
    for left, right in zip(pos, pos[1:], strict=False):
        for a in left:
            for b in right:
                ax.plot([a[0], b[0]], [a[1], b[1]], color="0.7", lw=0.8, zorder=1)
    for col, color, name, n in zip(pos, colors, names, sizes, strict=True):
        for x, y in col:
            ax.add_patch(plt.Circle((x, y), 0.18, fc=color, ec="0.3", zorder=2))
        ax.text(col[0][0], top - 0.6, f"{name}\n({n})", ha="center",
                va="bottom", fontsize=9)
    ax.set_xlim(-0.8, gap * (len(sizes) - 1) + 0.8)
    ax.set_ylim(-0.6, top + 0.8)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def descent_1d(loss: Callable[[torch.Tensor], torch.Tensor], w0: float,
               lrs: Sequence[float], steps: int = 12, span: tuple[float, float] = (-3.0, 5.0)) -> Any:
    """Gradient descent on a 1-D loss: one panel per learning rate, the steps drawn on the curve.

    The gradient of each step comes from autograd, the same way a network is trained.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, len(lrs), figsize=(4.2 * len(lrs), 3.2), squeeze=False)
    grid = torch.linspace(*span, 300)
    for ax, lr in zip(axes[0], lrs, strict=True):
        ax.plot(grid, loss(grid), color="0.4")
        w = torch.tensor(float(w0), requires_grad=True)
        path = []
        for _ in range(steps):
            value = loss(w)
            path.append((w.item(), value.item()))
            (g,) = torch.autograd.grad(value, w)
            with torch.no_grad():
                w -= lr * g
        xs, ys = zip(*path, strict=True)
        ax.plot(xs, ys, "o-", color="tab:red", ms=4, lw=1)
        ax.plot(xs[0], ys[0], "s", color="tab:blue", ms=7, label="start")
        ax.set_title(f"learning rate {lr}", fontsize=10)
        ax.set_xlabel("weight w")
        ax.set_xlim(*span)
        top = loss(grid).max().item()
        ax.set_ylim(-0.05 * top, top)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("loss L(w)")
    fig.tight_layout()
    return fig


@torch.no_grad()
def decision_boundaries(models: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
                        x: torch.Tensor, y: torch.Tensor, lim: tuple[float, float] = (-0.5, 1.5)) -> Any:
    """For each 2-input model, shade where its logit is > 0 (class 1) and mark the data points."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(models), figsize=(3.8 * len(models), 3.6), squeeze=False)
    g = torch.linspace(*lim, 200)
    gx, gy = torch.meshgrid(g, g, indexing="xy")
    grid = torch.stack([gx.flatten(), gy.flatten()], dim=1)
    for ax, (name, model) in zip(axes[0], models.items(), strict=True):
        params = list(model.parameters()) if hasattr(model, "parameters") else []
        dev = params[0].device if params else torch.device("cpu")
        logits = model(grid.to(dev)).float().cpu().reshape(gx.shape)
        ax.contourf(gx, gy, (logits > 0).float(), levels=[-0.5, 0.5, 1.5],
                    colors=["#c6dbef", "#fdd0a2"])
        ax.contour(gx, gy, logits, levels=[0.0], colors="k", linewidths=1)
        pred = model(x.to(dev)).float().cpu().reshape(-1) > 0
        acc = (pred == y.reshape(-1).bool()).float().mean().item()
        for cls, marker, color in [(0, "o", "tab:blue"), (1, "^", "tab:orange")]:
            pts = x[y.reshape(-1) == cls].cpu()
            ax.scatter(pts[:, 0], pts[:, 1], marker=marker, s=90, c=color, ec="k",
                       label=f"class {cls}", zorder=3)
        ax.set_title(f"{name}: {acc:.0%} correct", fontsize=10)
        ax.set_xlabel("x1")
        ax.set_aspect("equal")
    axes[0][0].set_ylabel("x2")
    axes[0][0].legend(fontsize=8, loc="center")
    fig.tight_layout()
    return fig


def families() -> Any:
    """The four big families of networks, each as a small boxes-and-arrows diagram."""
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(11, 5.6))
    blue, green, orange, purple = "#c6dbef", "#c7e9c0", "#f6d7a7", "#dadaeb"

    def chain(ax: Any, items: Sequence[tuple[str, str]], y: float = 0.9, w: float = 1.35) -> None:
        gap = (10 - len(items) * w) / max(len(items) - 1, 1)
        for i, (text, color) in enumerate(items):
            x = i * (w + gap)
            _box(ax, x, y, w, 0.9, text, color, fontsize=8)
            if i:
                _arrow(ax, (x - gap + 0.05, y + 0.45), (x - 0.05, y + 0.45))

    ax = axes[0][0]
    chain(ax, [("input\nvector", blue), ("Linear\n+ ReLU", green), ("Linear\n+ ReLU", green),
               ("Linear", orange), ("logits", orange)])
    ax.set_title("MLP: stacked fully connected layers (tabular data, small inputs)", fontsize=9)

    ax = axes[0][1]
    chain(ax, [("image\nC×H×W", blue), ("Conv\n+ ReLU", green), ("Pool", green),
               ("Conv\n+ ReLU", green), ("Flatten\n+ Linear", orange)])
    ax.set_title("CNN: local filters shared over the image (vision)", fontsize=9)

    ax = axes[1][0]
    for t in range(4):
        x = 0.3 + t * 2.5
        _box(ax, x, 1.8, 1.3, 0.7, f"x{t}", blue, fontsize=8)
        _box(ax, x, 0.8, 1.3, 0.7, "same cell", green, fontsize=8)
        _box(ax, x, -0.2, 1.3, 0.7, f"h{t}", orange, fontsize=8)
        _arrow(ax, (x + 0.65, 1.8), (x + 0.65, 1.52))
        _arrow(ax, (x + 0.65, 0.8), (x + 0.65, 0.52))
        if t:
            _arrow(ax, (x - 1.2, 1.15), (x - 0.02, 1.15), color="tab:red")
    ax.set_title("RNN / LSTM / GRU: one cell applied step by step, carrying a hidden state "
                 "(sequences)",
                 fontsize=9)

    ax = axes[1][1]
    for t in range(4):
        x = 0.3 + t * 2.5
        _box(ax, x, -0.2, 1.3, 0.7, f"token {t}", blue, fontsize=8)
        _box(ax, x, 1.8, 1.3, 0.7, f"out {t}", orange, fontsize=8)
        _arrow(ax, (x + 0.65, 0.5), (x + 0.65, 0.78))
        _arrow(ax, (x + 0.65, 1.5), (x + 0.65, 1.78))
    _box(ax, 0.3, 0.8, 8.8, 0.7, "self-attention: every token looks at every other token\n"
         "+ feed-forward, repeated N times", purple, fontsize=8)
    ax.set_title("Transformer: attention over the whole sequence at once (text, and more)",
                 fontsize=9)

    for ax in axes.flat:
        ax.set_xlim(-0.2, 10.2)
        ax.set_ylim(-0.4, 2.7)
        ax.axis("off")
    fig.tight_layout()
    return fig


def autograd_graph(output: torch.Tensor, names: Mapping[str, torch.Tensor] | None = None) -> Any:
    """Draw the graph autograd recorded for ``output``: leaves on the left, ``output`` on the right.

    Each box is a node of ``output.grad_fn``'s graph; ``names`` labels the leaf tensors.
    Arrows point the way the forward pass went; ``backward()`` walks them in reverse.
    """
    plt = _plt()
    label_of = {id(t): n for n, t in (names or {}).items()}
    if output.grad_fn is None:
        raise ValueError("output has no grad_fn: make it from tensors with requires_grad=True")
    depth: dict[Any, int] = {}
    edges: list[tuple[Any, Any]] = []
    stack = [(output.grad_fn, 0)]
    while stack:  # longest distance from the output decides the column
        node, d = stack.pop()
        if depth.get(node, -1) >= d:
            continue
        depth[node] = d
        for parent, _ in node.next_functions:
            if parent is not None:
                edges.append((parent, node))
                stack.append((parent, d + 1))
    edges = list(dict.fromkeys(edges))
    def is_leaf(node: Any) -> bool:
        return getattr(node, "variable", None) is not None

    levels = max(d for node, d in depth.items() if not is_leaf(node)) + 1
    col_of = {node: levels - d for node, d in depth.items() if not is_leaf(node)}
    for node in depth:  # a leaf sits just left of the first operation that uses it
        if is_leaf(node):
            col_of[node] = min(col_of[child] for parent, child in edges if parent is node) - 1
    columns: dict[int, list[Any]] = {}
    for node, col in col_of.items():
        columns.setdefault(col, []).append(node)
    for nodes in columns.values():  # leaves above operations
        nodes.sort(key=lambda node: not is_leaf(node))
    fig, ax = plt.subplots(figsize=(1.75 * (levels + 2), 3.2))
    xy: dict[Any, tuple[float, float]] = {}
    w, h = 1.55, 0.6
    for col, nodes in columns.items():
        for i, node in enumerate(nodes):
            x, y = col * 2.2, (len(nodes) - 1) / 2 - i * 1.1
            xy[node] = (x, y)
            variable = getattr(node, "variable", None)
            if variable is not None:  # AccumulateGrad: a leaf tensor that will receive .grad
                text, color = f"{label_of.get(id(variable), 'leaf')}\n(leaf, .grad)", "#c6dbef"
            else:
                text, color = type(node).__name__, "#c7e9c0"
            _box(ax, x - w / 2, y - h / 2, w, h, text, color, fontsize=8)
    for parent, child in edges:
        (x0, y0), (x1, y1) = xy[parent], xy[child]
        _arrow(ax, (x0 + w / 2, y0), (x1 - w / 2, y1))
    ox, oy = xy[output.grad_fn]
    _box(ax, ox + w / 2 + 0.45, oy - h / 2, 1.0, h, label_of.get(id(output), "output"), "#f6d7a7")
    _arrow(ax, (ox + w / 2, oy), (ox + w / 2 + 0.43, oy))
    ax.set_xlim(-w, (levels + 1) * 2.2 + 0.4)
    ys = [y for _, y in xy.values()]
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    ax.axis("off")
    ax.set_title("forward: left → right;  backward() walks the same arrows right → left",
                 fontsize=9)
    fig.tight_layout()
    return fig
