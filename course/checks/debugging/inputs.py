"""Bug 5, ``Normalize`` with the wrong statistics.

``normalization_stats(images)`` takes uint8 training images (0..255) and returns ``(mean, std)``
as Python floats on the [0, 1] scale that ``ToTensor``/``ToDtype(scale=True)`` produce, over all
pixels of all images: the numbers ``Normalize((mean,), (std,))`` needs.
"""

from __future__ import annotations

from typing import Any

import torch

from .._core import Check, CheckFailure, attempt, check_device, expect, require
from ._common import is_float, type_name

__all__ = ["normalization_stats"]

_EX = "normalization_stats"


def _cases(thorough: bool) -> list[tuple[str, tuple[int, ...]]]:
    cases = [("digits", (300, 28, 28))]
    if thorough:
        cases += [("digits", (64, 1, 28, 28)), ("noise", (50, 12, 12)), ("digits", (3, 28, 28))]
    return cases


def _images(kind: str, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """MNIST-like digits (dark background, strokes whose brightness varies per image) or noise."""
    g = torch.Generator().manual_seed(80_000 + seed)
    if kind == "noise":
        return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    n = shape[0]
    strokes = torch.rand(shape, generator=g) < 0.2
    level = 60 + 195 * torch.rand((n,) + (1,) * (len(shape) - 1), generator=g)
    ink = (level * (0.7 + 0.3 * torch.rand(shape, generator=g))).clamp(0, 255)
    return torch.where(strokes, ink, torch.zeros(shape)).to(torch.uint8)


def _scenario(fn: Any, *, thorough: bool = False, seed: int = 0) -> list[Any]:
    device = check_device()
    out = []
    for k, (kind, shape) in enumerate(_cases(thorough)):
        images = _images(kind, shape, seed + k).to(device)
        out.append(attempt(fn, images, call=f"normalization_stats(<uint8 images of shape {shape}>)"))
    return out


def _verdict(results: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    cases = _cases(thorough)
    require(isinstance(results, list) and len(results) == len(cases),
            "the check could not record every call of normalization_stats", hidden=hidden)
    for k, ((kind, shape), got) in enumerate(zip(cases, results, strict=True)):
        what = f"{'noise' if kind == 'noise' else 'digit'} images of shape {shape}"
        got = expect(got, _EX, what, hidden=hidden)
        require(isinstance(got, tuple) and len(got) == 2 and all(is_float(v) for v in got),
                "normalization_stats must return a tuple of two Python floats (mean, std) "
                "(use .item())", f"it returned {type_name(got)}: {got!r:.120}", hidden)
        mean, std = got
        x = _images(kind, shape, seed + k).to(torch.float64) / 255
        ref_mean, ref_std = x.mean().item(), x.std().item()
        if _near(mean, ref_mean) and (_near(std, ref_std) or _near(std, x.std(correction=0).item())):
            continue
        detail = f"{what}: expected ({ref_mean:.4f}, {ref_std:.4f}), got ({mean:.4f}, {std:.4f})"
        per_image = x.reshape(shape[0], -1).std(dim=1).mean().item()
        if _near(mean, 255 * ref_mean):
            seen_mean = (ref_mean - mean) / std if std else float("nan")
            seen_std = ref_std / std if std else float("nan")
            concept = (f"symptom: with these numbers the network's inputs have mean {seen_mean:.2f} "
                       f"and std {seen_std:.4f} instead of 0 and 1 — nearly constant, so the loss "
                       "stays flat. Cause: statistics on the 0..255 scale, but ToTensor (or "
                       "ToDtype(..., scale=True)) divides by 255 BEFORE Normalize: compute them on "
                       "pixels scaled to [0, 1]")
        elif _near(mean, ref_std) and _near(std, ref_mean):
            concept = "return (mean, std) in that order, as Normalize(mean, std) takes them"
        elif _near(mean, ref_mean) and _near(std, ref_std ** 2):
            concept = "return the standard deviation, not the variance (Normalize divides by std)"
        elif _near(mean, ref_mean) and _near(std, per_image):
            concept = ("the std must be taken over ALL pixels of all images at once: the mean of "
                       "per-image stds leaves out how images differ from each other")
        else:
            concept = ("return the mean and standard deviation of every pixel of every image, "
                       "scaled to [0, 1]")
        raise CheckFailure(concept, detail, hidden)


def _near(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-4 + 1e-3 * abs(b)


normalization_stats = Check("debugging.normalization_stats", _EX, _scenario, _verdict)
normalization_stats.__doc__ = ("``fn(images_uint8)`` returns (mean, std) of all pixels on the "
                               "[0, 1] scale, as Python floats.")
