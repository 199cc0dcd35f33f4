"""Pictures for 11_mnist (and reused by 12_fashion_mnist): learning curves, confusion matrices,
per-class bars and image grids. matplotlib is imported inside the functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ._mpl import pyplot as _plt

__all__ = ["plot_accuracy_bars", "plot_class_bars", "plot_confusion_matrix", "plot_history",
           "show_images"]




def _name(i: int, class_names: Sequence[str] | None) -> str:
    return class_names[i] if class_names is not None else str(i)


def show_images(images: torch.Tensor, labels: torch.Tensor | None = None,
                preds: torch.Tensor | None = None, class_names: Sequence[str] | None = None,
                ncols: int = 8, title: str | None = None, size: float = 1.3) -> Any:
    """A grid of grayscale images ``(N, H, W)`` or ``(N, 1, H, W)``, any dtype or scale.

    With ``preds``, each title reads ``pred (true)`` and wrong predictions are red.
    """
    plt = _plt()
    imgs = images.detach().float().cpu()
    if imgs.dim() == 4:
        imgs = imgs[:, 0]
    n = imgs.shape[0]
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i]
        ax.imshow(imgs[i].numpy(), cmap="gray")
        if preds is not None and labels is not None:
            p, t = int(preds[i]), int(labels[i])
            ax.set_title(f"{_name(p, class_names)} ({_name(t, class_names)})", fontsize=8,
                         color="tab:red" if p != t else "black")
        elif labels is not None:
            ax.set_title(_name(int(labels[i]), class_names), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_history(history: Mapping[str, Sequence[float]], title: str | None = None) -> Any:
    """Loss and accuracy per epoch, training and validation side by side."""
    plt = _plt()
    epochs = history.get("epoch") or list(range(1, len(history["train_loss"]) + 1))
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    for key, style in (("train", "o-"), ("val", "s--")):
        if history.get(f"{key}_loss"):
            ax_loss.plot(epochs, history[f"{key}_loss"], style, label=key)
        if history.get(f"{key}_accuracy"):
            ax_acc.plot(epochs, [100 * a for a in history[f"{key}_accuracy"]], style, label=key)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(cm: torch.Tensor, class_names: Sequence[str] | None = None,
                          normalize: bool = True, title: str = "confusion matrix") -> Any:
    """Rows are true classes, columns predictions; ``normalize`` shows each row as fractions."""
    plt = _plt()
    cm = cm.detach().float().cpu()
    shown = cm / cm.sum(1, keepdim=True).clamp(min=1) if normalize else cm
    k = cm.shape[0]
    names = [_name(i, class_names) for i in range(k)]
    fig, ax = plt.subplots(figsize=(0.55 * k + 2.5, 0.55 * k + 1.8))
    im = ax.imshow(shown.numpy(), cmap="Blues")
    for i in range(k):
        for j in range(k):
            if cm[i, j] > 0:
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if float(shown[i, j]) > 0.5 * float(shown.max()) else "black")
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the row" if normalize else "count")
    fig.tight_layout()
    return fig


def plot_class_bars(values: torch.Tensor | Sequence[float], class_names: Sequence[str] | None = None,
                    title: str = "", ylabel: str = "", compare: Sequence[float] | None = None,
                    labels: tuple[str, str] = ("", "")) -> Any:
    """One bar per class (e.g. per-class accuracy, or how often each class is predicted)."""
    plt = _plt()
    vals = [float(v) for v in values]
    k = len(vals)
    names = [_name(i, class_names) for i in range(k)]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * k + 1), 3.2))
    width = 0.4 if compare is not None else 0.7
    xs = torch.arange(k).float().numpy()
    ax.bar(xs - (width / 2 if compare is not None else 0), vals, width, label=labels[0] or None)
    if compare is not None:
        ax.bar(xs + width / 2, [float(v) for v in compare], width, label=labels[1] or None)
        ax.legend()
    ax.set_xticks(range(k), names, rotation=30 if class_names else 0)
    ax.set(title=title, ylabel=ylabel)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_accuracy_bars(accuracies: Sequence[float], names: Sequence[str] | None = None,
                       reference: float | None = None, reference_label: str = "chance",
                       title: str = "", xlabel: str = "") -> Any:
    """One bar per model (accuracies in [0, 1], shown in %), with an optional dashed reference
    line such as chance level."""
    plt = _plt()
    vals = [100 * float(a) for a in accuracies]
    k = len(vals)
    names = list(names) if names is not None else [str(i) for i in range(k)]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * k + 1.5), 3.0))
    ax.bar(range(k), vals, 0.7, color="tab:gray")
    for i, v in enumerate(vals):
        ax.text(i, v, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
    if reference is not None:
        ax.axhline(100 * reference, color="tab:red", linestyle="--", label=reference_label)
        ax.legend(loc="upper right")
    ax.set_xticks(range(k), names)
    ax.set(title=title, xlabel=xlabel, ylabel="accuracy (%)", ylim=(0, max(vals + [1.0]) * 1.25))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
