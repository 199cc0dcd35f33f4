"""05_layers, exercise 1: ``conv2d_output_shape``, the size arithmetic of a 2-d convolution."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from .._core import Check, CheckFailure, Delegation, attempt, expect, require
from .._guards import tripwire

__all__ = ["conv2d_output_shape", "pair", "reference_output_shape"]

_CASES: list[tuple[int, int, Any, Any, Any, Any]] = [
    (28, 28, 3, 1, 0, 1), (28, 28, 5, 1, 2, 1), (32, 32, 3, 2, 1, 1), (7, 7, 3, 2, 0, 1),
    (10, 10, 3, 1, 0, 2), (9, 12, (3, 5), (2, 1), (1, 2), (2, 1)),
]
_EDGE: list[tuple[int, int, Any, Any, Any, Any]] = [
    (1, 1, 1, 1, 0, 1), (5, 5, 5, 1, 0, 1), (6, 6, 3, 4, 1, 1), (64, 48, 7, 2, 3, 1),
    (15, 16, (1, 4), (3, 3), (0, 1), (1, 3)), (224, 224, 11, 4, 2, 1), (8, 9, 2, 3, 2, 4),
]
_TRIP = [(F, "conv2d"), (torch, "conv2d"), (torch, "convolution"), (torch, "_convolution")]
_HINT = "Work it out from the formula with integer arithmetic (//)."


def pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def reference_output_shape(h: int, w: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                           dilation: Any = 1) -> tuple[int, int]:
    """The right answer to exercise 1; Conv2d's checks run with it so a wrong exercise 1 costs once."""
    sizes = zip((h, w), pair(kernel_size), pair(stride), pair(padding), pair(dilation), strict=True)
    return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in sizes)  # type: ignore[return-value]


def _cases(thorough: bool) -> list[tuple[int, int, Any, Any, Any, Any]]:
    return _CASES + (_EDGE if thorough else [])


def _scenario(fn: Callable[..., Any], *, thorough: bool = False, seed: int = 0) -> list[Any]:
    results = []
    with tripwire(_TRIP):
        for i, (h, w, k, s, p, d) in enumerate(_cases(thorough)):  # positional and keyword calls
            if i % 2:
                results.append(attempt(fn, h, w, k, stride=s, padding=p, dilation=d,
                                       call=f"conv2d_output_shape({h}, {w}, {k!r}, stride={s!r}, "
                                            f"padding={p!r}, dilation={d!r})"))
            else:
                results.append(attempt(fn, h, w, k, s, p, d,
                                       call=f"conv2d_output_shape({h}, {w}, {k!r}, {s!r}, {p!r}, {d!r})"))
    return results


def _formula(size: int, k: int, s: int, p: int, d: int, variant: str) -> float:
    pad, span = {"once": (p, d * (k - 1)), "nodil": (2 * p, k - 1)}.get(variant, (2 * p, d * (k - 1)))
    num = size + pad - span - 1
    if variant == "ceil":
        return math.ceil(num / s) + 1
    if variant == "no+1":
        return num // s
    if variant == "true":
        return num / s + 1
    return num // s + 1


_VARIANTS = [
    ("true", "use floor division (//): sizes are whole numbers and must be ints"),
    ("nodil", "dilation spreads the kernel out: its effective size is dilation·(kernel_size − 1) "
              "+ 1, so dilation belongs in the formula"),
    ("once", "padding is added on BOTH sides of the input: count 2·padding"),
    ("ceil", "round DOWN (floor): a window that would hang over the edge is not used"),
    ("no+1", "off by one: the first window position counts too, so add 1 after dividing"),
]


def _verdict(results: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """``fn(h, w, kernel_size, stride, padding, dilation)`` must equal the shape F.conv2d gives."""
    cases = _cases(thorough)
    require(isinstance(results, list) and len(results) == len(cases),
            "conv2d_output_shape could not be checked: the record is incomplete", None, hidden)
    for (h, w, k, s, p, d), got in zip(cases, results, strict=True):
        image, kernel = torch.zeros(1, 1, h, w), torch.zeros(1, 1, *pair(k))
        expected = tuple(F.conv2d(image, kernel, stride=s, padding=p, dilation=d).shape[2:])
        where = f"h={h}, w={w}, kernel_size={k}, stride={s}, padding={p}, dilation={d}"
        got = expect(got, "conv2d_output_shape", "the output-size formula" + (
            " with (height, width) pairs" if isinstance(k, tuple) else ""), hidden=hidden)
        if isinstance(got, tuple) and got == expected and all(type(v) is int for v in got):
            continue
        require(isinstance(got, (tuple, list)) and len(got) == 2,
                "conv2d_output_shape must return a pair (h_out, w_out)", f"{where}: got {got!r}", hidden)
        if tuple(got) == expected:
            raise CheckFailure("conv2d_output_shape must return a tuple of two Python ints "
                               "(use floor division, //, not /)", f"{where}: got {got!r}", hidden)
        dims = list(zip((h, w), pair(k), pair(s), pair(p), pair(d), strict=True))
        concept = ("the output size is floor((size + 2·padding − dilation·(kernel_size − 1) − 1) "
                   "/ stride) + 1, for height and width separately")
        for variant, text in _VARIANTS:
            if list(got) == [_formula(*dim, variant) for dim in dims]:
                concept = text
                break
        else:
            firsts = [x[0] for x in (pair(k), pair(s), pair(p), pair(d))]
            if list(got) == [_formula(size, *firsts, "") for size in (h, w)]:
                concept = ("a pair means (height, width): use its first entry for h and its second "
                           "for w")
        raise CheckFailure(concept, f"{where}: expected {expected}, got {tuple(got)}", hidden)


conv2d_output_shape = Check(
    "layers.conv2d_output_shape", "conv2d_output_shape", _scenario, _verdict,
    Delegation(_HINT, names=frozenset({"conv2d", "Conv2d", "convolution", "_convolution"})))
conv2d_output_shape.__doc__ = "``fn(h, w, kernel_size, stride, padding, dilation)`` vs F.conv2d's shape."
