"""Checks for 02_tensors: strides, flat indices, contiguity and a transpose built as a view."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ._core import (
    Check,
    CheckFailure,
    Delegation,
    attempt,
    expect,
    require,
    same_tensor,
    type_name,
)
from ._guards import tripwire
from ._transcript import meta

__all__ = ["contiguous_strides", "flat_index", "is_contiguous", "transpose_view"]

_VISIBLE_SHAPES = [(2, 3), (4,), (2, 3, 4), (5, 1, 7)]
_EDGE_SHAPES = [(), (1,), (0,), (2, 0, 3), (3, 1, 1, 2), (1, 1), (7, 5, 3, 2, 2), (0, 0), (6, 1)]


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _fortran(shape: Sequence[int]) -> tuple[int, ...]:
    out, acc = [], 1
    for size in shape:
        out.append(acc)
        acc *= max(size, 1)
    return tuple(out)


def _shapes(thorough: bool) -> list[tuple[int, ...]]:
    return _VISIBLE_SHAPES + (_EDGE_SHAPES if thorough else [])


def _strides_scenario(fn: Callable[..., Any], *, thorough: bool = False) -> list[Any]:
    return [attempt(fn, shape) for shape in _shapes(thorough)]



def _strides_verdict(results: list[Any], *, thorough: bool = False, hidden: bool = False) -> None:
    """``fn(shape)`` must equal ``torch.empty(shape).stride()`` as a tuple of ints."""
    for shape, got in zip(_shapes(thorough), results, strict=True):
        expected = torch.empty(shape).stride()
        got = expect(got, "contiguous_strides", hidden=hidden)
        require(isinstance(got, tuple) and all(_is_int(s) for s in got),
                "contiguous_strides must return a tuple of Python ints, like Tensor.stride()",
                f"for shape {shape} it returned {got!r} ({type_name(got)})", hidden)
        if got == expected:
            continue
        detail = f"for shape {shape}: expected {expected}, got {got}"
        if len(got) != len(shape):
            concept = "there is one stride per dimension: the result needs len(shape) entries"
        elif any(s == 0 for s in shape) and got == _fortran(shape)[::-1]:
            concept = "strides are in the wrong order"
        elif any(s == 0 for s in shape):
            concept = ("a zero-size dimension: torch treats every size as at least 1 when it "
                       "multiplies sizes into strides, so no stride becomes 0")
        elif got == _fortran(shape) and got != expected:
            concept = ("these are column-major (Fortran) strides: in a contiguous, row-major tensor "
                       "the LAST dimension has stride 1 and each stride is the product of the sizes "
                       "to its right")
        elif all(g == e * 4 for g, e in zip(got, expected, strict=False)):
            concept = "strides count elements, not bytes: do not multiply by the element size"
        else:
            concept = ("each stride must be the product of the sizes of all dimensions to its "
                       "right (the last dimension has stride 1)")
        raise CheckFailure(concept, detail, hidden)


contiguous_strides = Check("tensors.contiguous_strides", "contiguous_strides", _strides_scenario,
                           _strides_verdict, Delegation(
                               "Compute the strides from the shape with integer arithmetic.",
                               names=frozenset({"stride"})))


def _views(thorough: bool, gen: torch.Generator) -> list[torch.Tensor]:
    base = torch.arange(2000)
    views = [
        base[:12].view(3, 4),
        base[:24].view(2, 3, 4).transpose(0, 2),
        base[5:35].view(5, 6)[1:, ::2],
        base.as_strided((3, 3), (1, 7), 11),
    ]
    if thorough:
        views += [
            base[7:8].view(()),  # 0-d with an offset
            base[:4].view(4, 1).expand(4, 5),  # stride 0
            base[100:].as_strided((2, 3, 4, 5), (1, 300, 7, 60), 3),
        ]
        for _ in range(5):
            nd = int(torch.randint(1, 5, (1,), generator=gen))
            shape = tuple(int(s) for s in torch.randint(1, 5, (nd,), generator=gen))
            stride = tuple(int(s) for s in torch.randint(0, 20, (nd,), generator=gen))
            offset = int(torch.randint(0, 50, (1,), generator=gen))
            views.append(base.as_strided(shape, stride, offset))
    return views


def _flat_cases(thorough: bool, seed: int) -> list[tuple[tuple[int, ...], tuple[int, ...], int, int | None]]:
    """(index, strides, offset, expected) per call; offset None: the call leaves it out."""
    gen = torch.Generator().manual_seed(seed)
    cases: list[tuple[tuple[int, ...], tuple[int, ...], int, int | None]] = []
    for view in _views(thorough, gen):
        strides, offset = view.stride(), view.storage_offset()
        indices = [tuple(0 for _ in view.shape), tuple(s - 1 for s in view.shape)]
        indices += [tuple(int(torch.randint(0, s, (1,), generator=gen)) for s in view.shape)
                    for _ in range(3)]
        # the storage holds 0, 1, 2 ...: a value IS its position
        cases += [(index, strides, int(view[index]), offset) for index in indices]
        if offset == 0 and view.dim() > 0:  # the default offset is 0
            index = tuple(s - 1 for s in view.shape)
            cases.append((index, strides, int(view[index]), None))
    return cases


def _flat_scenario(fn: Callable[..., Any], *, thorough: bool = False, seed: int = 0) -> list[Any]:
    return [attempt(fn, index, strides) if offset is None else attempt(fn, index, strides, offset)
            for index, strides, _, offset in _flat_cases(thorough, seed)]


def _flat_verdict(results: list[Any], *, thorough: bool = False, hidden: bool = False,
                  seed: int = 0) -> None:
    """``fn(index, strides, offset)`` must locate ``view[index]`` in the view's storage."""
    for (index, strides, expected, offset), got in zip(_flat_cases(thorough, seed), results, strict=True):
        got = expect(got, "flat_index", hidden=hidden)
        require(_is_int(got), "flat_index must return a Python int",
                f"it returned {got!r} ({type_name(got)})", hidden)
        if offset is None:
            require(got == expected, "flat_index's offset must default to 0",
                    f"flat_index({index}, {strides}) returned {got!r}", hidden)
            continue
        if got == expected:
            continue
        detail = f"index={index}, strides={strides}, offset={offset}: expected {expected}, got {got}"
        if got == expected - offset:
            concept = ("the storage offset was ignored: a view starts `offset` elements into "
                       "its storage, so add it to the sum of index·stride")
        elif got == offset + sum(i * s for i, s in zip(index, strides[::-1], strict=True)):
            concept = "pair each index with the stride of the SAME dimension (not reversed)"
        else:
            concept = ("the position in storage is offset + Σ index[d] · stride[d] over all "
                       "dimensions d")
        raise CheckFailure(concept, detail, hidden)


