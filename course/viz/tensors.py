"""Pictures for 02_tensors: storage and strides, broadcasting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ._mpl import pyplot as _plt

__all__ = ["show_broadcast", "show_strides"]


def show_strides(t: torch.Tensor, title: str | None = None) -> Any:
    """Draw a 2-d tensor's elements above its storage, with the storage index of each element."""
    if t.dim() != 2:
        raise ValueError(f"show_strides draws 2-d tensors; this one has {t.dim()} dimensions")
    plt = _plt()
    n_storage = t.untyped_storage().nbytes() // t.element_size()
    rows, cols = t.shape
    offset, (s0, s1) = t.storage_offset(), t.stride()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6, 0.6 * n_storage), 3.6),
                                      gridspec_kw={"height_ratios": [rows, 1.2]})
    cmap = plt.get_cmap("tab20")
    for r in range(rows):
        for c in range(cols):
            pos = offset + r * s0 + c * s1
            top.add_patch(plt.Rectangle((c, rows - 1 - r), 1, 1, fc=cmap(pos % 20), ec="k"))
            top.text(c + 0.5, rows - 0.5 - r, f"[{r},{c}]\n@{pos}", ha="center", va="center",
                     fontsize=8)
    top.set_xlim(0, max(cols, 1))
    top.set_ylim(0, rows)
    top.set_aspect("equal")
    top.axis("off")
    top.set_title(title or f"shape {tuple(t.shape)}, stride {t.stride()}, offset {offset}",
                  fontsize=10)
    used = {offset + r * s0 + c * s1 for r in range(rows) for c in range(cols)}
    for i in range(n_storage):
        color = cmap(i % 20) if i in used else "white"
        bottom.add_patch(plt.Rectangle((i, 0), 1, 1, fc=color, ec="k"))
        bottom.text(i + 0.5, 0.5, str(i), ha="center", va="center", fontsize=8)
    bottom.set_xlim(0, n_storage)
    bottom.set_ylim(0, 1)
    bottom.set_aspect("equal")
    bottom.axis("off")
    bottom.set_title("storage (coloured: reached by this tensor; @ = storage index)", fontsize=9)
    fig.tight_layout()
    return fig


def show_broadcast(a_shape: Sequence[int], b_shape: Sequence[int]) -> Any:
    """Line up two shapes from the right and show the broadcast result, dim by dim."""
    plt = _plt()
    n = max(len(a_shape), len(b_shape))
    a = [1] * (n - len(a_shape)) + list(a_shape)
    b = [1] * (n - len(b_shape)) + list(b_shape)
    out = torch.broadcast_shapes(tuple(a_shape), tuple(b_shape))
    fig, ax = plt.subplots(figsize=(1.2 * n + 2, 2.2))
    rows = [("a", a, len(a_shape)), ("b", b, len(b_shape)), ("a + b", list(out), n)]
    for r, (label, dims, real) in enumerate(rows):
        y = 2 - r
        ax.text(-0.2, y + 0.5, label, ha="right", va="center", fontsize=10)
        for i, d in enumerate(dims):
            padded = i < n - real
            color = "#eeeeee" if padded else ("#fdd0a2" if d == 1 and r < 2 else "#c6dbef")
            ax.add_patch(plt.Rectangle((i, y), 0.9, 0.9, fc=color, ec="k",
                                       ls="--" if padded else "-"))
            ax.text(i + 0.45, y + 0.45, str(d), ha="center", va="center", fontsize=10)
    ax.set_xlim(-1, n)
    ax.set_ylim(0, 3)
    ax.axis("off")
    ax.set_title("align from the right; size-1 (orange) or missing (dashed) dims stretch", fontsize=9)
    fig.tight_layout()
    return fig
