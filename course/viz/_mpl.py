"""Drawing helpers every picture module shares; matplotlib is imported on first use only."""

from __future__ import annotations

from typing import Any

__all__ = ["arrow", "box", "pyplot"]


def pyplot() -> Any:
    """``matplotlib.pyplot``, imported now (``import course`` never pays for it)."""
    import matplotlib.pyplot as plt

    return plt


def box(ax: Any, x: float, y: float, w: float, h: float, text: str, color: str,
        fontsize: int = 9, family: str | None = None, left: bool = False) -> None:
    """A rounded box with a label, for diagrams."""
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02", fc=color, ec="0.3"))
    ax.text(x + 0.15 if left else x + w / 2, y + h / 2, text, ha="left" if left else "center",
            va="center", fontsize=fontsize, family=family, wrap=True)


def arrow(ax: Any, start: tuple[float, float], end: tuple[float, float], **style: Any) -> None:
    props = {"arrowstyle": "->", "lw": 1.3, "color": "0.25"} | style
    ax.annotate("", xy=end, xytext=start, arrowprops=props)
