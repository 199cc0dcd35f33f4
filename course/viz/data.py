"""Pictures for 10_data: a grid of images, pixel histograms, and a throughput bar chart.

matplotlib is imported only when a picture is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ._mpl import pyplot as _plt

__all__ = ["batch_layout", "image_grid", "pixel_histograms", "throughput_bars"]


def batch_layout(epochs: Sequence[Sequence[Sequence[int]]], n: int, title: str | None = None) -> Any:
    """Which sample lands in which batch: one row per epoch, one cell per sample position.

    ``epochs[e]`` is the list of batches of epoch ``e``, each a list of sample indices; cells are
    coloured by batch, and samples an epoch never served (dropped by ``drop_last``) are grey.
    """
    plt = _plt()
    from matplotlib.patches import Rectangle

    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3"]
    fig, ax = plt.subplots(figsize=(0.55 * n + 1.6, 0.75 * len(epochs) + 0.6))
    for e, batches in enumerate(epochs):
        pos = 0
        for b, batch in enumerate(batches):
            for idx in batch:
                ax.add_patch(Rectangle((pos, -e), 0.95, 0.9, color=colors[b % len(colors)]))
                ax.text(pos + 0.47, -e + 0.45, str(int(idx)), ha="center", va="center",
                        color="white", fontsize=9)
                pos += 1
        served = {int(i) for batch in batches for i in batch}
        for idx in sorted(set(range(n)) - served):
            ax.add_patch(Rectangle((pos, -e), 0.95, 0.9, color="0.8"))
            ax.text(pos + 0.47, -e + 0.45, str(idx), ha="center", va="center", fontsize=9)
            pos += 1
        ax.text(-0.3, -e + 0.45, f"epoch {e}", ha="right", va="center", fontsize=9)
    ax.set_xlim(-1.6, n + 0.1)
    ax.set_ylim(-len(epochs) + 0.9, 1.0)
    ax.axis("off")
    ax.set_title(title or "sample indices by batch (colour) per epoch; grey = dropped", fontsize=10)
    fig.tight_layout()
    return fig


def image_grid(images: torch.Tensor, labels: Sequence[Any] | torch.Tensor, ncols: int = 8,
               title: str | None = None) -> Any:
    """Show ``(N, 1, H, W)`` or ``(N, H, W)`` images in a grid, each titled with its label."""
    plt = _plt()
    images = images.detach().cpu()
    if images.dim() == 4:
        images = images[:, 0]
    n = images.shape[0]
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.2 * ncols, 1.35 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap="gray")
            ax.set_title(str(int(labels[i])), fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def pixel_histograms(named: Mapping[str, torch.Tensor], bins: int = 60) -> Any:
    """One histogram per tensor of pixel values, with its mean and std marked."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(named), figsize=(4.2 * len(named), 3), squeeze=False)
    for ax, (name, values) in zip(axes[0], named.items(), strict=True):
        v = values.detach().flatten().float().cpu()
        ax.hist(v.numpy(), bins=bins, color="#4c72b0", log=True)
        mean, std = v.mean().item(), v.std(correction=0).item()
        ax.axvline(mean, color="#c44e52", lw=2, label=f"mean {mean:.3f}")
        ax.axvspan(mean - std, mean + std, color="#c44e52", alpha=0.15, label=f"± std {std:.3f}")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("pixel value")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("count (log scale)")
    fig.tight_layout()
    return fig


def throughput_bars(samples_per_second: Mapping[str, float], title: str | None = None) -> Any:
    """A horizontal bar per pipeline: samples per second, on a log axis, with the values."""
    plt = _plt()
    names = list(samples_per_second)
    values = [samples_per_second[k] for k in names]
    fig, ax = plt.subplots(figsize=(7.5, 0.7 + 0.6 * len(names)))
    bars = ax.barh(names, values, color=["#dd8452", "#55a868", "#4c72b0", "#8172b3"][: len(names)])
    ax.set_xscale("log")
    ax.invert_yaxis()
    for bar, v in zip(bars, values, strict=True):
        ax.text(v, bar.get_y() + bar.get_height() / 2, f" {v:,.0f}/s", va="center", fontsize=9)
    ax.set_xlabel("samples per second (log scale)")
    ax.set_xlim(min(values) / 3, max(values) * 8)
    ax.set_title(title or "Loading MNIST batches")
    fig.tight_layout()
    return fig
