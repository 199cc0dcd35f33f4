"""Pictures for 04_nn_module: a model as a tree of modules, and where each kind of attribute
(Parameter, plain tensor, buffer) shows up. matplotlib is imported only when a picture is made."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ._mpl import pyplot as _plt

__all__ = ["show_attribute_kinds", "show_module_tree"]


def _own_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def show_module_tree(model: nn.Module, title: str | None = None) -> Any:
    """Draw ``model`` as a tree: each box is a module (its attribute name and class), the number
    under it counts the parameters it holds itself; arrows go from a module to its children()."""
    plt = _plt()
    nodes: list[tuple[str, nn.Module, int]] = []  # (name, module, depth)
    xs: dict[int, float] = {}
    edges: list[tuple[int, int]] = []
    next_leaf = [0.0]

    def visit(name: str, module: nn.Module, depth: int) -> int:
        index = len(nodes)
        nodes.append((name, module, depth))
        kids = [visit(child_name, child, depth + 1) for child_name, child in module.named_children()]
        edges.extend((index, k) for k in kids)
        if kids:
            xs[index] = sum(xs[k] for k in kids) / len(kids)
        else:
            xs[index] = next_leaf[0]
            next_leaf[0] += 1.0
        return index

    visit("model", model, 0)
    depth = max(d for _, _, d in nodes)
    width = max(next_leaf[0], 1.0)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * width), 1.3 * (depth + 1) + 0.6))
    for parent, child in edges:
        ax.annotate("", xy=(xs[child], -nodes[child][2] + 0.22),
                    xytext=(xs[parent], -nodes[parent][2] - (0.45 if _own_params(nodes[parent][1]) else 0.22)),
                    arrowprops={"arrowstyle": "->", "color": "0.45", "lw": 1.2})
    for i, (name, module, d) in enumerate(nodes):
        own = _own_params(module)
        leaf = not any(True for _ in module.children())
        color = "#c7e9c0" if own else ("#f0f0f0" if leaf else "#c6dbef")
        label = f"{name}\n{type(module).__name__}"
        ax.text(xs[i], -d, label, ha="center", va="center", fontsize=8.5,
                bbox={"boxstyle": "round,pad=0.35", "fc": color, "ec": "0.3"})
        if own:
            shapes = "\n".join(f"{n} {tuple(p.shape)}" for n, p in module.named_parameters(recurse=False))
            ax.text(xs[i], -d - 0.2, f"{own} params\n{shapes}", ha="center", va="top",
                    fontsize=7, color="#2e7d32")
    ax.set_xlim(-0.8, width - 0.2)
    ax.set_ylim(-depth - 1.0, 0.5)
    ax.axis("off")
    total = sum(p.numel() for p in model.parameters())
    ax.set_title(title or f"{type(model).__name__}: modules() visits every box, children() only "
                          f"the next row down; {total} parameters in all", fontsize=9)
    fig.tight_layout()
    return fig


def show_attribute_kinds(module: nn.Module, names: Sequence[str]) -> Any:
    """A grid, computed from ``module`` itself: is each attribute in parameters(), buffers(),
    state_dict(), converted by ``module.to(torch.float64)``, and does it get a ``.grad``?"""
    plt = _plt()
    import copy

    probe = copy.deepcopy(module)
    params = dict(probe.named_parameters())
    buffers = dict(probe.named_buffers())
    state = probe.state_dict()
    probe.to(torch.float64)
    columns = ["in parameters()", "in buffers()", "in state_dict()", ".to() converts it",
               "trained (gets .grad)"]
    rows = []
    for name in names:
        after = getattr(probe, name)
        rows.append([name in params, name in buffers, name in state,
                     after.dtype == torch.float64, name in params and params[name].requires_grad])
    fig, ax = plt.subplots(figsize=(1.6 * len(columns) + 1.6, 0.55 * len(names) + 1.1))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            ax.add_patch(plt.Rectangle((c, len(rows) - 1 - r), 0.95, 0.9,
                                       fc="#a1d99b" if value else "#fcbba1", ec="0.4"))
            ax.text(c + 0.475, len(rows) - 0.55 - r, "yes" if value else "no", ha="center",
                    va="center", fontsize=9)
    for r, name in enumerate(names):
        ax.text(-0.1, len(rows) - 0.55 - r, name, ha="right", va="center", fontsize=9,
                family="monospace")
    for c, col in enumerate(columns):
        ax.text(c + 0.475, len(rows) + 0.15, col, ha="center", va="bottom", fontsize=8.5)
    ax.set_xlim(-1.3, len(columns))
    ax.set_ylim(0, len(rows) + 0.7)
    ax.axis("off")
    fig.tight_layout()
    return fig
