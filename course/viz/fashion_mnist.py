"""Pictures for 12_fashion_mnist: misclassified examples, plus the training pictures of 11."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ._mpl import pyplot
from .mnist import plot_class_bars, plot_confusion_matrix, plot_history, show_images

__all__ = ["plot_class_bars", "plot_confusion_matrix", "plot_history", "plot_logged_scalars",
           "show_images", "show_misclassified"]


def show_misclassified(images: torch.Tensor, preds: torch.Tensor, targets: torch.Tensor,
                       class_names: Sequence[str] | None = None, n: int = 16,
                       ncols: int = 8) -> Any:
    """The first ``n`` images whose prediction differs from the target, titled ``pred (true)``."""
    wrong = (preds.cpu() != targets.cpu()).nonzero().flatten()[:n]
    return show_images(images.cpu()[wrong], targets.cpu()[wrong], preds.cpu()[wrong], class_names,
                       ncols=ncols, title=f"{len(wrong)} misclassified: predicted (true)")


def plot_logged_scalars(log_dir: str | Path, tags: Sequence[str] = ("loss/train", "loss/val",
                                                                     "accuracy/val"),
                        title: str | None = None) -> Any:
    """The scalars TensorBoard would draw from the event files under ``log_dir``, against their
    step (one panel per tag), read back with tensorboard's ``EventAccumulator``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points: dict[str, list[tuple[int, float]]] = {tag: [] for tag in tags}
    for file in sorted(Path(log_dir).rglob("events.out.tfevents.*"), key=lambda p: p.name):
        acc = EventAccumulator(str(file), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in tags:
            if tag in acc.Tags().get("scalars", []):
                points[tag] += [(e.step, e.value) for e in acc.Scalars(tag)]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tags), figsize=(3.6 * len(tags), 3), squeeze=False)
    for ax, tag in zip(axes[0], tags, strict=True):
        if points[tag]:
            steps, values = zip(*sorted(points[tag]), strict=True)
            ax.plot(steps, values, "o-")
        ax.set(title=tag, xlabel="global step (batches)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
