"""02_tensors: the checks accept the solution and reject known-wrong answers, naming the concept."""

import pytest
from mutantkit import make_tests

pytestmark = pytest.mark.nb02

MUTANTS = {
    "contiguous_strides": [
        ("column-major", """
            def contiguous_strides(shape):
                out, step = [], 1
                for size in shape:
                    out.append(step)
                    step *= size
                return tuple(out)
        """, "column-major"),
        ("bytes", """
            def contiguous_strides(shape):
                out, step = [], 4
                for size in reversed(shape):
                    out.append(step)
                    step *= max(size, 1)
                return tuple(reversed(out))
        """, "not bytes"),
        ("zero-size", """
            def contiguous_strides(shape):
                out, step = [], 1
                for size in reversed(shape):
                    out.append(step)
                    step *= size
                return tuple(reversed(out))
        """, "zero-size"),
        ("list", """
            def contiguous_strides(shape):
                out, step = [], 1
                for size in reversed(shape):
                    out.append(step)
                    step *= max(size, 1)
                return list(reversed(out))
        """, "tuple of python ints"),
        ("includes own size", """
            def contiguous_strides(shape):
                out, step = [], 1
                for size in reversed(shape):
                    step *= max(size, 1)
                    out.append(step)
                return tuple(reversed(out))
        """, "product of the sizes"),
    ],
    "flat_index": [
        ("ignores offset", """
            def flat_index(index, strides, offset=0):
                return sum(i * s for i, s in zip(index, strides))
        """, "storage offset"),
        ("reversed strides", """
            def flat_index(index, strides, offset=0):
                return offset + sum(i * s for i, s in zip(index, reversed(strides)))
        """, "same dimension"),
        ("no strides", """
            def flat_index(index, strides, offset=0):
                return offset + sum(index)
        """, "index[d] · stride[d]"),
        ("returns a tensor", """
            import torch
            def flat_index(index, strides, offset=0):
                return torch.tensor(offset + sum(i * s for i, s in zip(index, strides)))
        """, "python int"),
    ],
    "is_contiguous": [
        ("size-1 strict", """
            def is_contiguous(shape, strides):
                return tuple(strides) == contiguous_strides(shape)
        """, "size-1"),
        ("last stride only", """
            def is_contiguous(shape, strides):
                return len(strides) == 0 or strides[-1] == 1
        """, "gap"),
        ("sorted strides", """
            def is_contiguous(shape, strides):
                return list(strides) == sorted(strides, reverse=True)
        """, "gap"),
        ("zero-size", """
            def is_contiguous(shape, strides):
                expected = 1
                for size, stride in zip(reversed(shape), reversed(strides)):
                    if size != 1 and stride != expected:
                        return False
                    expected *= size
                return True
        """, "zero-size"),
    ],
    "transpose_view": [
        ("copies", """
            def transpose_view(t, dim0, dim1):
                n = t.dim()
                dim0, dim1 = dim0 % n, dim1 % n
                size, stride = list(t.shape), list(t.stride())
                size[dim0], size[dim1] = size[dim1], size[dim0]
                stride[dim0], stride[dim1] = stride[dim1], stride[dim0]
                return t.clone().as_strided(size, stride, t.storage_offset())
        """, "made a copy"),
        ("delegates", """
            def transpose_view(t, dim0, dim1):
                return t.transpose(dim0, dim1)
        """, "delegates"),
        ("delegates at run time", """
            def transpose_view(t, dim0, dim1):
                return getattr(t, "trans" + "pose")(dim0, dim1)
        """, "delegates to the pytorch reference"),
        ("shape only", """
            def transpose_view(t, dim0, dim1):
                size = list(t.shape)
                size[dim0], size[dim1] = size[dim1], size[dim0]
                return t.as_strided(size, t.stride(), t.storage_offset())
        """, "strides"),
        ("offset zero", """
            def transpose_view(t, dim0, dim1):
                n = t.dim()
                dim0, dim1 = dim0 % n, dim1 % n
                size, stride = list(t.shape), list(t.stride())
                size[dim0], size[dim1] = size[dim1], size[dim0]
                stride[dim0], stride[dim1] = stride[dim1], stride[dim0]
                return t.as_strided(size, stride, 0)
        """, "storage_offset"),
        ("negative dims", """
            def transpose_view(t, dim0, dim1):
                size, stride = list(t.shape), list(t.stride())
                if dim0 < 0 or dim1 < 0:
                    return t.as_strided(size, stride, t.storage_offset())
                size[dim0], size[dim1] = size[dim1], size[dim0]
                stride[dim0], stride[dim1] = stride[dim1], stride[dim0]
                return t.as_strided(size, stride, t.storage_offset())
        """, "negative dims"),
        ("contiguous strides", """
            def transpose_view(t, dim0, dim1):
                n = t.dim()
                dim0, dim1 = dim0 % n, dim1 % n
                size = list(t.shape)
                size[dim0], size[dim1] = size[dim1], size[dim0]
                stride = list(torch.empty(t.shape).stride())
                stride[dim0], stride[dim1] = stride[dim1], stride[dim0]
                return t.as_strided(size, stride, t.storage_offset())
        """, "need not be contiguous"),
    ],
}

CORRECT = {
    "contiguous_strides": [
        ("products of suffixes", """
            import math
            def contiguous_strides(shape):
                return tuple(math.prod(max(s, 1) for s in shape[d + 1:]) for d in range(len(shape)))
        """),
    ],
    "flat_index": [
        ("a loop", """
            def flat_index(index, strides, offset=0):
                position = offset
                for i, s in zip(index, strides):
                    position += i * s
                return position
        """),
    ],
    "is_contiguous": [
        ("expected strides compared", """
            def is_contiguous(shape, strides):
                expected = 1
                for size, stride in reversed(list(zip(shape, strides))):
                    if size == 0:
                        return True
                for size, stride in reversed(list(zip(shape, strides))):
                    if size != 1 and stride != expected:
                        return False
                    expected *= size
                return True
        """),
    ],
    "transpose_view": [
        ("lists swapped in place", """
            def transpose_view(t, dim0, dim1):
                n = t.dim()
                a, b = dim0 % n, dim1 % n
                size, stride = list(t.size()), list(t.stride())
                size[a], size[b] = size[b], size[a]
                stride[a], stride[b] = stride[b], stride[a]
                return t.as_strided(tuple(size), tuple(stride), t.storage_offset())
        """),
    ],
}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests("02_tensors", MUTANTS, CORRECT)
