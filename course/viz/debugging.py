"""Pictures for 13_debugging: the checklist, and one picture per bug of the zoo. matplotlib is
imported only when drawing; every function takes plain numbers or tensors on any device."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ._mpl import box as _box
from ._mpl import pyplot as _plt

__all__ = ["cell_timeline", "checklist", "eval_spread", "grad_accumulation", "input_histograms",
           "logits_and_predictions", "lr_schedules", "softmax_twice"]

_COLORS = ["tab:red", "tab:green", "tab:blue", "tab:orange", "tab:purple"]


def _values(x: Any) -> list[float]:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().reshape(-1).tolist()
    return [float(v) for v in x]


def checklist() -> Any:
    """The five questions, in order, that find most bugs of a model that learns badly."""
    plt = _plt()
    steps = [("1  same model,\ntraining data", "is it the model\nor the data?"),
             ("2  batch\nstatistics", "shape, dtype, range,\nmean, std, grad norm"),
             ("3  prediction\nhistogram", "one class for\neverything?"),
             ("4  look at\nthe inputs", "what does the\nmodel really get?"),
             ("5  diff the\npipelines", "train vs eval,\nline by line")]
    fig, ax = plt.subplots(figsize=(11, 2.4))
    w, gap = 1.7, 0.45
    for i, (head, question) in enumerate(steps):
        x = i * (w + gap)
        _box(ax, x, 0.9, w, 0.9, head, "#c6dbef", fontsize=10)
        ax.text(x + w / 2, 0.45, question, ha="center", va="center", fontsize=8.5, color="0.25")
        if i:
            ax.annotate("", xy=(x - 0.03, 1.35), xytext=(x - gap + 0.03, 1.35),
                        arrowprops={"arrowstyle": "->", "lw": 1.5})
    ax.set_xlim(-0.1, len(steps) * (w + gap) - gap + 0.1)
    ax.set_ylim(0.1, 1.95)
    ax.axis("off")
    ax.set_title("the debugging checklist: stop at the first step that looks wrong", fontsize=11)
    fig.tight_layout()
    return fig


def cell_timeline(cells: Sequence[Mapping[str, Any]], title: str | None = None) -> Any:
    """Notebook cells top to bottom, with their ``In [n]`` numbers and what ``model`` named after
    each ran; arrows follow the order the kernel really ran them (by execution count).

    Each cell: ``{"count": int | None, "code": str, "model": str, "bad": bool}``.
    """
    plt = _plt()
    n = len(cells)
    fig, ax = plt.subplots(figsize=(10, 0.85 * n + 0.9))
    for i, cell in enumerate(cells):
        y = n - 1 - i
        count = cell.get("count")
        label = f"In [{count}]:" if count is not None else "In [ ]:"
        ax.text(-0.1, y + 0.4, label, ha="right", va="center", fontsize=10, family="monospace",
                color="tab:blue" if count is not None else "0.6")
        color = "#fbd3cf" if cell.get("bad") else ("#f2f2f2" if count is None else "#e5f5e0")
        _box(ax, 0, y + 0.08, 5.6, 0.64, str(cell.get("code", "")), color, fontsize=8.5,
             family="monospace", left=True)
        if cell.get("model"):
            ax.text(5.85, y + 0.4, f"model → {cell['model']}", va="center", fontsize=9,
                    color="tab:red" if cell.get("bad") else "0.2")
    ran = sorted((c["count"], n - 1 - i) for i, c in enumerate(cells) if c.get("count") is not None)
    for (_, y0), (_, y1) in zip(ran, ran[1:], strict=False):
        ax.annotate("", xy=(-1.2, y1 + 0.4), xytext=(-1.2, y0 + 0.4),
                    arrowprops={"arrowstyle": "->", "lw": 1.4, "color": "tab:blue",
                                "connectionstyle": "arc3,rad=0.35"})
    ax.text(-1.45, n - 0.1, "run order", fontsize=8, color="tab:blue", ha="center")
    ax.set_xlim(-1.9, 9.2)
    ax.set_ylim(-0.1, n + 0.1)
    ax.axis("off")
    ax.set_title(title or "what the kernel ran, and in which order", fontsize=11)
    fig.tight_layout()
    return fig


def softmax_twice(curves: Mapping[str, Sequence[float]] | None = None,
                  num_classes: int = 10) -> Any:
    """Left: cross-entropy of a sample against its correct-class margin, from logits and from
    softmax outputs (which cannot go below log(1 + (C-1)/e)). Right: training curves."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2 if curves else 1, figsize=(11 if curves else 5.5, 3.6),
                             squeeze=False)
    ax = axes[0, 0]
    margins = torch.linspace(-2, 10, 200)
    logits = torch.zeros(200, num_classes)
    logits[:, 0] = margins
    target = torch.zeros(200, dtype=torch.long)
    plain = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    twice = torch.nn.functional.cross_entropy(logits.softmax(1), target, reduction="none")
    ax.plot(margins, plain, label="CrossEntropyLoss(logits)", color="tab:green")
    ax.plot(margins, twice, label="CrossEntropyLoss(softmax(logits))", color="tab:red")
    floor = math.log(1 + (num_classes - 1) / math.e)
    ax.axhline(floor, color="tab:red", ls=":", lw=1)
    ax.text(10, floor + 0.08, f"floor {floor:.2f}", ha="right", fontsize=8, color="tab:red")
    ax.set_xlabel("correct-class logit minus the others")
    ax.set_ylabel("loss of one sample")
    ax.set_title(f"{num_classes} classes: softmax twice caps what the loss can see", fontsize=10)
    ax.legend(fontsize=8)
    if curves:
        _curves(axes[0, 1], curves, "training loss per batch", "batch", "loss")
    fig.tight_layout()
    return fig


