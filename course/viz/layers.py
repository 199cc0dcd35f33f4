"""Pictures for 05_layers: a kernel sliding over an input, and BatchNorm's running statistics.

matplotlib is imported only when a picture is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["show_conv_sliding", "show_running_stats"]


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def show_conv_sliding(h: int = 5, w: int = 5, kernel_size: int | Sequence[int] = 3,
                      stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                      dilation: int | Sequence[int] = 1, n_steps: int = 3) -> Any:
    """Draw the first ``n_steps`` positions of a kernel on an (optionally padded) input, and the
    output cell each position produces. Padding is hatched; the kernel's taps are coloured."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(_pair, (kernel_size, stride, padding, dilation))
    hp, wp = h + 2 * ph, w + 2 * pw
    h_out = (hp - dh * (kh - 1) - 1) // sh + 1
    w_out = (wp - dw * (kw - 1) - 1) // sw + 1
    positions = [(i, j) for i in range(h_out) for j in range(w_out)]
    picks = positions[:n_steps - 1] + positions[-1:] if len(positions) > n_steps else positions
    fig, axes = plt.subplots(2, len(picks), figsize=(2.6 * len(picks), 5.2),
                             gridspec_kw={"height_ratios": [hp, max(h_out, 1) + 1]}, squeeze=False)
    for col, (oi, oj) in enumerate(picks):
        ax = axes[0][col]
        for r in range(hp):
            for c in range(wp):
                pad = not (ph <= r < ph + h and pw <= c < pw + w)
                ax.add_patch(Rectangle((c, hp - 1 - r), 1, 1, fc="0.93" if pad else "white",
                                       ec="0.6", hatch="//" if pad else None, lw=0.8))
        for a in range(kh):
            for b in range(kw):
                r, c = oi * sh + a * dh, oj * sw + b * dw
                ax.add_patch(Rectangle((c, hp - 1 - r), 1, 1, fc="#fdae6b", ec="#d94801", lw=1.5,
                                       alpha=0.9))
                ax.text(c + 0.5, hp - 0.5 - r, f"w{a}{b}", ha="center", va="center", fontsize=7)
        ax.set_xlim(-0.1, wp + 0.1)
        ax.set_ylim(-0.1, hp + 0.1)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(f"window for output [{oi},{oj}]", fontsize=9)
        out = axes[1][col]
        for r in range(h_out):
            for c in range(w_out):
                hit = (r, c) == (oi, oj)
                out.add_patch(Rectangle((c, h_out - 1 - r), 1, 1, fc="#fdae6b" if hit else "white",
                                        ec="0.4"))
        out.set_xlim(-0.1, max(w_out, 1) + 0.1)
        out.set_ylim(-1, max(h_out, 1))
        out.set_aspect("equal")
        out.axis("off")
        out.text(0, -0.7, f"output {h_out}×{w_out}", fontsize=9)
    fig.suptitle(f"input {h}×{w}, kernel {kh}×{kw}, stride ({sh},{sw}), padding ({ph},{pw}), "
                 f"dilation ({dh},{dw})  (hatched = padding)", fontsize=10)
    fig.tight_layout()
    return fig


def show_running_stats(batch_means: Sequence[float], running_means: Sequence[float],
                       batch_vars: Sequence[float], running_vars: Sequence[float],
                       true_mean: float, true_var: float, momentum: float,
                       marks: Sequence[int] = ()) -> Any:
    """Plot one channel's batch statistics and BatchNorm's running estimates over training steps.

    ``marks``: steps k at which to show how much the starting value still weighs, (1 − momentum)^k.
    """
    import matplotlib.pyplot as plt

    steps = range(1, len(batch_means) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, batch, running, true, name in [(axes[0], batch_means, running_means, true_mean, "mean"),
                                           (axes[1], batch_vars, running_vars, true_var, "var")]:
        ax.plot(steps, batch, ".", color="0.6", label=f"this batch's {name}")
        ax.plot(steps, running, "-", color="#d94801", lw=2, label=f"running_{name}")
        ax.axhline(true, color="#2171b5", ls="--", label=f"true {name} of the data")
        for k in marks:
            ax.axvline(k, color="0.4", ls=":", lw=1)
            ax.annotate(f"start weighs {(1 - momentum) ** k:.0%}", (k, 1.0),
                        xycoords=("data", "axes fraction"), xytext=(3, -12),
                        textcoords="offset points", fontsize=8, color="0.3")
        ax.set_xlabel("training step")
        ax.set_title(f"running_{name} (momentum={momentum})", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