flat_index = Check("tensors.flat_index", "flat_index", _flat_scenario, _flat_verdict)


def _storage_for(shape: Sequence[int], stride: Sequence[int]) -> torch.Tensor:
    if any(s == 0 for s in shape):
        return torch.empty(0).as_strided(tuple(shape), tuple(stride))
    need = 1 + sum((sz - 1) * st for sz, st in zip(shape, stride, strict=True))
    return torch.empty(need).as_strided(tuple(shape), tuple(stride))


_CONTIG_CASES: list[tuple[tuple[int, ...], tuple[int, ...], str]] = [
    ((2, 3), (3, 1), "a freshly made row-major tensor is contiguous"),
    ((3, 2), (1, 3), "a transposed tensor is not contiguous: its strides are not row-major"),
    ((3, 2), (4, 1), "rows with a gap between them (a slice of columns) are not contiguous"),
    ((4, 5), (5, 2), "every stride must be exactly the product of the sizes to its right"),
]
_CONTIG_EDGE: list[tuple[tuple[int, ...], tuple[int, ...], str]] = [
    ((3, 1, 4), (4, 99, 1), "size-1 dimensions never move, so their stride does not matter"),
    ((1, 5), (1, 1), "size-1 dimensions never move, so their stride does not matter"),
    ((1,), (7,), "size-1 dimensions never move, so their stride does not matter"),
    ((2, 0, 3), (5, 7, 2), "a tensor with a zero-size dimension has no elements and is contiguous"),
    ((0,), (3,), "a tensor with a zero-size dimension has no elements and is contiguous"),
    ((), (), "a 0-d tensor (one element) is contiguous"),
    ((4, 3), (0, 1), "an expanded tensor (stride 0) is not contiguous"),
    ((2, 3, 4), (12, 1, 3), "a tensor with its last two dimensions swapped is not contiguous"),
    ((2, 1, 2), (2, 2, 1), "size-1 dimensions never move, so their stride does not matter"),
    ((5,), (2,), "a 1-d tensor is contiguous only when its stride is 1"),
]


def _contig_cases(thorough: bool) -> list[tuple[tuple[int, ...], tuple[int, ...], str]]:
    return _CONTIG_CASES + (_CONTIG_EDGE if thorough else [])


def _contig_scenario(fn: Callable[..., Any], *, thorough: bool = False) -> list[Any]:
    return [attempt(fn, shape, stride) for shape, stride, _ in _contig_cases(thorough)]


def _contig_verdict(results: list[Any], *, thorough: bool = False, hidden: bool = False) -> None:
    """``fn(shape, strides)`` must agree with ``Tensor.is_contiguous``."""
    for (shape, stride, concept), got in zip(_contig_cases(thorough), results, strict=True):
        expected = _storage_for(shape, stride).is_contiguous()
        got = expect(got, "is_contiguous", hidden=hidden)
        require(isinstance(got, bool), "is_contiguous must return a bool (True or False)",
                f"it returned {got!r} ({type_name(got)})", hidden)
        require(got == expected, concept,
                f"shape={shape}, strides={stride}: torch says {expected}, got {got}", hidden)


is_contiguous = Check("tensors.is_contiguous", "is_contiguous", _contig_scenario, _contig_verdict,
                      Delegation("Decide from the shape and strides with integer arithmetic.",
                                 attrs=frozenset({"is_contiguous"})))


