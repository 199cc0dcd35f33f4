"""Pictures for 12_fashion_mnist: misclassified examples, plus the training pictures of 11."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .mnist import plot_class_bars, plot_confusion_matrix, plot_history, show_images

__all__ = ["plot_class_bars", "plot_confusion_matrix", "plot_history", "show_images",
           "show_misclassified"]


def show_misclassified(images: torch.Tensor, preds: torch.Tensor, targets: torch.Tensor,
                       class_names: Sequence[str] | None = None, n: int = 16,
                       ncols: int = 8) -> Any:
    """The first ``n`` images whose prediction differs from the target, titled ``pred (true)``."""
    wrong = (preds.cpu() != targets.cpu()).nonzero().flatten()[:n]
    return show_images(images.cpu()[wrong], targets.cpu()[wrong], preds.cpu()[wrong], class_names,
                       ncols=ncols, title=f"{len(wrong)} misclassified: predicted (true)")