def _curves(ax: Any, curves: Mapping[str, Sequence[float]], title: str, xlabel: str,
            ylabel: str, log: bool = False) -> None:
    for (name, values), color in zip(curves.items(), _COLORS, strict=False):
        ax.plot(_values(values), label=name, color=color, lw=1.2)
    if log:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)


def eval_spread(train_mode: Sequence[float], eval_mode: float,
                running_mean_shift: Sequence[float] | None = None) -> Any:
    """Accuracy of repeated evaluations in training mode (scattered) against eval mode (one
    value); optionally how far BatchNorm's running mean moved after each training-mode pass."""
    plt = _plt()
    panels = 2 if running_mean_shift is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.4), squeeze=False)
    ax = axes[0, 0]
    values = _values(train_mode)
    ax.scatter(range(1, len(values) + 1), values, color="tab:red", label="no model.eval()")
    ax.axhline(eval_mode, color="tab:green", label=f"model.eval(): {eval_mode:.1%}")
    ax.set_xlabel("evaluation run")
    ax.set_ylabel("validation accuracy")
    ax.set_title("the same model, evaluated again and again", fontsize=10)
    ax.legend(fontsize=8)
    if running_mean_shift is not None:
        ax = axes[0, 1]
        shift = [0.0] + _values(running_mean_shift)
        ax.plot(range(len(shift)), shift, marker="o", color="tab:red")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("evaluation run (0: as trained)")
        ax.set_ylabel("|running_mean − trained value|")
        ax.set_title("BatchNorm's running statistics drift", fontsize=10)
    fig.tight_layout()
    return fig


def grad_accumulation(grad_norms: Mapping[str, Sequence[float]],
                      losses: Mapping[str, Sequence[float]], steps_per_epoch: int) -> Any:
    """Gradient norm and loss per step, for loops that do and do not clear the gradients."""
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    _curves(left, grad_norms, "norm of the gradient each step() uses", "step", "‖grad‖", log=True)
    _curves(right, losses, "training loss", "step", "loss", log=True)
    total = max(len(v) for v in grad_norms.values())
    for ax in (left, right):
        for s in range(steps_per_epoch, total, steps_per_epoch):
            ax.axvline(s, color="0.8", lw=0.8, zorder=0)
    fig.tight_layout()
    return fig


def input_histograms(inputs: Mapping[str, torch.Tensor], bins: int = 60) -> Any:
    """Histograms of the values the model receives, one panel per pipeline, with mean and std."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(inputs), figsize=(5 * len(inputs), 3.2), squeeze=False)
    for ax, ((name, x), color) in zip(axes[0], zip(inputs.items(), _COLORS[1:], strict=False),
                                      strict=False):
        v = x.detach().float().cpu().reshape(-1)
        ax.hist(v.numpy(), bins=bins, color=color, log=True)
        ax.set_title(f"{name}\nmean {v.mean():.3f}, std {v.std():.4f}", fontsize=10)
        ax.set_xlabel("input value")
    axes[0, 0].set_ylabel("pixels (log scale)")
    fig.tight_layout()
    return fig


def logits_and_predictions(logits: Mapping[str, torch.Tensor], targets: torch.Tensor,
                           n_rows: int = 40) -> Any:
    """Per model: a heat map of the logits of the first samples (exact zeros in white) and the
    histogram of predicted classes against the true ones."""
    plt = _plt()
    k = len(logits)
    fig, axes = plt.subplots(2, k, figsize=(5 * k, 6.2), squeeze=False,
                             gridspec_kw={"height_ratios": [1.3, 1]})
    true = torch.bincount(targets.cpu(), minlength=next(iter(logits.values())).shape[1])
    for col, (name, z) in enumerate(logits.items()):
        z = z.detach().float().cpu()
        shown = z[:n_rows].clone()
        masked = shown.masked_fill(shown == 0, float("nan"))
        ax = axes[0, col]
        im = ax.imshow(masked.T.numpy(), aspect="auto", cmap="coolwarm",
                       vmin=-shown.abs().max().item(), vmax=shown.abs().max().item())
        ax.set_title(f"{name}: logits of {len(shown)} samples\n"
                     f"{(z == 0).float().mean():.0%} exactly 0 (white)", fontsize=10)
        ax.set_xlabel("sample")
        ax.set_ylabel("class")
        fig.colorbar(im, ax=ax, fraction=0.04)
        ax = axes[1, col]
        counts = torch.bincount(z.argmax(1), minlength=z.shape[1])
        classes = torch.arange(z.shape[1])
        ax.bar(classes - 0.2, true.numpy(), width=0.4, color="0.7", label="true")
        ax.bar(classes + 0.2, counts.numpy(), width=0.4, color="tab:blue", label="predicted")
        ax.set_xticks(classes.tolist())
        ax.set_xlabel("class")
        ax.set_title(f"{int((counts == 0).sum())} classes never predicted", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def lr_schedules(lrs: Mapping[str, Sequence[float]], steps_per_epoch: int,
                 losses: Mapping[str, Sequence[float]] | None = None) -> Any:
    """Learning rate at every optimizer step (log scale, epoch boundaries marked) and, optionally,
    the training loss of the same runs."""
    plt = _plt()
    panels = 2 if losses else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.5), squeeze=False)
    _curves(axes[0, 0], lrs, "learning rate at each step", "step (batch)", "lr", log=True)
    if losses:
        _curves(axes[0, 1], losses, "training loss", "step (batch)", "loss")
    total = max(len(v) for v in lrs.values())
    for ax in axes[0]:
        for s in range(steps_per_epoch, total, steps_per_epoch):
            ax.axvline(s, color="0.8", lw=0.8, zorder=0)
    fig.tight_layout()
    return fig