_FORBIDDEN_TRANSPOSE = ["transpose", "transpose_", "permute", "swapaxes", "swapdims", "movedim",
                        "moveaxis", "T", "mT", "mH", "H", "adjoint"]
_TRIP_TRANSPOSE = [(torch, n) for n in ("transpose", "permute", "swapaxes", "swapdims", "movedim",
                                         "t", "adjoint")] + [
    (torch.Tensor, n) for n in ("transpose", "permute", "swapaxes", "swapdims", "movedim", "t",
                                "T", "mT", "adjoint")]
_HINT = "Build the view yourself with t.as_strided(size, stride, storage_offset)."


def _transpose_cases(thorough: bool, seed: int) -> list[tuple[torch.Tensor, int, int]]:
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(400, generator=gen)
    cases = [
        (base[:6].view(2, 3), 0, 1),
        (base[:24].view(2, 3, 4), 0, 2),
        (base[:24].view(2, 3, 4), 1, 2),
    ]
    if thorough:
        cases += [
            (base[10:34].view(4, 6), 1, 0),  # a view with a storage offset
            (base[:60].view(3, 4, 5)[:, 1:, ::2], 0, 2),  # already non-contiguous
            (base[:24].view(2, 3, 4), -1, 0),  # negative dims
            (base[:24].view(2, 3, 4), -3, -2),
            (base[:12].view(3, 4), 1, 1),  # swapping a dim with itself
            (base[7:].as_strided((2, 2, 3, 2), (1, 40, 9, 3), 5), 3, 1),
        ]
    return cases


def _transpose_scenario(fn: Callable[..., Any], *, thorough: bool = False, seed: int = 0) -> dict:
    """Per case: the result, whether the input changed, and whether the result shares its storage."""
    cases = []
    for t, d0, d1 in _transpose_cases(thorough, seed):
        before = t.clone()
        with tripwire(_TRIP_TRANSPOSE):
            got = attempt(fn, t, d0, d1, call=f"transpose_view(<tensor of shape {tuple(t.shape)}>, {d0}, {d1})")
        shares = (isinstance(got, torch.Tensor)
                  and got.untyped_storage().data_ptr() == t.untyped_storage().data_ptr())
        cases.append({"result": got, "input_unchanged": torch.equal(t, before), "view": shares})
    written = None
    if thorough:  # a view shares memory: writing through it changes the input
        t = torch.zeros(2, 3)
        v = attempt(fn, t, 0, 1, call="transpose_view(torch.zeros(2, 3), 0, 1)")
        if isinstance(v, torch.Tensor) and tuple(v.shape) == (3, 2):
            v[2, 1] = 1.0
            written = t[1, 2].item() == 1.0
        else:
            written = False
    return {"cases": cases, "write_through": written}


def _transpose_verdict(record: dict, *, thorough: bool = False, hidden: bool = False,
                       seed: int = 0) -> None:
    """``fn(t, dim0, dim1)`` must equal ``t.transpose(dim0, dim1)`` and be a view of ``t``."""
    for (t, d0, d1), case in zip(_transpose_cases(thorough, seed), record["cases"], strict=True):
        expected = t.transpose(d0, d1)
        got = expect(case["result"], "transpose_view", hidden=hidden)
        require(case["input_unchanged"] is True, "transpose_view must not modify its input",
                f"input of shape {tuple(t.shape)} changed", hidden)
        where = f"t.shape={tuple(t.shape)}, t.stride()={t.stride()}, dims=({d0}, {d1})"
        require(isinstance(got, torch.Tensor), "transpose_view must return a tensor",
                f"it returned {type_name(got)}", hidden)
        require(tuple(got.shape) == tuple(expected.shape),
                "a transpose swaps the SIZES of dim0 and dim1 (negative dims count from the end)",
                f"{where}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}", hidden)
        require(case["view"] is True,
                "this made a copy; a transpose must be a view of the same storage (call as_strided "
                "on t itself, not on a clone, contiguous() or a new tensor)", where, hidden)
        recorded = meta(got)
        require(tuple(recorded["stride"]) == expected.stride(),
                "a transpose swaps the STRIDES of dim0 and dim1 as well as the sizes; the other "
                "strides stay as they are in t (which need not be contiguous)",
                f"{where}: expected stride {expected.stride()}, got {tuple(recorded['stride'])}", hidden)
        require(recorded["offset"] == expected.storage_offset(),
                "a view starts where its input starts: keep t.storage_offset()",
                f"{where}: expected offset {expected.storage_offset()}, got {recorded['offset']}",
                hidden)
        same_tensor(got, expected, "transpose_view's result", hidden=hidden)
    if thorough:
        require(record["write_through"] is True,
                "writing into the view must change the original tensor",
                "after v[2, 1] = 1, t[1, 2] was not 1", hidden)


transpose_view = Check("tensors.transpose_view", "transpose_view", _transpose_scenario,
                       _transpose_verdict, Delegation(_HINT, names=frozenset(_FORBIDDEN_TRANSPOSE)))
