"""Pictures for 00_setup: how an exercise travels from the notebook to the grade."""

from __future__ import annotations

from typing import Any

from ._mpl import box as _box
from ._mpl import pyplot as _plt

__all__ = ["course_workflow"]


def course_workflow() -> Any:
    """How an exercise travels: write, self-check, submit, autograde, feedback."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 2.6))
    steps = [
        ("solutions/\n(instructor)", "#f6d7a7"),
        ("course release\n→ notebooks/", "#f6d7a7"),
        ("you write\nanswer cells", "#c7e9c0"),
        ("visible tests\n& self-check", "#c7e9c0"),
        ("submit", "#c6dbef"),
        ("autograde:\nvisible + hidden", "#c6dbef"),
        ("score &\nfeedback", "#c6dbef"),
    ]
    w, gap = 1.2, 0.35
    for i, (text, color) in enumerate(steps):
        x = i * (w + gap)
        _box(ax, x, 0.3, w, 0.9, text, color)
        if i:
            ax.annotate("", xy=(x - 0.02, 0.75), xytext=(x - gap + 0.02, 0.75),
                        arrowprops={"arrowstyle": "->", "lw": 1.5})
    ax.text(0.0, 1.45, "instructor", color="#a0661c", fontsize=9)
    ax.text(2 * (w + gap), 1.45, "you", color="#2e7d32", fontsize=9)
    ax.text(4 * (w + gap), 1.45, "grader", color="#1f5f99", fontsize=9)
    ax.set_xlim(-0.1, len(steps) * (w + gap))
    ax.set_ylim(0, 1.7)
    ax.axis("off")
    fig.tight_layout()
    return fig
